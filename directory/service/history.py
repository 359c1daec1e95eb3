"""A child's record through its versions, as this reader may see it: who changed it (role, and the
organisation only for those who may see who looked), when, from which source, which fields, and
each version's details without what the reader may not see.

A version is withheld from a reader not entitled to shielded details when the record is shielded
now or was at that version: its names, identifiers, address, locality, school, GP and carers are
left out (an earlier official name or NHS number would link a shielded child, an adopted one, to
the identity it is shielded from), and so are the names of those fields in its list of changes.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlmodel import Session

from directory import audit
from directory import repository as repo
from directory.errors import NotFound
from directory.models import Actor, Child, ChildVersion, ChildVersionRead, Role
from directory.permissions import SHIELD_VIEWERS, may_see_shielded
from directory.reach import require_within_reach
from directory.service.access import ACCESS_LOG_READERS
from directory.service.common import load_child, require_purpose
from directory.service.versions import snapshot
from directory.visibility import require_readable

WITHHELD_DETAILS = (
    "names",
    "identifiers",
    "address",
    "locality_id",
    "school_id",
    "gp_practice_id",
    "related_people",
)
"""What a version of a shielded record keeps from a reader not entitled to it."""
WITHHELD_CHANGES = frozenset(
    {
        "name",
        "other names",
        "nhs number",
        "upn",
        "identifiers",
        "address",
        "school",
        "gp practice",
        "related people",
    }
)
"""The names of those fields in a version's list of changes."""
ORGANISATION_READERS = frozenset(ACCESS_LOG_READERS | {Role.DATA_MANAGER})
"""Who is shown the organisation of whoever made each version (to others an organisation could name
a service working with the child that they may not see: a sensitive one, or any on a shielded record)."""


def version_read(actor: Actor, child: Child, row: ChildVersion) -> ChildVersionRead:
    """One version as this reader may see it."""
    details: dict[str, Any] = json.loads(row.snapshot)
    changed = [c for c in row.changed.split(", ") if c]
    withheld = (child.shielded or details.get("shielded", False)) and not (
        may_see_shielded(child, actor) or actor.role in SHIELD_VIEWERS
    )
    if withheld:
        details = {k: v for k, v in details.items() if k not in WITHHELD_DETAILS}
        changed = [c for c in changed if c not in WITHHELD_CHANGES]
    return ChildVersionRead(
        version=row.version,
        at=row.at,
        role=row.role,
        organisation=row.organisation
        if actor.role in ORGANISATION_READERS or row.actor_subject == actor.subject
        else None,
        source=row.source,
        changed=changed,
        details=details,
    )


def _as_it_stands(session: Session, child: Child) -> ChildVersion:
    """A record loaded in bulk (an import, the seed) has no versions kept yet: its current state is
    its version n, by whom and from where not recorded (not written to the table: a read writes none)."""
    return ChildVersion(
        child_id=child.id,
        version=child.version,
        at=child.updated_at,
        actor_subject="",
        role="not recorded",
        source="not recorded",
        changed="",
        snapshot=json.dumps(snapshot(session, child), sort_keys=True, default=str),
    )


def child_history(
    session: Session, *, actor: Actor, child_id: uuid.UUID, version: int | None = None
) -> tuple[Child, list[ChildVersionRead]]:
    """The versions of a child's record (or one of them) as this reader may see them; audited."""
    require_purpose(actor)
    child = load_child(session, child_id)
    require_readable(child, actor)  # sealed, archived, purged: as an unknown id (directory.visibility)
    require_within_reach(session, actor, child, writing=False)
    rows = list(repo.child_versions(session, child.id, version))
    if not rows and version in (None, child.version):
        rows = [_as_it_stands(session, child)]
    if version is not None and not rows:
        raise NotFound("This child's record has no such version.", version=version)
    audit.append(
        session,
        actor=actor,
        action="child.history.read",
        target_type="child",
        target_id=child.id,
        detail={"version": str(version)} if version is not None else None,
    )
    return child, [version_read(actor, child, r) for r in rows]
