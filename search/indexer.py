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


class BackgroundIndexer:
    """Drains the outbox every `interval` seconds in a daemon thread while the app runs."""

    def __init__(self, engine: Engine, backend: SearchBackend, *, interval: float = 0.5) -> None:
        self.engine, self.backend, self.interval = engine, backend, interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._run, name="childindex-indexer", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Ask for a drain now (after a write)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop and wait for the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                drain(self.engine, self.backend)
            except Exception:  # keep going: the rows stay pending and are retried
                log.exception("search indexer failed; will retry")
            self._wake.wait(self.interval)
            self._wake.clear()
