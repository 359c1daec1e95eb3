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
import smtplib
import ssl
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from auth.models import AccessGrant, GrantStatus, LocalUser, SubjectKind
from childindex.settings import Settings
from directory import inbox
from directory.models import Actor, AuditEvent, NotificationCursor, Practitioner, Role, utcnow
from directory.models.notifications import EmailOutbox, Notice
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


@dataclass(frozen=True)
class Smtp:
    """Where and how emails go (settings CHILDINDEX_SMTP_*)."""

    host: str
    port: int = 587
    tls: str = "starttls"  # none | starttls | tls
    username: str | None = None
    password: str | None = None
    sender: str = "childindex@localhost"
    base_url: str = "http://127.0.0.1:8000"  # the public address the link points at
    timeout: float = 10.0
    ca_file: str | None = None  # a private CA to verify the server's certificate with (else the system's)

    def tls_context(self) -> ssl.SSLContext:
        """Certificates are always verified: against the given CA file, or the system's store."""
        return ssl.create_default_context(cafile=self.ca_file)


SUBJECT = "You have a new notice in the children's index"


def message(smtp: Smtp, to: str, notice_id: uuid.UUID) -> EmailMessage:
    """The email: that there is something to see, and a link to the notice. No child data, ever."""
    msg = EmailMessage()
    msg["Subject"] = SUBJECT
    msg["From"] = smtp.sender
    msg["To"] = to
    msg.set_content(
        "There is something new for you to see in the children's index.\n\n"
        f"Open it (you will be asked to sign in): {smtp.base_url.rstrip('/')}/inbox/{notice_id}\n\n"
        "This email does not say which child it is about, on purpose. To stop these emails and see "
        f"notices in your inbox only, choose so at {smtp.base_url.rstrip('/')}/inbox/preference.\n"
    )
    return msg


class _Mailer:
    """One SMTP connection for a sending round, opened on first use and opened again after a failure."""

    def __init__(self, smtp: Smtp) -> None:
        self.smtp = smtp
        self.client: smtplib.SMTP | None = None

    def _open(self) -> smtplib.SMTP:
        smtp = self.smtp
        if smtp.tls == "tls":
            context = smtp.tls_context()
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout, context=context
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        try:
            if smtp.tls == "starttls":
                client.starttls(context=smtp.tls_context())
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
        except BaseException:
            client.close()
            raise
        return client

    def send(self, msg: EmailMessage) -> None:
        if self.client is None:
            self.client = self._open()
        try:
            self.client.send_message(msg)
        except (smtplib.SMTPException, OSError):
            self.close()  # a fresh connection for the next one
            raise

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.quit()
            except (smtplib.SMTPException, OSError):
                self.client.close()
            self.client = None


@dataclass(frozen=True)
class Sent:
    """What one sending round did."""

    sent: int
    retried: int
    dead: int


def _backoff(attempts: int, base_seconds: float) -> timedelta:
    return timedelta(seconds=min(base_seconds * 2 ** (attempts - 1), 3600))


def _claim(engine: Engine, now: datetime, batch: int, lease: timedelta) -> list[EmailOutbox]:
    """The due rows this worker takes: each moved past `now` by a conditional update, so that two
    workers never send one email twice."""
    with Session(engine, expire_on_commit=False) as session:
        due = session.exec(
            select(EmailOutbox)
            .where(EmailOutbox.status == "pending", col(EmailOutbox.next_attempt_at) <= now)
            .order_by(col(EmailOutbox.id))
            .limit(batch)
        ).all()
        mine = []
        for row in due:
            taken = session.execute(
                sa.update(EmailOutbox)
                .where(
                    col(EmailOutbox.id) == row.id,
                    col(EmailOutbox.status) == "pending",
                    col(EmailOutbox.next_attempt_at) == row.next_attempt_at,
                )
                .values(next_attempt_at=now + lease)
            )
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                mine.append(row)
        session.commit()
    return mine


