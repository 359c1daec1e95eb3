"""The embedded backend: blocking keys in two tables of the directory's own SQL database (declared,
with the change log, in search/tables.py and re-exported here).

Works on SQLite and PostgreSQL through SQLAlchemy Core. `search_key` holds one row per
(key, child); its primary key (key, child_id) is the index every candidate lookup uses, and
a second index on child_id makes replacing or deleting one child's keys cheap.

Every write also appends to `search_log`, in the same transaction, the children it changed (or
one NULL row for a rebuild): a process holding a memory-resident copy of the index
(`search.resident`, started with `EmbeddedBackend.start_resident`) reads the log before each
search to follow changes made by any process.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, text, update

from directory.db import READ_ONLY
from search.blocking import blocking_keys, identifier_key
from search.normalise import normalise_identifier
from search.port import BirthFilter, PersonFields
from search.tables import metadata as metadata
from search.tables import search_key as search_key
from search.tables import search_log as search_log
from search.tables import search_record as search_record

if TYPE_CHECKING:
    from search.resident import ResidentIndex

LOG_KEEP = 100_000
"""The log keeps (about) the newest this many seqs; a reader further behind loads afresh."""
LOG_PRUNE_EVERY = 10_000
"""Prune when this many seqs beyond LOG_KEEP have piled up, so a delete runs now and then."""

BATCH_SIZE = 2000
"""Records per executemany batch in upsert and rebuild."""
_IN_CHUNK = 500
"""Bound parameters per IN (...) list; well under SQLite's and PostgreSQL's limits."""

T = TypeVar("T")

_RANKED = text(
    "WITH ranked AS (SELECT child_id, count(*) AS shared FROM search_key WHERE key IN :keys "
    "GROUP BY child_id ORDER BY shared DESC, child_id LIMIT :limit) "
    "SELECT r.child_id, s.fields FROM ranked r JOIN search_record s ON s.child_id = r.child_id "
    "ORDER BY r.shared DESC, r.child_id"
).bindparams(bindparam("keys", expanding=True))
"""The children sharing the most keys, with their stored fields, in one statement (one plan,
compiled once, for SQLite and PostgreSQL alike)."""


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


class EmbeddedBackend:
    """SearchBackend over SQLAlchemy Core tables in the directory's database."""

    name = "embedded"

    def __init__(self, engine: Engine, *, resident: bool = False) -> None:
        self.engine = engine
        self.resident = resident
        self._resident: ResidentIndex | None = None

    def ensure_ready(self) -> None:
        """Create the search tables and indexes if they do not exist (then, if asked, start the
        resident copy)."""
        metadata.create_all(self.engine, checkfirst=True)
        if self.resident:
            self.start_resident()

    def start_resident(self) -> ResidentIndex:
        """Start loading a memory-resident copy of the index in a background thread.

        Searches use SQL until the copy is loaded, then the copy (kept fresh through
        `search_log`). Idempotent; the tables must exist.
        """
        from search.resident import ResidentIndex  # numpy only where a copy is kept

        if self._resident is None:
            self._resident = ResidentIndex(self.engine)
            self.resident = True
        self._resident.start()
        return self._resident

    @property
    def warm(self) -> bool:
        """False while a wanted resident copy is still loading (searches then read SQL: right,
        but slower)."""
        return self._resident is None or self._resident.ready

    @property
    def in_memory(self) -> bool:
        """True once the resident copy answers searches (see SearchBackend.in_memory)."""
        return self._resident is not None and self._resident.ready

    def stop_resident(self) -> None:
        """Stop the resident copy's loader and go back to SQL for every search."""
        if self._resident is not None:
            self._resident.stop()
            self._resident = None

    def upsert(self, records: Sequence[PersonFields]) -> None:
        """Replace each record and all its keys, in one transaction; idempotent."""
        if not records:
            return
        latest = {r.child_id: r for r in records}  # the last version of a child wins
        with self.engine.begin() as conn:
            self._lock_log(conn)
            ids = list(latest)
            self._delete(conn, ids)
            for batch in _chunks(latest.values(), BATCH_SIZE):
                self._insert(conn, batch)
            self._log(conn, ids)

    def delete(self, child_ids: Sequence[str]) -> None:
        """Remove records and their keys; unknown ids are ignored."""
        if not child_ids:
            return
        ids = list(dict.fromkeys(child_ids))
        with self.engine.begin() as conn:
            self._lock_log(conn)
            self._delete(conn, ids)
            self._log(conn, ids)

    def candidates(
        self, keys: Sequence[str], limit: int, *, keep_birth: BirthFilter | None = None
    ) -> list[PersonFields]:
        """Children sharing the most keys with `keys`, most first, at most `limit` (the resident
        copy leaves out those `keep_birth` rules out; SQL returns them, for the scorer to drop)."""
        unique = list(dict.fromkeys(keys))
        if not unique or limit <= 0:
            return []
        if self._resident is not None:
            found = self._resident.candidates(unique, limit, keep_birth=keep_birth)
            if found is not None:
                return found
        with self._reader() as conn:
            if len(unique) <= _IN_CHUNK:
                rows = conn.execute(_RANKED, {"keys": unique, "limit": limit})
                return [PersonFields.from_dict(json.loads(fields)) for _, fields in rows]
            return self._load(conn, self._rank_in_python(conn, unique, limit))

    def by_identifier(self, system: str, value: str) -> list[PersonFields]:
        """Children holding exactly this identifier (system and normalised value)."""
        wanted = normalise_identifier(system, value)
        found = self.candidates([identifier_key(system, value)], 50)
        return [
            r
            for r in found
            if any(s == system and normalise_identifier(s, v) == wanted for s, v in r.identifiers)
        ]

    def rebuild(
        self,
        records: Iterable[PersonFields],
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Replace everything with `records` in one transaction, reporting progress per batch.

        Readers keep seeing the old index until the commit (MVCC on PostgreSQL, WAL snapshots
        on SQLite); writers wait, so the indexer should replay changes made meanwhile.
        """
        self.ensure_ready()
        done = 0
        with self.engine.begin() as conn:
            self._lock_log(conn)
            conn.execute(delete(search_key))
            conn.execute(delete(search_record))
            # One NULL row says "reload" to every resident copy; older rows no longer matter.
            conn.execute(delete(search_log))
            conn.execute(insert(search_log).values(child_id=None))
            seen: set[str] = set()
            for batch in _chunks(records, BATCH_SIZE):
                fresh = [r for r in {r.child_id: r for r in batch}.values() if r.child_id not in seen]
                seen.update(r.child_id for r in fresh)
                self._insert(conn, fresh)
                done += len(fresh)
                if progress is not None:
                    progress(done)
        return done

    def count(self) -> int:
        """Number of indexed children."""
        with self._reader() as conn:
            return int(conn.execute(select(func.count()).select_from(search_record)).scalar_one())

    # --- internals ---------------------------------------------------------------------

    def _reader(self) -> Connection:
        """A connection for reads only: on SQLite a WAL snapshot that never takes the write lock."""
        return self.engine.connect().execution_options(**{READ_ONLY: True})

    @staticmethod
    def _lock_log(conn: Connection) -> None:
        """Serialise the writers of `search_log` until this transaction ends.

        On PostgreSQL a sequence hands out seqs in the order transactions ask, not the order
        they commit: without the lock a reader could see seq 12 committed, move past it, and
        miss seq 11 committed a moment later. EXCLUSIVE mode blocks other writers only; plain
        SELECTs go on. SQLite's BEGIN IMMEDIATE already lets one writer in at a time.
        """
        if conn.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE search_log IN EXCLUSIVE MODE"))

    @staticmethod
    def _log(conn: Connection, ids: Sequence[str]) -> None:
        """Record the changed children, then prune the log if it has grown past LOG_KEEP."""
        for chunk in _chunks(ids, BATCH_SIZE):
            conn.execute(insert(search_log), [{"child_id": c} for c in chunk])
        oldest, newest = conn.execute(select(func.min(search_log.c.seq), func.max(search_log.c.seq))).one()
        if newest is None or newest - oldest < LOG_KEEP + LOG_PRUNE_EVERY:
            return
        cut = conn.execute(select(func.max(search_log.c.seq)).where(search_log.c.seq <= newest - LOG_KEEP))
        cut_seq = cut.scalar_one()
        # The row at the cut becomes NULL ("reload"): a reader whose last seq is older than the
        # cut may have missed a deleted row, and it reaches this one first.
        conn.execute(delete(search_log).where(search_log.c.seq < cut_seq))
        conn.execute(update(search_log).where(search_log.c.seq == cut_seq).values(child_id=None))

    @staticmethod
    def _insert(conn: Connection, batch: Sequence[PersonFields]) -> None:
        if not batch:
            return
        record_rows: list[dict[str, Any]] = []
        key_rows: list[dict[str, Any]] = []
        for rec in batch:
            stored = rec.redacted()
            record_rows.append(
                {"child_id": rec.child_id, "fields": json.dumps(stored.to_dict(), sort_keys=True)}
            )
            key_rows.extend({"key": k, "child_id": rec.child_id} for k in blocking_keys(stored))
        conn.execute(insert(search_record), record_rows)
        if key_rows:
            conn.execute(insert(search_key), key_rows)

    @staticmethod
    def _delete(conn: Connection, ids: Sequence[str]) -> None:
        for chunk in _chunks(ids, _IN_CHUNK):
            conn.execute(delete(search_key).where(search_key.c.child_id.in_(chunk)))
            conn.execute(delete(search_record).where(search_record.c.child_id.in_(chunk)))

    @staticmethod
    def _rank_in_python(conn: Connection, keys: Sequence[str], limit: int) -> list[str]:
        counts: dict[str, int] = {}
        for chunk in _chunks(keys, _IN_CHUNK):
            for (child_id,) in conn.execute(select(search_key.c.child_id).where(search_key.c.key.in_(chunk))):
                counts[child_id] = counts.get(child_id, 0) + 1
        return sorted(counts, key=lambda c: (-counts[c], c))[:limit]

    @staticmethod
    def _load(conn: Connection, ranked: Sequence[str]) -> list[PersonFields]:
        found: dict[str, PersonFields] = {}
        for chunk in _chunks(ranked, _IN_CHUNK):
            for child_id, fields in conn.execute(
                select(search_record.c.child_id, search_record.c.fields).where(
                    search_record.c.child_id.in_(chunk)
                )
            ):
                found[child_id] = PersonFields.from_dict(json.loads(fields))
        return [found[c] for c in ranked if c in found]
