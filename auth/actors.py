"""The actor an audit event names when no current grant stands behind the caller: a refused
request, a sign-in (failed or not), a token issued or revoked at the token endpoint.

One builder for all of them (the resource server's refusals, the authorization server, the
lock-out), so each such event names its caller the same way.
"""

from __future__ import annotations

import enum
from typing import Any

from directory.models import Actor, Purpose, Role


class _Unknown(enum.StrEnum):
    """The role recorded for a caller who holds no usable grant."""

    NONE = "none"


def audit_actor(
    subject: str,
    *,
    client_id: str | None = None,
    role: Role | None = None,
    purpose: Purpose | None = None,
    request_id: str | None = None,
) -> Actor:
    """The actor to audit: the subject (at most 200 characters) and, with no role, the role "none"."""
    # model_construct: "none" is not a Role, and the caller is not validated as a signed-in actor.
    known: Any = role or _Unknown.NONE
    return Actor.model_construct(
        subject=subject[:200],
        role=known,
        organisation=None,
        display_name=None,
        client_id=client_id,
        purpose=purpose,
        request_id=request_id,
        practitioner_id=None,
        shield_override_reason=None,
    )
