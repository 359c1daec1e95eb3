"""The audit log's tables (events, the children each concerns, the chain's head) and an access log entry."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from directory.models.base import Output, utc_field


class AuditEvent(SQLModel, table=True):
    """One entry of the append-only, hash-chained audit log."""

    __tablename__ = "audit_event"
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = utc_field(index=True)
    request_id: str | None = Field(default=None, max_length=64)
    actor_subject: str = Field(max_length=200, index=True)
    actor_role: str = Field(max_length=40)
    actor_organisation: str | None = Field(default=None, max_length=200)
    client_id: str | None = Field(default=None, max_length=200)
    purpose: str | None = Field(default=None, max_length=40)
    action: str = Field(max_length=60, index=True)
    target_type: str | None = Field(default=None, max_length=40)
    target_id: str | None = Field(default=None, max_length=64, index=True)
    outcome: str = Field(max_length=20)
    detail: str | None = None  # canonical JSON: never names or other child data
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)  # HMAC-SHA256 with key_id; plain SHA-256 before the chain was keyed
    key_id: str | None = Field(default=None, max_length=16)  # the audit key (None: written before keying)


class AuditSubject(SQLModel, table=True):
    """Links an audit event to each child it concerned (a search can return several)."""

    __tablename__ = "audit_subject"
    seq: int = Field(foreign_key="audit_event.seq", primary_key=True)
    child_id: uuid.UUID = Field(primary_key=True, index=True)


class AuditHead(SQLModel, table=True):
    """The last event of the chain: the lock appends take and the anchor verify checks."""

    __tablename__ = "audit_head"
    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(max_length=64)


class AccessLogEntry(Output):
    """One audited access to a child record."""

    seq: int
    at: datetime
    actor_subject: str
    actor_role: str
    actor_organisation: str | None
    purpose: str | None
    action: str
    outcome: str
