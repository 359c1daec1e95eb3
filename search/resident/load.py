"""Building the resident copy from the tables: every child's stored record with its keys, one row per
child, streamed chunk by chunk into the arrays of a `Base` (`load_snapshot`); and the same rows for
the few children the log says changed (`read_changes`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import chain, islice
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, func, select

from search.port import PersonFields
from search.resident.snapshot import NO_CHANGES, Base, Change, Days, Hashes, Ordinals, Snapshot, compact
from search.tables import search_key, search_log, search_record

LOAD_CHUNK = 10_000
"""Children fetched (and converted to numpy) at a time while loading: about 200,000 keys."""
_IN_CHUNK = 500

_SEP = "\x1f"
"""Joins a child's keys in one string while loading (a key holding it is read on its own)."""
_k = search_key.alias("k")
ROWS = select(
    search_record.c.child_id,
    search_record.c.fields,
    select(func.count()).select_from(_k).where(_k.c.child_id == search_record.c.child_id).scalar_subquery(),
    select(func.aggregate_strings(_k.c.key, _SEP))
    .where(_k.c.child_id == search_record.c.child_id)
    .scalar_subquery(),
)
"""Each child's stored fields with its keys, one row per child: 20 times fewer rows to turn into
Python objects than reading `search_key` itself (on SQLite each subquery reads the covering
index on child_id)."""


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _days(dates: Iterable[date | None]) -> Days:
    return np.fromiter((d.toordinal() if d else 0 for d in dates), dtype=np.int32)


def _split(conn: Connection, child_id: str, count: int, joined: str | None) -> list[str]:
    """A child's keys from the aggregated string, or, if a key holds the separator, one by one."""
    keys = joined.split(_SEP) if joined else []
    if len(keys) == count:
        return keys
    return list(conn.execute(select(search_key.c.key).where(search_key.c.child_id == child_id)).scalars())


def _release_freed_memory() -> None:
    """Hand the load's freed temporaries (a million id strings, row tuples) back to the system.

    glibc keeps freed small blocks in its heap; without this the process stays hundreds of MiB
    above what the copy holds. Elsewhere (musl, macOS) it is a no-op.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def read_changes(conn: Connection, ids: Sequence[str]) -> dict[str, Change]:
    """Each child's stored record and key hashes now, or None where it is gone."""
    found: dict[str, Change] = dict.fromkeys(ids)
    for chunk in _chunks(ids, _IN_CHUNK):
        for child_id, stored, count, joined in conn.execute(ROWS.where(search_record.c.child_id.in_(chunk))):
            keys = _split(conn, child_id, count, joined)
            found[child_id] = (
                PersonFields.from_dict(json.loads(stored)),
                tuple(dict.fromkeys(map(hash, keys))),
            )
    return found


def load_snapshot(
    reader: Callable[[], Connection], *, chunk: int, check_stop: Callable[[], None]
) -> Snapshot:
    """Stream every record with its keys (one row per child) into arrays, chunk by chunk.

    The last seq is read first: a change committed after it is replayed from the log on
    the first search (replaying is idempotent), one committed before it is in the rows
    read. A child's record and keys come from one statement, so they always agree.
    `check_stop` is called between chunks (it raises to stop the load).
    """
    parts = _Parts()
    with reader() as conn:
        last = int(conn.execute(select(func.coalesce(func.max(search_log.c.seq), 0))).scalar_one())
        result = conn.execution_options(yield_per=chunk).execute(ROWS.order_by(search_record.c.child_id))
        for rows in result.partitions():
            check_stop()
            parts.add(conn, rows)
    _release_freed_memory()  # the rows' Python objects, before the arrays' peak
    base = parts.assemble()
    _release_freed_memory()
    return Snapshot(base, np.ones(len(base.ids), dtype=np.bool_), 0, NO_CHANGES, NO_CHANGES, last)


