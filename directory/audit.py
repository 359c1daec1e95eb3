"""The append-only, hash-chained audit log: append, verify, and who looked at a child."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
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


_HEAD = AuditHead.__table__  # type: ignore[attr-defined]
_EVENTS = AuditEvent.__table__  # type: ignore[attr-defined]
_SUBJECTS = AuditSubject.__table__  # type: ignore[attr-defined]
# Run for every search, in the group commit: built once, in Core (the ORM's unit of work and
# bulk-insert machinery cost more than the rows they write).
_READ_HEAD = sa.select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1)
_MOVE_HEAD = sa.update(_HEAD).where(_HEAD.c.id == 1)


def _lock_head(session: Session) -> tuple[int, str]:
    """The chain's last (seq, hash), locked for this transaction; made at genesis if missing."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
    # On SQLite every transaction is BEGIN IMMEDIATE, which already serialises appends.
    head = conn.execute(_READ_HEAD).first()
    if head is None:
        conn.execute(sa.insert(_HEAD), {"id": 1, "seq": 0, "hash": GENESIS})
        return 0, GENESIS
    return int(head.seq), str(head.hash)


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
    return append_many(
        session,
        [
            {
                "actor": actor,
                "action": action,
                "outcome": outcome,
                "target_type": target_type,
                "target_id": target_id,
                "detail": detail,
                "children": children,
                "at": at,
            }
        ],
    )[0]


def append_many(session: Session, events: Sequence[dict[str, Any]]) -> list[AuditEvent]:
    """Append events (each the keyword arguments of `append`) in order, with one statement per table."""
    seq, prev = _lock_head(session)
    made: list[AuditEvent] = []
    subjects: list[dict[str, Any]] = []
    for spec in events:
        event = _event(seq + 1, prev, spec)
        seq, prev = event.seq, event.hash
        made.append(event)
        about = set(spec.get("children") or ())
        if spec.get("target_type") == "child" and spec.get("target_id") is not None:
            about.add(uuid.UUID(str(spec["target_id"])))
        subjects.extend({"seq": event.seq, "child_id": child_id} for child_id in about)
    if not made:
        return made
    conn = session.connection()
    conn.execute(sa.insert(_EVENTS), [e.model_dump() for e in made])
    if subjects:
        conn.execute(sa.insert(_SUBJECTS), subjects)
    conn.execute(_MOVE_HEAD, {"seq": seq, "hash": prev})
    return made


def _event(seq: int, prev_hash: str, spec: dict[str, Any]) -> AuditEvent:
    """One event from the keyword arguments of `append`, linked to the one before it."""
    actor: Actor = spec["actor"]
    target_id, detail = spec.get("target_id"), spec.get("detail")
    event = AuditEvent(
        seq=seq,
        at=(spec.get("at") or utcnow()),
        request_id=actor.request_id,
        actor_subject=actor.subject,
        actor_role=actor.role.value,
        actor_organisation=actor.organisation,
        client_id=actor.client_id,
        purpose=actor.purpose.value if actor.purpose else None,
        action=spec["action"],
        target_type=spec.get("target_type"),
        target_id=str(target_id) if target_id is not None else None,
        outcome=spec.get("outcome", "success"),
        detail=json.dumps(detail, sort_keys=True, separators=(",", ":"), default=str) if detail else None,
        prev_hash=prev_hash,
        hash="",
    )
    event.hash = event_hash(event)
    return event


def append_alone(engine: Engine, **kwargs: Any) -> None:
    """Append in a transaction of its own: for refusals whose own transaction rolled back."""
    with Session(engine) as session:
        append(session, **kwargs)
        session.commit()


def record(session: Session, **event: Any) -> None:
    """Append an event and return once it is committed, for reads that change nothing else.

    If the session already has a transaction open (and so, on SQLite, may hold the write lock),
    the event joins it. Otherwise it goes to the engine's group commit: one thread appends every
    event queued meanwhile in a single transaction, so a busy service takes the write lock once per
    batch instead of once per search, and each caller still waits until its own event is durable.
    """
    if session.in_transaction():
        append(session, **event)
        return
    bind = session.get_bind()
    assert isinstance(bind, Engine)
    submit(bind, **event).result()


def submit(engine: Engine, **event: Any) -> Future[None]:
    """Queue an event for the engine's group commit (see `record`); the future is done once the
    event is durable, or holds the error. An async caller can await it without holding a thread."""
    with _WRITERS_LOCK:
        writer = _WRITERS.get(engine)
        if writer is None:
            writer = _WRITERS[engine] = _GroupCommit(engine)
    return writer.append(event)


@dataclass(eq=False)
class _Pending:
    event: dict[str, Any]
    done: Future[None] = field(default_factory=Future)


class _GroupCommit:
    """One writer thread per engine, started on demand and gone after a second with nothing to do."""

    MAX_BATCH = 200
    IDLE_SECONDS = 1.0

    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)
        self._queue: deque[_Pending] = deque()
        self._ready = threading.Condition()
        self._running = False

    def append(self, event: dict[str, Any]) -> Future[None]:
        pending = _Pending(event)
        # Running from the start, so it cannot be cancelled: a caller that stops waiting (a client
        # gone) does not stop its event being written.
        pending.done.set_running_or_notify_cancel()
        with self._ready:
            self._queue.append(pending)
            if self._running:
                self._ready.notify()
            else:
                self._running = True
                threading.Thread(target=self._run, name="audit-group-commit", daemon=True).start()
        return pending.done

    def _run(self) -> None:
        while True:
            with self._ready:
                if not self._queue and not self._ready.wait_for(lambda: bool(self._queue), self.IDLE_SECONDS):
                    self._running = False
                    return
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.MAX_BATCH))]
            engine = self._engine()
            if engine is None:  # nobody can be waiting on an engine that is gone
                return
            self._write(engine, batch)

    def _write(self, engine: Engine, batch: list[_Pending]) -> None:
        try:
            with Session(engine) as session:
                append_many(session, [pending.event for pending in batch])
                session.commit()
        except BaseException as exc:
            if len(batch) > 1:  # one bad event must not lose the others: write them one by one
                for pending in batch:
                    self._write(engine, [pending])
                return
            batch[0].done.set_exception(exc)
            return
        for pending in batch:
            pending.done.set_result(None)


_WRITERS: weakref.WeakKeyDictionary[Engine, _GroupCommit] = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()


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
    head = session.connection().execute(_READ_HEAD).first()
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
