"""The bulk_export rows: what every node and worker sees of an export.

One export runs per client at a time (the `running_client` unique column: fifty kick-offs at once
insert one row, the others are refused 429, on any node). A worker proves it is alive by moving
`heartbeat_at` with each batch; an export whose heartbeat is older than `stale_seconds` (its process
died) is marked failed with an error telling the client to start again, whoever looks first.
Finished exports' files are deleted, with their row, once `expires_at` has passed.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from directory.models import BulkExport, utcnow

INTERRUPTED = (
    "The export was interrupted (the server running it stopped) and will not finish: start it again."
)


@dataclass(frozen=True)
class BulkConfig:
    """Where files go, how long they stay, how big a batch is, when a silent export is dead."""

    directory: Path
    expire_minutes: int = 24 * 60
    batch_size: int = 500
    stale_seconds: int = 300
    retry_after_seconds: int = 5

    def files_of(self, export_id: uuid.UUID) -> Path:
        """The folder of one export's files."""
        return self.directory / export_id.hex


def running_of(session: Session, client: str) -> BulkExport | None:
    """The export this client has running, if any."""
    return session.exec(select(BulkExport).where(BulkExport.running_client == client)).first()


def fail_interrupted(session: Session, cfg: BulkConfig, *, client: str | None = None) -> int:
    """Mark failed every running export (of one client, or all) whose worker has gone silent."""
    stmt = (
        sa.update(BulkExport)
        .where(
            col(BulkExport.status) == "in-progress",
            col(BulkExport.heartbeat_at) < utcnow() - timedelta(seconds=cfg.stale_seconds),
        )
        .values(status="failed", running_client=None, error=INTERRUPTED, finished_at=utcnow())
    )
    if client is not None:
        stmt = stmt.where(col(BulkExport.client_id) == client)
    return int(session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]


def own_export(session: Session, cfg: BulkConfig, export_id: str, client: str) -> BulkExport | None:
    """The export with this id if this client started it (None otherwise: an unknown id and another
    client's export are the same answer), an interrupted one marked failed first."""
    try:
        eid = uuid.UUID(hex=export_id) if len(export_id) == 32 else uuid.UUID(export_id)
    except ValueError:
        return None
    row = session.get(BulkExport, eid)
    if row is None or row.client_id != client or row.status == "cancelled":
        return None
    if row.status == "in-progress" and fail_interrupted(session, cfg, client=client):
        session.refresh(row)
    return row


def outputs(row: BulkExport) -> list[dict[str, Any]]:
    """The files an export wrote: [{type, file, count}]."""
    return list(json.loads(row.output or "[]"))


def remove_files(cfg: BulkConfig, export_id: uuid.UUID) -> None:
    """Delete an export's files (nothing when there are none)."""
    shutil.rmtree(cfg.files_of(export_id), ignore_errors=True)


def cancel(session: Session, cfg: BulkConfig, row: BulkExport) -> None:
    """Cancel an export (a running worker stops at its next batch) and delete its files."""
    row.status, row.running_client, row.finished_at = "cancelled", None, utcnow()
    row.expires_at = utcnow()  # (the row goes at the next sweep; the files go now)
    session.add(row)
    remove_files(cfg, row.id)


def expire(session: Session, cfg: BulkConfig, now: datetime | None = None) -> int:
    """Delete the files and rows of exports past their expiry (finished, failed or cancelled ones)."""
    now = now or utcnow()
    gone = session.exec(
        select(BulkExport.id).where(col(BulkExport.expires_at).is_not(None), col(BulkExport.expires_at) < now)
    ).all()
    for eid in gone:
        remove_files(cfg, eid)
    if gone:
        session.execute(sa.delete(BulkExport).where(col(BulkExport.id).in_(gone)))
    return len(gone)
