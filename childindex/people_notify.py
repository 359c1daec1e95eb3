"""Notifications to people: the worker that turns audit events into inbox notices and emails.

One background thread (started by `childindex serve`, like interop/notify.py's NotificationWorker):
each round it
1. **fans out**: reads the audit log past its own cursor (`NotificationCursor` id=2, locked FOR UPDATE
   so two workers never fan out the same event) and writes, in the cursor's transaction, the notices
   (and email outbox rows) the domain's rules make (directory/inbox.py), with recipients resolved from
   their access grants (`GrantPeople`);
2. **reminds** (every `reminder_interval` seconds): appends the audit events of reminders now due
   (overdue TAC reviews, involvements not confirmed), each once; the next fan-out tells people;
3. **sends** due emails through SMTP, retrying with back-off, dead-lettering after `max_attempts`
   (kept; `childindex people-notify replay` queues them again).
Nothing here runs inside a request.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from auth.models import AccessGrant, GrantStatus, LocalUser, SubjectKind
from childindex.mail import Sent, Smtp, send_due, send_front_door_emails
from childindex.settings import Settings
from directory import inbox
from directory.jobs import Job
from directory.models import (
    Actor,
    AuditEvent,
    NotificationCursor,
    Practitioner,
    Role,
    utcnow,
)
from directory.visibility import events_shown

log = logging.getLogger("childindex.people_notify")

CURSOR_ID = 2  # row 1 is the connected systems' notifier (interop/notify.py)


# --------------------------------------------------------------------------- who the recipients are


class GrantPeople:
    """Recipients as the rules see them: each practitioner's active grant gives their role and
    localities (Practitioner.subject links a practitioner to a sign-in); a practitioner with no active
    grant is told as a plain practitioner (least privilege)."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        # remembered for the batch (one transaction): most events of a batch are about few people
        self._actors: dict[uuid.UUID, Actor | None] = {}
        self._teams: dict[str | None, dict[uuid.UUID, Actor]] = {}
        self._subjects: dict[str, uuid.UUID | None] = {}

    def _grants(self, *where: sa.ColumnElement[bool]) -> list[AccessGrant]:
        return list(
            self.session.exec(
                select(AccessGrant)
                .where(
                    AccessGrant.status == GrantStatus.ACTIVE.value,
                    AccessGrant.subject_kind == SubjectKind.USER.value,
                    col(AccessGrant.valid_from) <= self.now,
                    col(AccessGrant.valid_until) > self.now,
                    *where,
                )
                .order_by(col(AccessGrant.created_at).desc())
            ).all()
        )

    @staticmethod
    def _actor(practitioner: Practitioner, subject: str | None, grant: AccessGrant | None) -> Actor:
        return Actor(
            subject=subject or practitioner.subject or f"practitioner:{practitioner.id}",
            role=Role(grant.role) if grant is not None else Role.PRACTITIONER,
            organisation=grant.organisation if grant is not None else None,
            practitioner_id=practitioner.id,
            localities=tuple(grant.locality_list()) if grant is not None else (),
        )

    def _sign_ins(self, practitioners: Iterable[Practitioner]) -> dict[uuid.UUID, list[str]]:
        """Each practitioner's sign-in subjects: Practitioner.subject, and the usernames of the active
        local accounts linked to them (LocalUser.practitioner_id)."""
        found = {p.id: [p.subject] if p.subject else [] for p in practitioners}
        if found:
            accounts = self.session.exec(
                select(LocalUser.username, LocalUser.practitioner_id).where(
                    col(LocalUser.practitioner_id).in_(list(found)), col(LocalUser.active)
                )
            ).all()
            for username, pid in accounts:
                if pid is not None and username not in found[pid]:
                    found[pid].append(username)
        return found

    def actors(self, practitioner_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Actor]:
        """An Actor for each active practitioner of these (their newest active grant; none: practitioner)."""
        wanted = set(practitioner_ids)
        new = [p for p in wanted if p not in self._actors]
        if new:
            found = self._resolve(new)
            self._actors.update({p: found.get(p) for p in new})
        return {p: a for p in wanted if (a := self._actors.get(p)) is not None}

    def _resolve(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, Actor]:
        found = self.session.exec(
            select(Practitioner).where(col(Practitioner.id).in_(ids), col(Practitioner.active))
        ).all()
        sign_ins = self._sign_ins(found)
        subjects = [x for names in sign_ins.values() for x in names]
        grants: dict[str, AccessGrant] = {}
        for grant in self._grants(col(AccessGrant.subject).in_(subjects)) if subjects else []:
            grants.setdefault(grant.subject, grant)  # the newest active grant
        out = {}
        for p in found:
            subject = next((x for x in sign_ins[p.id] if x in grants), None)
            out[p.id] = self._actor(p, subject, grants.get(subject or ""))
        return out

    def practitioner_of(self, subject: str) -> uuid.UUID | None:
        """The practitioner a sign-in acts as: Practitioner.subject, else a local account's link."""
        if subject not in self._subjects:
            self._subjects[subject] = self._practitioner_of(subject)
        return self._subjects[subject]

    def _practitioner_of(self, subject: str) -> uuid.UUID | None:
        found = self.session.exec(select(Practitioner.id).where(Practitioner.subject == subject)).first()
        if found is not None:
            return found
        return self.session.exec(
            select(LocalUser.practitioner_id).where(LocalUser.username == subject)
        ).first()

    def locality_team(self, locality_code: str | None) -> dict[uuid.UUID, Actor]:
        """Practitioners whose active local_delivery_team grant covers this locality (no localities: all)."""
        if locality_code not in self._teams:
            self._teams[locality_code] = self._team(locality_code)
        return dict(self._teams[locality_code])

    def _team(self, locality_code: str | None) -> dict[uuid.UUID, Actor]:
        grants = self._grants(col(AccessGrant.role) == Role.LOCAL_DELIVERY_TEAM.value)
        covering = {
            g.subject: g
            for g in reversed(grants)  # the newest wins
            if not g.locality_list() or (locality_code is not None and locality_code in g.locality_list())
        }
        if not covering:
            return {}
        linked = dict(
            self.session.exec(
                select(LocalUser.username, LocalUser.practitioner_id).where(
                    col(LocalUser.username).in_(list(covering)), col(LocalUser.active)
                )
            ).all()
        )
        found = self.session.exec(
            select(Practitioner).where(
                sa.or_(
                    col(Practitioner.subject).in_(list(covering)),
                    col(Practitioner.id).in_([p for p in linked.values() if p is not None]),
                ),
                col(Practitioner.active),
            )
        ).all()
        out = {}
        for p in found:
            subject = (
                p.subject if p.subject in covering else next(u for u, pid in linked.items() if pid == p.id)
            )
            out[p.id] = self._actor(p, subject, covering[subject])
        return out


