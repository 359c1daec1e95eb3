"""What every use case shares: loading a child's record for a change, its version and outbox row,
the audit event of a change, the age range, and whether a consent covers a use."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlmodel import Session, col, select

from directory import audit
from directory import repository as repo
from directory.db import Prepared
from directory.errors import InvalidInput, RuleBroken, StaleVersion
from directory.models import (
    Actor,
    AuditNote,
    Child,
    ChildName,
    Consent,
    ConsentScope,
    Outbox,
    RecordStatus,
    utcnow,
)
from directory.names import names_shown
from directory.permissions import may_see_shielded
from directory.reach import require_within_reach, restricts
from directory.visibility import may_read_record, no_such_child

MAX_AGE_YEARS = 19  # pre-birth to 19 inclusive
READS_AUDITED_AS_CHANGES = frozenset({"child.read.shield-override"})
"""Reads that keep a note beside their audit event (a reason), so go through audit_change."""


def age_on(born: date, today: date) -> int:
    """Completed years of age on a day."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def add_years(day: date, years: int) -> date:
    """The same day `years` later (or earlier); 28 February for a 29 February outside a leap year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def oldest_birth_date_in_range(today: date) -> date:
    """Children born on or after this day are within the age range (19 inclusive)."""
    return add_years(today, -(MAX_AGE_YEARS + 1)) + timedelta(days=1)


def load_child(session: Session, child_id: uuid.UUID, *, for_update: bool = False) -> Child:
    """A child's record by id, whatever its status, or NotFound."""
    child = repo.get(session, Child, child_id, for_update=for_update)
    if child is None:
        raise no_such_child(child_id)
    return child  # type: ignore[no-any-return]


def active_child(
    session: Session, child_id: uuid.UUID, *, for_update: bool = False, actor: Actor | None = None
) -> Child:
    """A child's record that may change: neither merged into another nor archived. With `actor`: a
    record that actor may not read (archived, for most roles) is refused as an unknown id, so that a
    refused change does not say the record exists."""
    child = load_child(session, child_id, for_update=for_update)
    if child.status in (RecordStatus.SEALED.value, RecordStatus.PURGED.value):
        raise no_such_child(child_id)  # nothing may say that it exists (directory.visibility)
    if actor is not None and not may_read_record(child, actor):
        raise no_such_child(child_id)
    if actor is not None:  # before any other answer about it (a CAF's holder, a conflict)
        require_within_reach(session, actor, child, writing=True)
    if child.status == RecordStatus.MERGED.value:
        raise RuleBroken(
            "This record was merged into another; make the change on that record.",
            merged_into_id=str(child.merged_into_id),
        )
    if child.status != RecordStatus.ACTIVE.value:
        raise RuleBroken(
            "This record is archived (the child is outside the 0-19 age range or no longer "
            "in the area); it can be read but not changed.",
            child_id=str(child.id),
        )
    return child


_OUTBOX = Outbox.__table__  # type: ignore[attr-defined]
_PUBLISH = Prepared(
    sa.insert(_OUTBOX).values(
        topic=sa.bindparam("topic"),
        entity_id=sa.bindparam("entity_id"),
        created_at=sa.bindparam("created_at", type_=_OUTBOX.c.created_at.type),
    )
)


def touch(session: Session, child: Child) -> None:
    """A new version of the child's record, and its outbox row for the search index (the
    Outbox(topic="child", ...) row, written on the driver in the session's transaction: through the
    ORM's unit of work it cost a feed of changes a tenth of each change)."""
    child.updated_at = utcnow()
    child.version += 1
    session.add(child)
    _PUBLISH.run(
        session.connection(), [{"topic": "child", "entity_id": child.id.hex, "created_at": utcnow()}]
    )


class Versioned(Protocol):
    """A row that keeps versions (an involvement, a CAF, a TAC): meta.versionId and meta.lastUpdated."""

    version: int
    updated_at: datetime


def new_version(row: Versioned, now: datetime | None = None) -> None:
    """The row's next version, and when it changed with it (what `_since` and `meta.lastUpdated` read)."""
    row.version += 1
    row.updated_at = now or utcnow()


def changed(row: Versioned, now: datetime | None = None) -> None:
    """The row changed without a new version (a confirmation, a TAC closed with its CAF)."""
    row.updated_at = now or utcnow()


def check_version(kind: str, current: int, expected: int | None) -> None:
    """Refuse a change made against an older version of a record (optimistic locking)."""
    if expected is not None and expected != current:
        raise StaleVersion(
            f"This {kind} changed since you read it (you sent version {expected}, it is now at "
            f"version {current}); read it again and reapply your change.",
            current_version=current,
        )


def audit_change(
    session: Session,
    actor: Actor,
    action: str,
    child_id: uuid.UUID,
    detail: dict[str, str] | None = None,
    *,
    note: str | None = None,
) -> None:
    """Append the audit event of a change to one child: the last write of every use case. Free text
    (`note`, e.g. a reason) never enters the chain: it is kept beside it (AuditNote), which a purge
    deletes, and the event says only that there is one. A change to a child living outside the actor's
    grant localities is refused here, where every change passes (directory.reach), and the request's
    unit of work rolls back what the use case did."""
    if restricts(actor, writing=True) and action not in READS_AUDITED_AS_CHANGES:
        require_within_reach(session, actor, load_child(session, child_id), writing=True)
    if note is not None:
        detail = {**(detail or {}), "note": "kept"}
    event = audit.append(
        session, actor=actor, action=action, target_type="child", target_id=child_id, detail=detail
    )
    if note is not None:
        session.add(AuditNote(seq=event.seq, child_id=child_id, text=note[:500]))


def require_purpose(actor: Actor) -> None:
    """Refuse a read without a purpose of use."""
    if actor.purpose is None:
        raise InvalidInput(
            "Say why you are looking: give a purpose of use (for example 'considering-caf' or 'direct-care')."
        )


def consent_covers(consent: Consent, scope: str) -> bool:
    """True when a consent is current and covers the scope ('sensitive:all' covers each sensitive one)."""
    if consent.withdrawn_at is not None:
        return False
    if consent.scope == scope:
        return True
    return scope.startswith("sensitive:") and consent.scope == ConsentScope.SENSITIVE_ALL.value


def shown_names(session: Session, children: dict[uuid.UUID, Child], actor: Actor) -> dict[uuid.UUID, str]:
    """Each child's name as this reader may see it (directory/names.py: a shielded child's current
    official name only, unless they may see the shield), for lists that name many children at once."""
    rows = session.exec(select(ChildName).where(col(ChildName.child_id).in_(list(children)))).all()
    by_child: dict[uuid.UUID, list[ChildName]] = {}
    for n in sorted(rows, key=lambda n: repo.name_order(n.use, n.until)):
        by_child.setdefault(n.child_id, []).append(n)
    out = {}
    for child_id, child in children.items():
        shown = names_shown(
            by_child.get(child_id, []), shielded=child.shielded, entitled=may_see_shielded(child, actor)
        )
        out[child_id] = f"{shown[0].given} {shown[0].family}" if shown else "(no name recorded)"
    return out
