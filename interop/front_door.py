"""Referral notices to the social care front door when a CAF steps up (directory/service/step_up.py).

The step-up queues one `front_door_notice` row per configured channel in its own transaction; this
worker delivers the webhook rows: a signed POST (the same HMAC-SHA256 signature as the notification
webhooks, interop/notify.py), retried with back-off until `max_attempts`, then dead-lettered. The body
is built at delivery from ids: the referral's ids, the child's id and NHS number (the front door is
children's social care, who must find the child in their own system at once: docs/panel.md), the
referring practitioner's name and organisation, and a link to the child's card. Nothing else of the
child. Email rows stay queued for the people's SMTP sender (issue #18 part 3), whose message carries
ids, the referrer and the link only (`email_text`)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from directory import repository as repo
from directory.jobs import Job
from directory.models import Child, FrontDoorNotice, RecordStatus, StepUp, utcnow
from interop.notify import EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, backoff, sign

log = logging.getLogger("childindex.front_door")
EVENT = "caf-stepped-up"
GONE = frozenset({RecordStatus.SEALED.value, RecordStatus.PURGED.value})


@dataclass(frozen=True)
class FrontDoor:
    """Where step-ups go (from the settings)."""

    webhook_url: str | None = None
    secret: str | None = None
    email: str | None = None
    base_url: str = ""  # this service's address, for the link to the child's card

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels a step-up is queued on."""
        return tuple(c for c, on in (("webhook", self.webhook_url), ("email", self.email)) if on)


@dataclass(frozen=True)
class Delivered:
    delivered: int
    retried: int
    dead: int


def _referrer(session: Session, step: StepUp) -> dict[str, str | None]:
    if step.referrer_id is None:
        return {"name": None, "organisation": None}
    practitioner, org = repo.practitioner_contact(session, step.referrer_id)
    return {"name": practitioner.name, "organisation": org.name}


def webhook_body(session: Session, notice: FrontDoorNotice, base_url: str) -> dict[str, Any]:
    """What the front door's webhook receives: ids, the NHS number, the referrer and a link."""
    step = session.get(StepUp, notice.step_up_id)
    assert step is not None
    nhs = next((i.value for i in repo.child_identifiers(session, notice.child_id) if i.system == "nhs"), None)
    return {
        "event": EVENT,
        "id": notice.id.hex,
        "step_up_id": step.id.hex,
        "caf_id": step.caf_id.hex,
        "tac_id": step.tac_id.hex if step.tac_id else None,
        "child_id": str(notice.child_id),
        "nhs_number": nhs,
        "stepped_up_at": step.stepped_up_at.isoformat(),
        "referrer": _referrer(session, step),
        "link": f"{base_url}/children/{notice.child_id}",
    }


def email_text(session: Session, notice: FrontDoorNotice, base_url: str) -> tuple[str, str]:
    """The subject and body of the front door's email: no child details (no name, no NHS number)."""
    step = session.get(StepUp, notice.step_up_id)
    assert step is not None
    who = _referrer(session, step)
    body = (
        f"A CAF has been stepped up to children's social care by {who['name'] or 'a connected system'}"
        f"{' (' + who['organisation'] + ')' if who['organisation'] else ''}.\n\n"
        f"Referral {step.id.hex}, CAF {step.caf_id.hex}.\n"
        f"Sign in to see the child's record: {base_url}/children/{notice.child_id}\n"
    )
    return "A CAF has been stepped up to social care", body


def deliver_due(
    engine: Engine,
    client: httpx.Client,
    door: FrontDoor,
    *,
    now: datetime | None = None,
    max_attempts: int = 6,
    backoff_seconds: float = 30.0,
    batch: int = 50,
) -> Delivered:
    """POST every due webhook notice; retry failures later, dead-letter after max_attempts."""
    if not door.webhook_url:
        return Delivered(0, 0, 0)
    now = now or utcnow()
    delivered = retried = dead = 0
    with Session(engine, expire_on_commit=False) as session:
        due = session.exec(
            select(FrontDoorNotice)
            .where(
                FrontDoorNotice.channel == "webhook",
                FrontDoorNotice.status == "queued",
                col(FrontDoorNotice.next_attempt_at) <= now,
            )
            .order_by(col(FrontDoorNotice.created_at), col(FrontDoorNotice.id))
            .limit(batch)
        ).all()
        bodies = {}
        for n in due:
            child = session.get(Child, n.child_id)
            if child is None or child.status in GONE:
                # sealed by an adoption or purged since: nothing about it leaves the directory
                n.status, n.last_error = "dead", f"the record is {child.status if child else 'gone'}"
                session.add(n)
                dead += 1
                continue
            bodies[n.id] = webhook_body(session, n, door.base_url)
        session.commit()  # no transaction is held while we wait on the network
    for notice in due:
        if notice.id not in bodies:
            continue
        error = _post(client, door, bodies[notice.id])
        with Session(engine) as session:
            row = session.get(FrontDoorNotice, notice.id)
            if row is None or row.status != "queued":
                continue
            row.attempts += 1
            if error is None:
                row.status, row.delivered_at, row.last_error = "delivered", utcnow(), None
                delivered += 1
            elif row.attempts >= max_attempts:
                row.status, row.last_error = "dead", error
                dead += 1
                log.warning("front door notice %s dead-lettered after %s attempts", row.id, row.attempts)
            else:
                row.last_error = error
                row.next_attempt_at = now + backoff(row.attempts, backoff_seconds)
                retried += 1
            session.add(row)
            session.commit()
    return Delivered(delivered, retried, dead)


def _post(client: httpx.Client, door: FrontDoor, body: dict[str, Any]) -> str | None:
    """Send one signed delivery; the error, or None when the front door took it."""
    assert door.webhook_url is not None
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", EVENT_HEADER: EVENT}
    if door.secret:
        stamp = str(int(time.time()))
        headers[TIMESTAMP_HEADER] = stamp
        headers[SIGNATURE_HEADER] = sign(door.secret, stamp, raw)
    try:
        response = client.post(door.webhook_url, content=raw, headers=headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    return None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"


def replay(engine: Engine, notice_id: uuid.UUID) -> None:
    """Put a dead-lettered notice back in the queue."""
    with Session(engine) as session:
        row = session.get(FrontDoorNotice, notice_id)
        if row is None or row.status != "dead":
            raise ValueError("no dead-lettered front door notice has that id")
        row.status, row.attempts, row.next_attempt_at = "queued", 0, utcnow()
        session.add(row)
        session.commit()


class FrontDoorWorker(Job):
    """Delivers the front door's webhook notices every `interval_seconds`, on the one node holding
    the lease (directory/jobs.py)."""

    name = "front-door"

    def __init__(
        self, engine: Engine, door: FrontDoor, *, interval_seconds: float = 5.0, max_attempts: int = 6
    ) -> None:
        super().__init__(engine, interval=interval_seconds)
        self.door = door
        self.max_attempts = max_attempts
        self._client: httpx.Client | None = None

    def work(self) -> None:
        if self._client is None:
            self._client = httpx.Client(timeout=5.0)
        deliver_due(self.engine, self._client, self.door, max_attempts=self.max_attempts)

    def stop(self) -> None:
        """Stop the thread, wait for it, and release the lease."""
        super().stop()
        if self._client is not None:
            self._client.close()
            self._client = None