# --------------------------------------------------------------------------- fan-out


def _cursor(session: Session) -> NotificationCursor:
    stmt = select(NotificationCursor).where(NotificationCursor.id == CURSOR_ID).with_for_update()
    cursor = session.exec(stmt).first()
    if cursor is not None:
        return cursor
    # First run: people are told of what happens from now on, not of the whole history.
    last = int(session.exec(select(sa.func.max(AuditEvent.seq))).one() or 0)
    try:
        with session.begin_nested():
            session.add(NotificationCursor(id=CURSOR_ID, audit_seq=last))
            session.flush()
    except IntegrityError:
        pass  # another worker made it first
    found = session.exec(stmt).first()
    assert found is not None
    return found


def start_cursor(engine: Engine, *, at: int | None = None) -> None:
    """Set the cursor (default: the log's end): the events after it are told."""
    with Session(engine) as session:
        cursor = _cursor(session)
        cursor.audit_seq = (
            at if at is not None else int(session.exec(select(sa.func.max(AuditEvent.seq))).one() or 0)
        )
        session.add(cursor)
        session.commit()


def fan_out(engine: Engine, *, email: bool, now: datetime | None = None, batch: int = 500) -> int:
    """Write the notices of the audit events past the cursor; return how many notices were made."""
    now = now or utcnow()
    made = 0
    with Session(engine, expire_on_commit=False) as session:
        cursor = _cursor(session)
        last = int(session.exec(select(sa.func.max(AuditEvent.seq))).one() or 0)
        events = session.exec(
            select(AuditEvent)
            .where(
                col(AuditEvent.seq) > cursor.audit_seq,
                col(AuditEvent.seq) <= last,
                col(AuditEvent.action).in_(list(inbox.EVENTS)),
                # of the reads of a record, only a connected system's tell anyone (inbox.LOOKED_UP)
                sa.or_(
                    col(AuditEvent.action) != inbox.LOOKED_UP, col(AuditEvent.actor_role) == Role.SYSTEM.value
                ),
                events_shown(session, None),  # nothing about a sealed record
            )
            .order_by(col(AuditEvent.seq))
            .limit(batch)
        ).all()
        people = GrantPeople(session, now)
        for event in events:
            try:
                with session.begin_nested():  # one event that cannot be told does not stop the others
                    made += len(inbox.notices_for_event(session, event, people, now=now, email=email))
            except IntegrityError:
                log.exception("audit event %s: its notices could not be written; skipped", event.seq)
        cursor.audit_seq = events[-1].seq if len(events) == batch else max(cursor.audit_seq, last)
        session.add(cursor)
        session.commit()
    return made


