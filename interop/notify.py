"""Notifications: CAF signalled/started/closed, Lead Professional changed, shielded record viewed.

The audit log is the outbox: every one of these events is already appended, in the same
transaction as the change, to the hash-chained log. The worker reads the log past its cursor,
queues one `notification` row per interested subscription (idempotently: one per subscription
and audit event), and delivers due rows over HTTP — a signed webhook (HMAC-SHA256) or a FHIR
rest-hook — retrying with back-off until `max_attempts`, then dead-lettering. Nothing here runs
inside a request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from directory.jobs import Job
from directory.models import AuditEvent, Child, Notification, NotificationCursor, Subscription, utcnow
from directory.visibility import events_shown
from interop import systems as S

log = logging.getLogger("childindex.notify")

EVENTS: dict[str, str] = {
    "caf.signal": "caf-signalled",
    "caf.start": "caf-started",
    "caf.close": "caf-closed",
    "lead-professional.hand-over": "lead-professional-changed",
    "child.read": "shielded-record-viewed",  # only when the child is shielded
    "child.read.shield-override": "shielded-record-viewed",
}
EVENT_CODES = frozenset(EVENTS.values())
SIGNATURE_HEADER = S.SIGNATURE_HEADER
TIMESTAMP_HEADER = S.TIMESTAMP_HEADER
EVENT_HEADER = S.EVENT_HEADER


def subscribe(
    session: Session,
    *,
    owner: str,
    endpoint: str,
    events: list[str],
    kind: str = "webhook",
    secret: str | None = None,
    reason: str | None = None,
    criteria: str | None = None,
) -> Subscription:
    """Register an endpoint for some events (flushes; the caller commits)."""
    unknown = set(events) - EVENT_CODES
    if unknown:
        raise ValueError(
            f"unknown events: {', '.join(sorted(unknown))}; use {', '.join(sorted(EVENT_CODES))}"
        )
    if not endpoint.startswith("https://") and not endpoint.startswith("http://127.0.0.1"):
        raise ValueError("deliveries go to https:// endpoints only")
    if len(endpoint) > 500 or (secret is not None and len(secret) > 200):
        raise ValueError("the endpoint may be at most 500 characters long, the signing secret 200")
    sub = Subscription(
        owner=owner,
        endpoint=endpoint,
        kind=kind,
        events=" ".join(sorted(events)),
        secret=secret,
        reason=reason,
        criteria=criteria,
    )
    session.add(sub)
    session.flush()
    return sub


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value: sha256=HMAC-SHA256(secret, timestamp + '.' + body)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


def _cursor(session: Session) -> NotificationCursor:
    stmt = select(NotificationCursor).where(NotificationCursor.id == 1).with_for_update()
    cursor = session.exec(stmt).first()
    if cursor is None:
        cursor = NotificationCursor(id=1, audit_seq=0)
        session.add(cursor)
        session.flush()
    return cursor


def fan_out(engine: Engine, *, batch: int = 500) -> int:
    """Queue notifications for audit events past the cursor; return how many were queued."""
    queued = 0
    with Session(engine, expire_on_commit=False) as session:
        cursor = _cursor(session)
        # Read the log's end first: events appended while we work are left for the next round.
        last = int(session.exec(select(sa.func.max(AuditEvent.seq))).one() or 0)
        events = session.exec(
            select(AuditEvent)
            .where(
                col(AuditEvent.seq) > cursor.audit_seq,
                col(AuditEvent.seq) <= last,
                col(AuditEvent.action).in_(list(EVENTS)),
                events_shown(session, None),  # nothing about a sealed record leaves the adoption team
            )
            .order_by(col(AuditEvent.seq))
            .limit(batch)
        ).all()
        subs = session.exec(select(Subscription).where(Subscription.status == "active")).all()
        for event in events:
            code = EVENTS[event.action]
            child_id = (
                uuid.UUID(event.target_id) if event.target_type == "child" and event.target_id else None
            )
            if event.action == "child.read" and (
                child_id is None or not getattr(session.get(Child, child_id), "shielded", False)
            ):
                continue
            detail = json.loads(event.detail) if event.detail else {}
            payload = {
                "event": code,
                "at": event.at.isoformat(),
                "audit_seq": event.seq,
                "patient": f"Patient/{child_id}" if child_id else None,
                "caf": detail.get("caf_id"),
            }
            for sub in subs:
                if code not in sub.events.split():
                    continue
                session.add(
                    Notification(
                        subscription_id=sub.id,
                        audit_seq=event.seq,
                        event=code,
                        child_id=child_id,
                        payload=json.dumps(payload, sort_keys=True),
                    )
                )
                queued += 1
        # Everything up to the batch's last relevant event (or the log's end, when nothing was left) is done.
        cursor.audit_seq = events[-1].seq if len(events) == batch else max(cursor.audit_seq, last)
        session.add(cursor)
        session.commit()
    return queued


@dataclass(frozen=True)
class Delivered:
    """What one delivery round did."""

    delivered: int
    retried: int
    dead: int


def backoff(attempts: int, base_seconds: float) -> timedelta:
    """How long to wait before the next attempt of a delivery (doubling, at most an hour): the one
    back-off of every outbox that delivers (webhooks, the front door, emails)."""
    return timedelta(seconds=min(base_seconds * 2 ** (attempts - 1), 3600))


def _request(sub: Subscription, note: Notification, base_url: str) -> tuple[bytes, dict[str, str]]:
    payload = json.loads(note.payload)
    if sub.kind == "rest-hook":
        # A FHIR R4 rest-hook: an id-only history Bundle; the receiver reads the rest with its own token.
        # It names the Patient and, for a CAF or Lead Professional event, the CAF's Flag; never more.
        refs = [payload["patient"]] if payload.get("patient") else []
        if payload.get("caf"):
            refs.append(f"Flag/caf-{uuid.UUID(payload['caf']).hex}")
        body = {
            "resourceType": "Bundle",
            "type": "history",
            "meta": {
                "lastUpdated": payload.get("at"),
                "tag": [{"system": S.SUBSCRIPTION_EVENT, "code": note.event}],
            },
            "entry": [
                {"fullUrl": f"{base_url}/{ref}", "request": {"method": "PUT", "url": ref}} for ref in refs
            ]
            or [{"request": {"method": "PUT", "url": "Patient"}}],
        }
        content_type = S.FHIR_JSON
    else:
        body = {"id": str(note.id), **payload}
        content_type = "application/json"
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    headers = {"Content-Type": content_type, EVENT_HEADER: note.event}
    if sub.secret:
        stamp = str(int(time.time()))
        headers[TIMESTAMP_HEADER] = stamp
        headers[SIGNATURE_HEADER] = sign(sub.secret, stamp, raw)
    return raw, headers


def deliver_due(
    engine: Engine,
    client: httpx.Client,
    *,
    now: datetime | None = None,
    max_attempts: int = 6,
    backoff_seconds: float = 30.0,
    base_url: str = "",
    batch: int = 100,
) -> Delivered:
    """Post every due notification; retry failures later, dead-letter after max_attempts."""
    now = now or utcnow()
    delivered = retried = dead = 0
    with Session(engine, expire_on_commit=False) as session:
        due = session.exec(
            select(Notification, Subscription)
            .join(Subscription, col(Subscription.id) == col(Notification.subscription_id))
            .where(Notification.status == "pending", col(Notification.next_attempt_at) <= now)
            .order_by(col(Notification.id))
            .limit(batch)
        ).all()
        session.commit()  # no transaction is held while we wait on the network
    for note, sub in due:
        raw, headers = _request(sub, note, base_url)
        error = None
        try:
            response = client.post(sub.endpoint, content=raw, headers=headers)
            if not 200 <= response.status_code < 300:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        with Session(engine) as session:
            row = session.get(Notification, note.id)
            if row is None or row.status != "pending":
                continue
            row.attempts += 1
            if error is None:
                row.status, row.delivered_at, row.last_error = "delivered", utcnow(), None
                delivered += 1
            elif row.attempts >= max_attempts:
                row.status, row.last_error = "dead", error
                dead += 1
                log.warning("notification %s dead-lettered after %s attempts", row.id, row.attempts)
            else:
                row.last_error = error
                row.next_attempt_at = now + backoff(row.attempts, backoff_seconds)
                retried += 1
            session.add(row)
            session.commit()
    return Delivered(delivered, retried, dead)


def dead_letters(engine: Engine) -> list[Notification]:
    """The notifications that gave up (for an operator to inspect and replay)."""
    with Session(engine) as session:
        return list(session.exec(select(Notification).where(Notification.status == "dead")).all())


def replay(engine: Engine, notification_id: int) -> None:
    """Put a dead-lettered notification back in the queue."""
    with Session(engine) as session:
        row = session.get(Notification, notification_id)
        if row is None or row.status != "dead":
            raise ValueError("no dead-lettered notification has that id")
        row.status, row.attempts, row.next_attempt_at = "pending", 0, utcnow()
        session.add(row)
        session.commit()


def replay_all(engine: Engine) -> int:
    """Put every dead-lettered notification back in the queue; return how many."""
    with Session(engine) as session:
        rows = session.exec(select(Notification).where(Notification.status == "dead")).all()
        for row in rows:
            row.status, row.attempts, row.next_attempt_at = "pending", 0, utcnow()
            session.add(row)
        session.commit()
        return len(rows)


class NotificationWorker(Job):
    """Fan out, then deliver, every `interval_seconds`, on the one node holding the lease
    (directory/jobs.py)."""

    name = "fhir-notifications"

    def __init__(
        self,
        engine: Engine,
        *,
        interval_seconds: float = 5.0,
        max_attempts: int = 6,
        timeout: float = 5.0,
        base_url: str = "",
    ) -> None:
        super().__init__(engine, interval=interval_seconds)
        self.base_url = base_url  # this server's FHIR base, for the fullUrls of rest-hook Bundles
        self.max_attempts = max_attempts
        self.timeout = timeout
        self._client: httpx.Client | None = None

    def run_once(self, client: httpx.Client) -> Delivered:
        """One round: queue what is new, deliver what is due."""
        fan_out(self.engine)
        return deliver_due(self.engine, client, max_attempts=self.max_attempts, base_url=self.base_url)

    def work(self) -> Delivered:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        return self.run_once(self._client)

    def stop(self) -> None:
        """Stop the thread, wait for it, and release the lease."""
        super().stop()
        if self._client is not None:
            self._client.close()
            self._client = None
