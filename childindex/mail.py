"""Email through SMTP: the outbox of emails to people about their notices (written with the notice by
childindex/people_notify.py), and the social care front door's step-up emails (interop/front_door.py).
Sent with smtplib on one connection per round, certificates always verified, retried with back-off,
dead-lettered after many attempts (kept, replayable with `childindex emails`). An email never carries
child data: only that there is something to see, and a link."""

from __future__ import annotations

import logging
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from directory.models import Child, FrontDoorNotice, Practitioner, utcnow
from directory.models.notifications import EmailOutbox, Notice
from interop.front_door import GONE, email_text
from interop.notify import backoff

log = logging.getLogger("childindex.mail")


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
            current.next_attempt_at = now + backoff(current.attempts, backoff_seconds)
            outcome = "retried"
        session.add(current)
        session.commit()
    return outcome


def send_front_door_emails(
    engine: Engine,
    smtp: Smtp,
    *,
    to: str,
    now: datetime | None = None,
    max_attempts: int = 8,
    backoff_seconds: float = 30.0,
    batch: int = 20,
) -> Sent:
    """Email the social care front door about each queued step-up (interop.front_door.email_text: the
    referrer, ids and a link, no child details); retried, then dead-lettered like the webhook's."""
    now = now or utcnow()
    with Session(engine, expire_on_commit=False) as session:
        due = session.exec(
            select(FrontDoorNotice)
            .where(
                FrontDoorNotice.channel == "email",
                FrontDoorNotice.status == "queued",
                col(FrontDoorNotice.next_attempt_at) <= now,
            )
            .order_by(col(FrontDoorNotice.created_at))
            .limit(batch)
        ).all()
        texts: dict[uuid.UUID, tuple[str, str]] = {}
        for notice in due:
            child = session.get(Child, notice.child_id)
            if child is None or child.status in GONE:  # sealed or purged since: nothing leaves
                notice.status, notice.last_error = "dead", "the record is no longer held"
                session.add(notice)
            else:
                texts[notice.id] = email_text(session, notice, smtp.base_url.rstrip("/"))
        session.commit()  # no transaction is held while we wait on the network
    sent = retried = dead = 0
    mailer = _Mailer(smtp)
    try:
        for notice in due:
            if notice.id not in texts:
                dead += 1
                continue
            msg = EmailMessage()
            msg["Subject"], msg["From"], msg["To"] = texts[notice.id][0], smtp.sender, to
            msg.set_content(texts[notice.id][1])
            error = None
            try:
                mailer.send(msg)
            except (smtplib.SMTPException, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
            with Session(engine) as session:
                row = session.get(FrontDoorNotice, notice.id)
                if row is None or row.status != "queued":
                    continue
                row.attempts += 1
                if error is None:
                    row.status, row.delivered_at, row.last_error = "delivered", utcnow(), None
                    sent += 1
                elif row.attempts >= max_attempts:
                    row.status, row.last_error = "dead", error
                    dead += 1
                else:
                    row.last_error = error
                    row.next_attempt_at = now + backoff(row.attempts, backoff_seconds)
                    retried += 1
                session.add(row)
                session.commit()
    finally:
        mailer.close()
    return Sent(sent, retried, dead)


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