def remind(engine: Engine, *, still_involved_days: int, now: datetime | None = None) -> int:
    """Append the audit events of the reminders now due (each once)."""
    with Session(engine) as session:
        made = inbox.due_reminders(session, now=now or utcnow(), still_involved_days=still_involved_days)
        session.commit()
    return made


# --------------------------------------------------------------------------- email


class PeopleNotifier(Job):
    """Fan out, remind, send, every `interval_seconds`, on the one node holding the lease
    (directory/jobs.py)."""

    name = "people-notices"

    def __init__(
        self,
        engine: Engine,
        *,
        smtp: Smtp | None,
        interval_seconds: float = 5.0,
        reminder_interval_seconds: float = 3600.0,
        still_involved_days: int = 180,
        max_attempts: int = 8,
        backoff_seconds: float = 30.0,
        front_door_email: str | None = None,
    ) -> None:
        super().__init__(engine, interval=interval_seconds)
        self.smtp = smtp
        self.front_door_email = front_door_email  # step-ups emailed to the social care front door
        self.reminder_interval = reminder_interval_seconds
        self.still_involved_days = still_involved_days
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self._reminded_at = 0.0

    def run_once(self, now: datetime | None = None) -> Sent:
        """One round: remind (when due), fan out what is new, send what is due."""
        if time.monotonic() - self._reminded_at >= self.reminder_interval:
            remind(self.engine, still_involved_days=self.still_involved_days, now=now)
            self._reminded_at = time.monotonic()
        fan_out(self.engine, email=self.smtp is not None, now=now)
        if self.smtp is None:
            return Sent(0, 0, 0)
        if self.front_door_email:
            send_front_door_emails(self.engine, self.smtp, to=self.front_door_email, now=now)
        return send_due(
            self.engine,
            self.smtp,
            now=now,
            max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
        )

    def work(self) -> Sent:
        return self.run_once()


def from_settings(settings: Settings, engine: Engine) -> PeopleNotifier:
    """The worker `serve` runs, as the settings say (email off when no SMTP host is set)."""
    smtp = (
        Smtp(
            host=settings.smtp_host,
            port=settings.smtp_port,
            tls=settings.smtp_tls,
            username=settings.smtp_username,
            password=settings.smtp_password,
            sender=settings.smtp_sender,
            base_url=settings.public_base_url or str(settings.issuer),
            ca_file=settings.smtp_ca_file,
        )
        if settings.smtp_host
        else None
    )
    return PeopleNotifier(
        engine,
        smtp=smtp,
        interval_seconds=settings.people_notify_interval_seconds,
        still_involved_days=settings.still_involved_days,
        max_attempts=settings.smtp_max_attempts,
        front_door_email=settings.front_door_email,
    )
