"""Which records a role may find and read, by the record's status: one rule for the card, the pages,
FHIR and the audit log as others see it.

- an **active** record, and a **merged** one (a pointer to the record kept): every role;
- an **archived** record (past the age range, died, moved away): data managers and auditors only;
- a **sealed** record (an adopted child's birth identity): the adoption team only;
- a **purged** record (a tombstone): nobody.

A record a caller may not read is answered exactly as an id that was never used ("No child record has
that id.", 404): not 403, not another message, so that nothing says it exists. The audit log as
auditors and admins read it leaves out every event about a sealed record: the events around an
adoption would otherwise link the birth identity to the adoptive one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from directory.errors import NotFound
from directory.models import Actor, AuditEvent, AuditSubject, Child, RecordStatus, Role

_EVERYONE = frozenset(Role)
RECORD_READERS: dict[str, frozenset[Role]] = {
    RecordStatus.ACTIVE.value: _EVERYONE,
    RecordStatus.MERGED.value: _EVERYONE,
    RecordStatus.ARCHIVED.value: frozenset({Role.DATA_MANAGER, Role.AUDITOR}),
    RecordStatus.SEALED.value: frozenset({Role.ADOPTION_OFFICER}),
    RecordStatus.PURGED.value: frozenset(),
}
"""Who may read a record in each status (and find it, where a search can reach it)."""

SEALED_READERS = RECORD_READERS[RecordStatus.SEALED.value]


def readable_statuses(role: Role) -> frozenset[str]:
    """The statuses of the records this role may find and read."""
    return frozenset(status for status, roles in RECORD_READERS.items() if role in roles)


def may_read_record(child: Child, actor: Actor) -> bool:
    """Whether this actor may read this record at all (before what they may see of it)."""
    return actor.role in RECORD_READERS.get(child.status, frozenset())


def no_such_child(child_id: uuid.UUID) -> NotFound:
    """The answer to an id no record has, and to a record the caller may not read: the same one."""
    return NotFound("No child record has that id.", child_id=str(child_id))


def require_readable(child: Child, actor: Actor) -> None:
    """Refuse a record this actor may not read, exactly as an unknown id is refused."""
    if not may_read_record(child, actor):
        raise no_such_child(child.id)


def sealed_ids(session: Session) -> list[uuid.UUID]:
    """The ids of the sealed records (few: one per adoption)."""
    return list(session.exec(select(Child.id).where(Child.status == RecordStatus.SEALED.value)).all())


def events_shown(session: Session, role: Role | None) -> sa.ColumnElement[bool]:
    """The audit events this role may see: for anyone outside the adoption team (and when no role is
    named), none about a sealed record (neither as the event's target nor among the children it
    concerns)."""
    if role is not None and role in SEALED_READERS:
        return sa.true()
    sealed = sealed_ids(session)
    if not sealed:
        return sa.true()
    subject = aliased(AuditSubject)  # (a query may join audit_subject itself: this one is its own)
    about_sealed = (
        sa.select(col(subject.seq))
        .where(col(subject.seq) == col(AuditEvent.seq), col(subject.child_id).in_(sealed))
        .correlate(AuditEvent)
        .exists()
    )
    return sa.and_(
        sa.not_(about_sealed),
        sa.or_(col(AuditEvent.target_id).is_(None), col(AuditEvent.target_id).not_in(_spellings(sealed))),
    )


def _spellings(ids: Iterable[uuid.UUID]) -> list[str]:
    """An id as an audit event's target may hold it (with or without hyphens)."""
    out: list[str] = []
    for i in ids:
        out += [str(i), i.hex]
    return out