@dataclass
class _Parts:
    """The arrays of the chunks read so far, joined once every chunk is in (`assemble`)."""

    ids: list[npt.NDArray[np.bytes_]] = field(default_factory=list)
    lengths: list[npt.NDArray[np.int64]] = field(default_factory=list)
    born: list[Days] = field(default_factory=list)
    due: list[Days] = field(default_factory=list)
    hashes: list[Hashes] = field(default_factory=list)
    ordinals: list[Ordinals] = field(default_factory=list)
    blob: bytearray = field(default_factory=bytearray)
    loaded: int = 0

    def add(self, conn: Connection, rows: Sequence[Any]) -> None:
        """One chunk of rows (child_id, stored fields, key count, joined keys) as arrays."""
        child_ids, stored, counts, joined = zip(*rows, strict=True)
        recs = [PersonFields.from_dict(json.loads(s)) for s in stored]
        raw = [compact(rec) for rec in recs]
        self.born.append(_days(rec.birth_date for rec in recs))
        self.due.append(_days(rec.expected_delivery_date for rec in recs))
        keys = [_split(conn, *row) for row in zip(child_ids, counts, joined, strict=True)]
        sizes = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
        flat = list(chain.from_iterable(keys))
        self.hashes.append(np.fromiter(map(hash, flat), dtype=np.int64, count=len(flat)))
        loaded = self.loaded
        self.ordinals.append(np.repeat(np.arange(loaded, loaded + len(rows), dtype=np.int32), sizes))
        self.ids.append(np.array([c.encode() for c in child_ids], dtype=np.bytes_))
        self.lengths.append(np.fromiter(map(len, raw), dtype=np.int64, count=len(raw)))
        self.blob += b"".join(raw)
        self.loaded += len(rows)

    def assemble(self) -> Base:
        """The base: ids in byte order, postings grouped by sorted key hash.

        Joins the parts one array at a time, emptying each list at once: the peak is set by the
        postings (8 + 4 bytes a key, 21 keys a child), held twice at most.
        """
        ids = np.concatenate(self.ids) if self.ids else np.array([], dtype="S1")
        lengths = np.concatenate(self.lengths) if self.lengths else np.array([], dtype=np.int64)
        self.ids.clear()
        self.lengths.clear()
        born = np.concatenate(self.born) if self.born else np.array([], dtype=np.int32)
        due = np.concatenate(self.due) if self.due else np.array([], dtype=np.int32)
        self.born.clear()
        self.due.clear()
        ends = np.cumsum(lengths)
        starts = ends - lengths
        hashes = np.concatenate(self.hashes) if self.hashes else np.array([], dtype=np.int64)
        self.hashes.clear()
        ordinals = np.concatenate(self.ordinals) if self.ordinals else np.array([], dtype=np.int32)
        self.ordinals.clear()
        # The database sorted by its own collation (PostgreSQL's may not be byte order); ties are
        # broken by byte order of the ids, as SQLite's BINARY collation does, so renumber if needed.
        if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            order = np.argsort(ids, kind="stable")
            ids, starts, ends = ids[order], starts[order], ends[order]
            born, due = born[order], due[order]
            renumber = np.empty(len(order), dtype=np.int32)
            renumber[order] = np.arange(len(order), dtype=np.int32)
            ordinals = renumber[ordinals]
        order = np.argsort(hashes)
        hashes = hashes[order]
        ordinals = ordinals[order]
        del order
        # The distinct keys and where each one's postings start; the postings' own hashes go.
        first = np.flatnonzero(hashes[1:] != hashes[:-1]) + 1 if len(hashes) else hashes
        distinct = np.concatenate((hashes[:1], hashes[first]))
        first = np.concatenate(([0], first, [len(hashes)])).astype(np.int64)
        del hashes
        blob, self.blob = self.blob, bytearray()
        return Base(ids, blob, starts, ends, distinct, first, ordinals, born, due)