def send_due(
    engine: Engine,
    smtp: Smtp,
    *,
    now: datetime | None = None,
    max_attempts: int = 8,
    backoff_seconds: float = 30.0,
    batch: int = 50,
) -> Sent:
    """Send every due email; retry a failure later, dead-letter after max_attempts (kept)."""
    now = now or utcnow()
    sent = retried = dead = 0
    mailer = _Mailer(smtp)
    try:
        for row in _claim(engine, now, batch, timedelta(minutes=10)):
            outcome = _send_one(engine, mailer, smtp, row, now, max_attempts, backoff_seconds)
            sent += outcome == "sent"
            retried += outcome == "retried"
            dead += outcome == "dead"
    finally:
        mailer.close()
    return Sent(sent, retried, dead)


def _send_one(
    engine: Engine,
    mailer: _Mailer,
    smtp: Smtp,
    row: EmailOutbox,
    now: datetime,
    max_attempts: int,
    backoff_seconds: float,
) -> str:
    """Send one claimed email and record the outcome: sent, retried, dead, dropped (or '' if gone)."""
    with Session(engine) as session:
        practitioner = session.get(Practitioner, row.practitioner_id)
        notice = session.get(Notice, row.notice_id)
    error = None
    if notice is None or practitioner is None or not practitioner.email or not practitioner.active:
        error = "dropped: the notice is gone or the practitioner has no email on record"
    else:
        try:
            mailer.send(message(smtp, practitioner.email, row.notice_id))
        except (smtplib.SMTPException, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
    with Session(engine) as session:
        current = session.get(EmailOutbox, row.id)
        if current is None or current.status != "pending":
            return ""
        current.attempts += 1
        if error is None:
            current.status, current.sent_at, current.last_error = "sent", utcnow(), None
            outcome = "sent"
        elif error.startswith("dropped"):
            current.status, current.last_error = "dropped", error
            outcome = "dropped"
        elif current.attempts >= max_attempts:
            current.status, current.last_error = "dead", error
            outcome = "dead"
            log.warning("email %s dead-lettered after %s attempts", current.id, current.attempts)
        else:
            current.last_error = error
            current.next_attempt_at = now + _backoff(current.attempts, backoff_seconds)
            outcome = "retried"
        session.add(current)
        session.commit()
    return outcome


def dead_letters(engine: Engine) -> list[EmailOutbox]:
    """The emails that gave up (for an operator to inspect and replay)."""
    with Session(engine) as session:
        return list(session.exec(select(EmailOutbox).where(EmailOutbox.status == "dead")).all())


def replay(engine: Engine, email_id: int | None = None) -> int:
    """Queue dead-lettered emails again (one by id, or all); return how many."""
    with Session(engine) as session:
        stmt = select(EmailOutbox).where(EmailOutbox.status == "dead")
        if email_id is not None:
            stmt = stmt.where(EmailOutbox.id == email_id)
        rows = session.exec(stmt).all()
        if email_id is not None and not rows:
            raise ValueError("no dead-lettered email has that id")
        for row in rows:
            row.status, row.attempts, row.next_attempt_at = "pending", 0, utcnow()
            session.add(row)
        session.commit()
        return len(rows)


# --------------------------------------------------------------------------- the worker


class PeopleNotifier:
    """A background thread: fan out, remind, send, every `interval_seconds`."""

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
    ) -> None:
        self.engine = engine
        self.smtp = smtp
        self.interval = interval_seconds
        self.reminder_interval = reminder_interval_seconds
        self.still_involved_days = still_involved_days
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self._reminded_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, now: datetime | None = None) -> Sent:
        """One round: remind (when due), fan out what is new, send what is due."""
        if time.monotonic() - self._reminded_at >= self.reminder_interval:
            remind(self.engine, still_involved_days=self.still_involved_days, now=now)
            self._reminded_at = time.monotonic()
        fan_out(self.engine, email=self.smtp is not None, now=now)
        if self.smtp is None:
            return Sent(0, 0, 0)
        return send_due(
            self.engine,
            self.smtp,
            now=now,
            max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
        )

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # keep the worker alive; the next round retries
                log.exception("people's notification round failed")
            self._stop.wait(self.interval)

    def start(self) -> None:
        """Start the thread."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="childindex-people-notify", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


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
    )
