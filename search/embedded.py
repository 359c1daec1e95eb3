"""The embedded backend: blocking keys in two tables of the directory's own SQL database.

Works on SQLite and PostgreSQL through SQLAlchemy Core. `search_key` holds one row per
(key, child); its primary key (key, child_id) is the index every candidate lookup uses, and
a second index on child_id makes replacing or deleting one child's keys cheap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
)

from directory.db import READ_ONLY
from search.matching import blocking_keys, identifier_key
from search.normalise import normalise_identifier
from search.port import PersonFields

metadata = MetaData()
"""The search tables; create them with `EmbeddedBackend.ensure_ready` or an Alembic migration."""

search_record = Table(
    "search_record",
    metadata,
    Column("child_id", String(64), primary_key=True),
    # PersonFields.to_dict() as JSON text: portable across SQLite and PostgreSQL, and the
    # database never needs to look inside it.
    Column("fields", Text, nullable=False),
)

search_key = Table(
    "search_key",
    metadata,
    Column("key", String(160), primary_key=True),
    Column("child_id", String(64), primary_key=True),
    Index("ix_search_key_child_id", "child_id"),
    # On SQLite the primary key is the table itself (no hidden rowid copy): a third less disk
    # at tens of millions of keys. Other dialects ignore this.
    sqlite_with_rowid=False,
)

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

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def ensure_ready(self) -> None:
        """Create the search tables and indexes if they do not exist."""
        metadata.create_all(self.engine, checkfirst=True)

    def upsert(self, records: Sequence[PersonFields]) -> None:
        """Replace each record and all its keys, in one transaction; idempotent."""
        if not records:
            return
        latest = {r.child_id: r for r in records}  # the last version of a child wins
        with self.engine.begin() as conn:
            ids = list(latest)
            self._delete(conn, ids)
            for batch in _chunks(latest.values(), BATCH_SIZE):
                self._insert(conn, batch)

    def delete(self, child_ids: Sequence[str]) -> None:
        """Remove records and their keys; unknown ids are ignored."""
        if not child_ids:
            return
        with self.engine.begin() as conn:
            self._delete(conn, list(dict.fromkeys(child_ids)))

    def candidates(self, keys: Sequence[str], limit: int) -> list[PersonFields]:
        """Children sharing the most keys with `keys`, most first, at most `limit`."""
        unique = list(dict.fromkeys(keys))
        if not unique or limit <= 0:
            return []
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
            conn.execute(delete(search_key))
            conn.execute(delete(search_record))
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
