"""Notifications: subscriptions, the events queued for each subscriber, notices to practitioners."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from directory.models.base import Output, new_id, utc_field
from directory.models.vocabulary import utcnow
from directory.sealed import Sealed


class Subscription(SQLModel, table=True):
    """Who wants to be told about CAF, Lead Professional and shielded-record events, and where."""

    __table_args__ = (
        sa.CheckConstraint("kind IN ('webhook', 'rest-hook')", name="subscription_kind"),
        sa.CheckConstraint("status IN ('active', 'off')", name="subscription_status"),
    )
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    owner: str = Field(max_length=200)  # the client or subject that registered it
    endpoint: str = Field(max_length=500)
    kind: str = Field(default="webhook", max_length=10)
    events: str = Field(max_length=300)  # space-separated event codes
    # keys the HMAC signature; sealed at rest (directory/sealed.py)
    secret: str | None = Field(default=None, max_length=200, sa_type=Sealed("subscription.secret"))
    status: str = Field(default="active", max_length=8)
    created_at: datetime = utc_field(default_factory=utcnow)
    updated_at: datetime = utc_field(default_factory=utcnow)  # registered or switched off: meta.lastUpdated
    # as a FHIR Subscription was registered (None for subscriptions configured in code)
    reason: str | None = Field(default=None, max_length=500)
    criteria: str | None = Field(default=None, max_length=500)


class Notification(SQLModel, table=True):
    """One event for one subscriber: delivered by a worker with retries, then dead-lettered."""

    __table_args__ = (sa.UniqueConstraint("subscription_id", "audit_seq", name="notification_once"),)
    id: int | None = Field(default=None, primary_key=True)
    subscription_id: uuid.UUID = Field(foreign_key="subscription.id", index=True)
    audit_seq: int
    event: str = Field(max_length=40)
    child_id: uuid.UUID | None = None
    payload: str  # JSON, never names or other child data
    status: str = Field(default="pending", max_length=10, index=True)  # pending | delivered | dead
    attempts: int = 0
    next_attempt_at: datetime = utc_field(default_factory=utcnow)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = utc_field(default_factory=utcnow)
    delivered_at: datetime | None = utc_field(default=None)


class Notice(SQLModel, table=True):
    """A message to one practitioner in their inbox: a change someone else made to a CAF they hold
    (written with the change, `audit_seq` NULL), or an event of a child they work with (written by the
    people's notifier from the audit log, one per practitioner and audit event).

    Read by its practitioner on their inbox page or `GET /api/v1/inbox`; it names the child by id
    only and carries the reason given, never the child's details.
    """

    __table_args__ = (sa.UniqueConstraint("practitioner_id", "audit_seq", name="notice_once"),)
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    practitioner_id: uuid.UUID = Field(foreign_key="practitioner.id", index=True)
    child_id: uuid.UUID = Field(foreign_key="child.id")
    caf_id: uuid.UUID | None = Field(default=None, foreign_key="assessment.id")
    action: str = Field(max_length=60)  # the audit action of the change, e.g. caf.close
    message: str = Field(max_length=500)
    reason: str | None = Field(default=None, max_length=500)
    by_subject: str = Field(max_length=200)
    by_name: str | None = Field(default=None, max_length=200)
    by_role: str = Field(max_length=40)
    by_organisation: str | None = Field(default=None, max_length=200)
    created_at: datetime = utc_field(default_factory=utcnow)
    read_at: datetime | None = utc_field(default=None)
    # the audit event it tells of (NULL: written with the change by notices.tell), its event code, and
    # where to look (a path of this service: the child's card, a request, the worklist)
    audit_seq: int | None = None
    event: str | None = Field(default=None, max_length=60)
    link: str | None = Field(default=None, max_length=300)


class NoticePreference(SQLModel, table=True):
    """How a practitioner wants to be told: by email too (the default), or in the inbox only."""

    __tablename__ = "notice_preference"
    __table_args__ = (sa.CheckConstraint("channel IN ('email', 'inbox')", name="notice_channel"),)
    practitioner_id: uuid.UUID = Field(foreign_key="practitioner.id", primary_key=True)
    channel: str = Field(default="email", max_length=8)
    updated_at: datetime = utc_field(default_factory=utcnow)


class EmailOutbox(SQLModel, table=True):
    """An email saying that a notice waits (no child data: a link to the notice by id), written with the
    notice and sent by the worker with retries, then dead-lettered (kept, replayable)."""

    __tablename__ = "email_outbox"
    __table_args__ = (
        sa.CheckConstraint("status IN ('pending', 'sent', 'dead', 'dropped')", name="email_status"),
    )
    id: int | None = Field(default=None, primary_key=True)
    # no foreign key: a purge deletes the notice and leaves this row (it names nothing but the id)
    notice_id: uuid.UUID = Field(unique=True)
    practitioner_id: uuid.UUID = Field(foreign_key="practitioner.id", index=True)
    status: str = Field(default="pending", max_length=8, index=True)
    attempts: int = 0
    next_attempt_at: datetime = utc_field(default_factory=utcnow)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = utc_field(default_factory=utcnow)
    sent_at: datetime | None = utc_field(default=None)


class NoticeMark(SQLModel, table=True):
    """A reminder or look-up notice already made (its key: kind and ids, e.g. a TAC and its review date):
    the periodic jobs make each one once, however many workers run."""

    __tablename__ = "notice_mark"
    key: str = Field(primary_key=True, max_length=200)
    made_at: datetime = utc_field(default_factory=utcnow)


class NotificationCursor(SQLModel, table=True):
    """How far the notifier has read the audit log (one row)."""

    __tablename__ = "notification_cursor"
    id: int = Field(default=1, primary_key=True)
    audit_seq: int = 0


class NoticeRead(Output):
    """A notice to the signed-in practitioner about a CAF they hold."""

    id: uuid.UUID
    child_id: uuid.UUID
    caf_id: uuid.UUID | None
    action: str
    message: str
    reason: str | None
    by_name: str | None
    by_role: str
    by_organisation: str | None
    created_at: datetime
    read_at: datetime | None
    event: str | None = None
    link: str | None = None
