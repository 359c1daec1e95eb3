"""The append-only, hash-chained audit log: append, verify, and who looked at a child."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from directory.models import Actor, AuditEvent, AuditHead, AuditSubject, utcnow

GENESIS = "0" * 64
_CHAIN_LOCK = 0x43484C44  # the PostgreSQL advisory lock that orders appends


def _canonical(event: AuditEvent) -> bytes:
    body = {
        "seq": event.seq,
        "at": event.at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "request_id": event.request_id,
        "actor_subject": event.actor_subject,
        "actor_role": event.actor_role,
        "actor_organisation": event.actor_organisation,
        "client_id": event.client_id,
        "purpose": event.purpose,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "outcome": event.outcome,
        "detail": event.detail,
        "prev_hash": event.prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def event_hash(event: AuditEvent) -> str:
    """The SHA-256 of an event's canonical form, which includes the previous event's hash."""
    return hashlib.sha256(_canonical(event)).hexdigest()


def _lock_head(session: Session) -> AuditHead:
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
    # On SQLite every transaction is BEGIN IMMEDIATE, which already serialises appends.
    head = session.exec(select(AuditHead).where(AuditHead.id == 1)).first()
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
        session.flush()
    return head


def append(
    session: Session,
    *,
    actor: Actor,
    action: str,
    outcome: str = "success",
    target_type: str | None = None,
    target_id: uuid.UUID | str | None = None,
    detail: dict[str, Any] | None = None,
    children: Iterable[uuid.UUID] = (),
    at: datetime | None = None,
) -> AuditEvent:
    """Append one event to the chain in the caller's transaction."""
    head = _lock_head(session)
    event = AuditEvent(
        seq=head.seq + 1,
        at=(at or utcnow()),
        request_id=actor.request_id,
        actor_subject=actor.subject,
        actor_role=actor.role.value,
        actor_organisation=actor.organisation,
        client_id=actor.client_id,
        purpose=actor.purpose.value if actor.purpose else None,
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        outcome=outcome,
        detail=json.dumps(detail, sort_keys=True, separators=(",", ":"), default=str) if detail else None,
        prev_hash=head.hash,
        hash="",
    )
    event.hash = event_hash(event)
    session.add(event)
    head.seq, head.hash = event.seq, event.hash
    session.add(head)
    session.flush()
    subjects = {c for c in children}
    if target_type == "child" and target_id is not None:
        subjects.add(uuid.UUID(str(target_id)))
    for child_id in subjects:
        session.add(AuditSubject(seq=event.seq, child_id=child_id))
    if subjects:
        session.flush()
    return event


def append_alone(engine: Engine, **kwargs: Any) -> None:
    """Append in a transaction of its own: for refusals whose own transaction rolled back."""
    with Session(engine) as session:
        append(session, **kwargs)
        session.commit()


@dataclass(frozen=True)
class Verification:
    """The result of checking the chain end to end."""

    ok: bool
    checked: int
    problems: list[str]


def verify(session: Session, *, batch: int = 5000) -> Verification:
    """Recompute every hash and link; report edits, deletions and insertions."""
    problems: list[str] = []
    expected_prev = GENESIS
    expected_seq = 1
    checked = 0
    last = 0
    while True:
        rows: Sequence[AuditEvent] = session.exec(
            select(AuditEvent).where(col(AuditEvent.seq) > last).order_by(col(AuditEvent.seq)).limit(batch)
        ).all()
        if not rows:
            break
        for event in rows:
            if event.seq != expected_seq:
                problems.append(f"events {expected_seq}..{event.seq - 1} are missing (deleted)")
            if event.prev_hash != expected_prev:
                problems.append(f"event {event.seq} does not follow the event before it")
            if event_hash(event) != event.hash:
                problems.append(f"event {event.seq} was changed after it was written")
            expected_prev = event.hash
            expected_seq = event.seq + 1
            checked += 1
            last = event.seq
        session.expunge_all()
    head = session.exec(select(AuditHead).where(AuditHead.id == 1)).first()
    if head is not None and (head.seq != last or head.hash != expected_prev):
        problems.append(
            f"the chain ends at event {last} but its anchor says {head.seq}: "
            "events at the end were deleted or the anchor was altered"
        )
    if head is None and checked:
        problems.append("the chain's anchor is missing")
    return Verification(ok=not problems, checked=checked, problems=problems)


def who_looked(session: Session, *, child_id: uuid.UUID, limit: int = 200) -> list[AuditEvent]:
    """Every audited access to one child (reads, searches that returned it, changes), newest first."""
    stmt = (
        select(AuditEvent)
        .join(AuditSubject, col(AuditSubject.seq) == col(AuditEvent.seq))
        .where(AuditSubject.child_id == child_id)
        .order_by(col(AuditEvent.seq).desc())
        .limit(limit)
    )
    return list(session.exec(stmt).all())
