"""A FHIR Bulk Data export (issue #19): one row per kick-off, seen by every node and worker.

The row holds ids, codes and counts only (never a child's details): the client, the types asked for,
`_since`, where the worker has got to, and the files written. The files themselves live on disk
(settings.fhir_bulk_dir) until `expires_at`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from directory.models.base import new_id, utc_field
from directory.models.vocabulary import utcnow


class BulkExport(SQLModel, table=True):
    """One export: kicked off by a system client, run by a worker, polled, downloaded, then expired."""

    __tablename__ = "bulk_export"
    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('in-progress', 'complete', 'failed', 'cancelled')", name="bulk_export_status"
        ),
        sa.CheckConstraint("level IN ('system', 'patient', 'group')", name="bulk_export_level"),
        # one running export per client, whichever node took the kick-off (NULL once it has finished)
        sa.UniqueConstraint("running_client", name="bulk_export_one_running"),
    )
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    client_id: str = Field(max_length=200, index=True)  # the actor's subject: only it sees the export
    running_client: str | None = Field(default=None, max_length=200)
    actor: str  # JSON of the Actor the worker acts as (ids and codes)
    scopes: str = Field(max_length=4000)  # the token's scopes at kick-off, space-separated
    level: str = Field(max_length=8)
    group_id: uuid.UUID | None = None
    types: str = Field(max_length=400)  # comma-separated resource types
    since: datetime | None = utc_field(default=None)
    request_url: str = Field(max_length=2000)
    status: str = Field(default="in-progress", max_length=12, index=True)
    transaction_time: datetime = utc_field(default_factory=utcnow)
    heartbeat_at: datetime = utc_field(default_factory=utcnow)
    children_done: int = 0
    children_total: int = 0
    output: str = "[]"  # JSON: [{"type", "file", "count"}]
    error: str | None = Field(default=None, max_length=500)
    created_at: datetime = utc_field(default_factory=utcnow)
    finished_at: datetime | None = utc_field(default=None)
    expires_at: datetime | None = utc_field(default=None)
