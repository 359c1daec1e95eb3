"""PractitionerRole writes: add a practitioner with their role and contact point, or change them."""

from __future__ import annotations

from typing import Any

from directory import service
from directory.models import Organisation
from interop import mapping as m
from interop.api.context import Ctx, resource_id
from interop.api.writes.common import Written, same_id
from interop.outcome import mapped


def create_practitioner_role(ctx: Ctx, body: dict[str, Any], *, if_none_exist: str | None = None) -> Written:
    """Add a practitioner with their role and contact point."""
    ctx.need("PractitionerRole", "c")
    data = mapped(m.practitioner_role_in, body)
    p = service.register_practitioner(ctx.session, actor=ctx.actor, data=data)
    ctx.pictures.clear()  # a new practitioner is in no child's picture yet; forgetting all is cheap and safe
    org = ctx.session.get(Organisation, p.organisation_id)
    return Written(201, m.practitioner_role(p, org.name if org else None))


def update_practitioner_role(ctx: Ctx, rid: str, body: dict[str, Any], *, expected: int | None) -> Written:
    """Change a practitioner's role, organisation or contact point."""
    ctx.need("PractitionerRole", "u")
    same_id("PractitionerRole", rid, body)
    data = mapped(m.practitioner_role_in, body)
    p = service.update_practitioner(
        ctx.session,
        actor=ctx.actor,
        practitioner_id=resource_id(rid, "PractitionerRole"),
        data=data,
        expected_version=expected,
    )
    ctx.pictures.clear()  # their name, role and contact show in every child's picture that names them
    org = ctx.session.get(Organisation, p.organisation_id)
    return Written(200, m.practitioner_role(p, org.name if org else None))
