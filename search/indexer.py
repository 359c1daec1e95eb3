"""Applies directory changes from the outbox to a search backend: idempotent and resumable."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from directory.db import READ_ONLY
from directory.jobs import OUTBOX_CHANNEL, Job
from directory.models import Outbox, utcnow
from search.port import SearchBackend
from search.projection import project

log = logging.getLogger("childindex.search")
_OUTBOX = Outbox.__table__  # type: ignore[attr-defined]


_LOCAL = threading.Lock()
_PG_LOCK = 0x53524348  # one indexer at a time per PostgreSQL database


@contextmanager
def _only_indexer(engine: Engine, *, wait: bool) -> Iterator[bool]:
    """Hold the indexer's lock (advisory on PostgreSQL, in-process on SQLite); False if taken."""
    if not _LOCAL.acquire(blocking=wait):
        yield False
        return
    try:
        if engine.dialect.name != "postgresql":
            yield True
            return
        with engine.connect() as conn:
            if wait:
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK})
                got = True
            else:
                got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _PG_LOCK}).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK})
                    conn.commit()
    finally:
        _LOCAL.release()


def drain(
    engine: Engine,
    backend: SearchBackend,
    *,
    batch: int = 500,
    max_batches: int | None = None,
    wait: bool = False,
) -> int:
    """Apply pending outbox rows to the backend until none are left; return how many were applied.

    A batch is marked processed only after the backend accepted it, so a crash mid-run means the
    batch is applied again next time — harmless, because upserts and deletes are idempotent. Only
    one indexer runs at a time, so an older projection never overwrites a newer one. No
    transaction is held while the backend writes (the embedded backend writes to the same
    database).
    """
    applied = 0
    batches = 0
    with _only_indexer(engine, wait=wait) as mine:
        if not mine:
            return 0
        while max_batches is None or batches < max_batches:
            # Looking for work (every half second in `serve`) only reads: no write lock for it.
            with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
                rows = conn.execute(
                    sa.select(_OUTBOX.c.id, _OUTBOX.c.entity_id)
                    .where(_OUTBOX.c.processed_at.is_(None), _OUTBOX.c.topic == "child")
                    .order_by(_OUTBOX.c.id)
                    .limit(batch)
                ).all()
                if not rows:
                    break
                ids = list(dict.fromkeys(uuid.UUID(hex=r.entity_id) for r in rows))
                records, removed = project(conn, ids)
            if records:
                backend.upsert(records)
            if removed:
                backend.delete(removed)
            with engine.begin() as conn:
                conn.execute(
                    sa.update(_OUTBOX)
                    .where(_OUTBOX.c.id.in_([r.id for r in rows]))
                    .values(processed_at=utcnow())
                )
            applied += len(rows)
            batches += 1
    return applied


def pending(engine: Engine) -> int:
    """Outbox rows not yet applied."""
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).where(_OUTBOX.c.processed_at.is_(None))).scalar_one()
        )


class BackgroundIndexer(Job):
    """Drains the outbox while this node holds the indexer's lease (directory/jobs.py): every
    `interval` seconds, and at once when a write's NOTIFY arrives (PostgreSQL) or on `poke()`.
    How soon its writes are searchable is the backend's: `serve` gives an Elasticsearch backend
    `refresh=True` (childindex/cli `_visible_at_once`)."""

    name = "indexer"
    channel = OUTBOX_CHANNEL

    def __init__(self, engine: Engine, backend: SearchBackend, *, interval: float = 0.5) -> None:
        super().__init__(engine, interval=interval)
        self.backend = backend

    def work(self) -> int:
        """Drain batch by batch, stopping at once if the lease is lost between batches."""
        applied = 0
        while True:
            done = drain(self.engine, self.backend, max_batches=1)
            applied += done
            if not done or not self.holding:
                break
            self._lease.check()
        return applied
