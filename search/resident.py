"""A memory-resident copy of the embedded index, kept fresh through `search_log`.

Why it exists: at 1,000,000 children the embedded backend's candidate statement reads about
2,200 postings out of 21 million rows in `search_key`, groups them and joins 200 records: 3.5 ms
per search with a warm page cache and about 9 ms with a cold one (and the page cache of a busy
machine is rarely warm). The same lookup over sorted numpy arrays in this process's memory takes
a fraction of a millisecond and touches no disk. The database stays the truth; this is a cache
with a change log, and every search checks the log first, so a search never sees older data
than the SQL path would.

What it holds (0.33 GiB of arrays per million children, 0.5 GiB resident in all; most of it
the postings and the stored records):

- the *base*, loaded once: the distinct keys as a sorted int64 array of their hashes (Python's
  `hash` of the key: the copy lives in one process; a 64-bit collision, vanishingly rare, would
  at worst count one more shared key for a candidate that is then scored anyway), each with
  where its postings start in an int32 array of child ordinals grouped by key; the children's
  ids, sorted, as a numpy bytes array (ordinal = position, so ordinal order is child_id order
  for ties: byte order, which is SQLite's and, for the directory's lowercase hex ids,
  PostgreSQL's whatever its collation); and their stored JSON in one blob with start and end
  offsets, each as a `marshal`led tuple (see `_compact`);
- an `alive` mask over base ordinals and a small *delta* for children changed since the load
  (dicts: child_id -> record and key hashes, key hash -> child_ids; see `_Snapshot`).

Searches read an immutable snapshot (base, alive, delta, last seq applied). Applying changes
builds a new snapshot under a lock and swaps the reference, so concurrent searches never see a
half-applied state. A rebuild (a NULL row in the log), a pruned gap or a large backlog drops the
copy: searches go back to SQL while a background thread loads a new one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import marshal
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import chain, islice
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, bindparam, func, select

from directory.db import Prepared, Readable, driver_reader, reader
from search.embedded import search_key, search_log, search_record
from search.port import BirthFilter, PersonFields

log = logging.getLogger("childindex.search")

LOAD_CHUNK = 10_000
"""Children fetched (and converted to numpy) at a time while loading: about 200,000 keys."""
POLL_ROWS = 1_000
"""Log rows applied per round trip."""
MAX_DELTA = 50_000
"""More changed children than this since the load: load afresh instead of growing the delta."""
RECENT_MAX = 2_000
"""Children in the delta's small level before it is folded into the large one."""
RETRY_SECONDS = 30.0
"""Wait after a failed load before trying again (searches use SQL meanwhile)."""
_IN_CHUNK = 500

_SEP = "\x1f"
"""Joins a child's keys in one string while loading (a key holding it is read on its own)."""
_k = search_key.alias("k")
_ROWS = select(
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

_POLL = Prepared(
    select(search_log.c.seq, search_log.c.child_id)
    .where(search_log.c.seq > bindparam("last"))
    .order_by(search_log.c.seq)
    .limit(POLL_ROWS)
)

Hashes = npt.NDArray[np.int64]
Change = tuple[PersonFields, tuple[int, ...]] | None
"""A child's record and key hashes now, or None: it is gone."""
Ordinals = npt.NDArray[np.int32]
Days = npt.NDArray[np.int32]


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


@dataclass(frozen=True, slots=True, eq=False)
class _Base:
    """What was loaded: postings, ids and stored fields. Never changed after the load."""

    ids: npt.NDArray[np.bytes_]
    blob: bytes | bytearray
    starts: npt.NDArray[np.int64]
    ends: npt.NDArray[np.int64]
    keys: Hashes
    """The distinct key hashes, sorted."""
    first: npt.NDArray[np.int64]
    """Where each key's postings start in `ordinals` (and, one past the last, its length)."""
    ordinals: Ordinals
    """The postings: child ordinals grouped by key, in `keys` order."""
    born: Days
    """Each child's date of birth as a day number (`date.toordinal`; 0: none), and below its
    expected delivery date: tested before a candidate is read back whole (see `births`)."""
    due: Days

    def ordinal(self, child_id: str) -> int | None:
        """The base ordinal of a child, or None when it was not loaded."""
        raw = child_id.encode()
        pos = int(self.ids.searchsorted(raw))
        return pos if pos < len(self.ids) and self.ids[pos] == raw else None

    def fields(self, ordinals: Sequence[int]) -> list[PersonFields]:
        """The stored records of these ordinals, in that order."""
        blob, at = self.blob, np.asarray(ordinals, dtype=np.int64)
        spans = zip(self.starts[at].tolist(), self.ends[at].tolist(), strict=True)
        return [_expand(marshal.loads(blob[a:b])) for a, b in spans]

    def births(self, ordinals: Sequence[int]) -> list[tuple[date | None, date | None]]:
        """The dates of birth and expected delivery of these ordinals, in that order."""
        at = np.asarray(ordinals, dtype=np.int64)
        return [
            (_day(b), _day(d)) for b, d in zip(self.born[at].tolist(), self.due[at].tolist(), strict=True)
        ]

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays and the blob."""
        arrays = (self.ids, self.starts, self.ends, self.keys, self.first, self.ordinals, self.born, self.due)
        return len(self.blob) + sum(a.nbytes for a in arrays)


@dataclass(frozen=True, slots=True, eq=False)
class _Delta:
    """Children changed since the load: each one's record and key hashes (None: deleted), and the
    children holding each key hash. Immutable; `with_changes` copies (at C speed, about 0.3 ms per
    1,000 children held) and shares every unchanged tuple."""

    children: Mapping[str, Change]
    postings: Mapping[int, tuple[str, ...]]
    """Key hash -> children holding it (tuples: nothing for the garbage collector to trace)."""

    def with_changes(self, changes: Mapping[str, Change], *, keep_deletions: bool) -> _Delta:
        """A new delta with these children replaced or deleted."""
        children = dict(self.children)
        postings: dict[int, tuple[str, ...] | set[str]] = dict(self.postings)
        copied: set[int] = set()  # hashes whose children are a set of the new delta's, for now

        def own(h: int) -> set[str]:
            current = postings.get(h, ())
            if h not in copied:
                copied.add(h)
                current = postings[h] = set(current)
            assert isinstance(current, set)
            return current

        for child_id, change in changes.items():
            old = children.pop(child_id, None)
            if old is not None:
                for h in old[1]:
                    own(h).discard(child_id)
            if change is not None:
                children[child_id] = change
                for h in change[1]:
                    own(h).add(child_id)
            elif keep_deletions:
                children[child_id] = None
        for h in copied:
            held = postings[h]
            if held:
                postings[h] = tuple(held)
            else:
                del postings[h]
        frozen: dict[int, tuple[str, ...]] = postings  # type: ignore[assignment]
        return _Delta(children, frozen)


_NO_CHANGES = _Delta({}, {})


@dataclass(frozen=True, slots=True, eq=False)
class _Snapshot:
    """One consistent state: the base, which base rows are alive, and the delta since the load.

    Immutable once published, so a search holding one is never disturbed. The delta has two
    levels: `recent` (small, copied by every `apply`) over `settled` (large, copied only when
    `recent` passes RECENT_MAX children and is folded into it). A child in `recent` hides its
    entry in `settled`; a deletion in `recent` is kept for that, one folded into `settled` is
    dropped (its base row, if any, is dead already). So a batch costs in proportion to
    RECENT_MAX, not to the whole delta (measured at 50,000 children held: one level, 16 ms a
    batch; two, well under 1 ms but for one fold in every RECENT_MAX changes).
    """

    base: _Base
    alive: npt.NDArray[np.bool_]
    dead: int
    settled: _Delta
    recent: _Delta
    last: int

    @property
    def changed(self) -> int:
        """The delta's weight: entries in both levels plus base rows marked dead."""
        return len(self.settled.children) + len(self.recent.children) + self.dead

    def delta_children(self) -> int:
        """Children the delta holds a record for now."""
        recent = self.recent.children
        settled = sum(1 for c in self.settled.children if c not in recent)
        return settled + sum(change is not None for change in recent.values())

    def candidates(
        self, keys: Sequence[str], limit: int, keep_birth: BirthFilter | None = None
    ) -> list[PersonFields]:
        """As `EmbeddedBackend.candidates`: most shared keys first, ties by child_id ascending;
        of those, only the ones `keep_birth` keeps (their dates are tested before the rest is read)."""
        ranked = self.rank(keys, limit)
        if keep_birth is not None:
            ranked = self._could_match(ranked, keep_birth)
        ordinals = [r for r in ranked if isinstance(r, int)]
        if len(ordinals) == len(ranked):
            return self.base.fields(ordinals)
        return [self.base.fields([r])[0] if isinstance(r, int) else self._record(r) for r in ranked]

    def _could_match(self, ranked: list[int | str], keep: BirthFilter) -> list[int | str]:
        at = [r for r in ranked if isinstance(r, int)]
        if keep.near_days is not None:
            # An exact date of birth: test the base's day numbers against the few near it; only
            # candidates born near it (or with no date of birth) are asked one by one, the rest
            # get `far`. (A set lookup per candidate: np.isin costs seven times as much on two
            # hundred.)
            near = keep.near_days
            born = self.base.born[np.asarray(at, dtype=np.int64)].tolist()
            ask = [o for o, b in zip(at, born, strict=True) if b == 0 or b in near]
        else:
            ask = at
        asked = {o: keep(b, d) for o, (b, d) in zip(ask, self.base.births(ask), strict=True)}
        if len(at) == len(ranked) and not keep.far:  # the usual case: only those asked can stay
            return [o for o in ask if asked[o]]
        kept: list[int | str] = []
        for r in ranked:
            if isinstance(r, int):
                if asked.get(r, keep.far):
                    kept.append(r)
            else:
                rec = self._record(r)
                if keep(rec.birth_date, rec.expected_delivery_date):
                    kept.append(r)
        return kept

    def _record(self, child_id: str) -> PersonFields:
        change = self.recent.children.get(child_id) or self.settled.children.get(child_id)
        assert change is not None, "a ranked delta child is present"
        return change[0]

    def rank(self, keys: Sequence[str], limit: int) -> list[int | str]:
        """The candidates in order, each a base ordinal or the child_id of a delta child."""
        base = self.base
        wanted = np.array(sorted(set(map(hash, keys))), dtype=np.int64)
        # One binary search per key over the distinct keys (5 million at 1,000,000 children), not
        # two over every posting (21 million): a quarter less time, and 86 MiB less held.
        at = base.keys.searchsorted(wanted)
        inside = at < len(base.keys)
        at = at[inside]
        at = at[base.keys[at] == wanted[inside]]  # the keys some child has
        top: list[int] = []
        top_counts: list[int] = []
        if len(at):
            bounds = zip(base.first[at].tolist(), base.first[at + 1].tolist(), strict=True)
            slices = [base.ordinals[a:b] for a, b in bounds]
            found = np.concatenate(slices) if len(slices) > 1 else slices[0]
            if self.dead:
                found = found[self.alive[found]]
            ordinals, counts = np.unique(found, return_counts=True)
            # np.unique sorts by ordinal (= child_id order); a stable sort by count keeps that for ties.
            order = np.argsort(-counts, kind="stable")[:limit]
            top, top_counts = ordinals[order].tolist(), counts[order].tolist()
        delta: dict[str, int] = {}
        settled, recent = self.settled.postings, self.recent.postings
        if settled or recent:
            hidden = self.recent.children
            for h in wanted.tolist():
                for child_id in recent.get(h, ()):
                    delta[child_id] = delta.get(child_id, 0) + 1
                for child_id in settled.get(h, ()):
                    if child_id not in hidden:
                        delta[child_id] = delta.get(child_id, 0) + 1
        if not delta:
            return list(top)
        # A delta child's base row (if any) is dead, so the base's top `limit` and the whole delta
        # together hold the answer. Ordinal order is byte order of the ids: UTF-8 bytes sort as
        # the code points Python compares.
        merged: list[tuple[int, str, int | str]] = [
            (-c, base.ids[o].decode(), o) for o, c in zip(top, top_counts, strict=True)
        ]
        merged.extend((-c, child_id, child_id) for child_id, c in delta.items())
        merged.sort(key=lambda m: (m[0], m[1]))
        return [m[2] for m in merged[:limit]]

    def apply(self, changes: Mapping[str, Change], last: int, *, recent_max: int = RECENT_MAX) -> _Snapshot:
        """A new snapshot with these children replaced (a record and its key hashes) or deleted."""
        alive, dead = self.alive, self.dead
        for child_id in changes:
            o = self.base.ordinal(child_id)
            if o is not None and alive[o]:
                if alive is self.alive:
                    alive = alive.copy()
                alive[o] = False
                dead += 1
        settled, recent = self.settled, self.recent.with_changes(changes, keep_deletions=True)
        if len(recent.children) > recent_max:
            settled, recent = settled.with_changes(recent.children, keep_deletions=False), _NO_CHANGES
        return _Snapshot(self.base, alive, dead, settled, recent, last)


class ResidentIndex:
    """A per-process copy of `search_key` and `search_record`, fresh as of every search.

    `candidates` returns None until the copy is loaded (and while it reloads): the caller then
    runs the SQL statement instead.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        chunk: int = LOAD_CHUNK,
        max_delta: int = MAX_DELTA,
        recent_max: int = RECENT_MAX,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.engine = engine
        self.chunk, self.max_delta, self.recent_max = chunk, max_delta, recent_max
        self.retry_seconds = retry_seconds
        self._snap: _Snapshot | None = None
        self._apply = threading.Lock()  # one thread applies changes (or starts a load) at a time
        self._stop = threading.Event()
        self._loaded = threading.Condition()
        self._loader: threading.Thread | None = None
        self.loads = 0
        """Completed loads (the first and every reload)."""
        self.last_load_seconds = 0.0

    # --- life cycle --------------------------------------------------------------------

    def start(self) -> None:
        """Load in a background thread, unless loaded or loading already."""
        with self._apply:
            self._stop.clear()
            if self._snap is None:
                self._start_loader()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop loading (between chunks) and drop the copy."""
        self._stop.set()
        loader = self._loader
        if loader is not None and loader is not threading.current_thread():
            loader.join(timeout)
        self._snap = None

    @property
    def ready(self) -> bool:
        """True while searches are answered from memory."""
        return self._snap is not None

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until a copy is loaded; False on timeout."""
        with self._loaded:
            return self._loaded.wait_for(lambda: self._snap is not None, timeout)

    def stats(self) -> dict[str, Any]:
        """What the copy holds now (for logs and benchmarks)."""
        snap = self._snap
        if snap is None:
            return {"ready": False, "loads": self.loads}
        return {
            "ready": True,
            "loads": self.loads,
            "children": len(snap.base.ids),
            "postings": len(snap.base.ordinals),
            "base_bytes": snap.base.nbytes,
            "delta_children": snap.delta_children(),
            "dead": snap.dead,
            "last_seq": snap.last,
            "load_seconds": round(self.last_load_seconds, 2),
        }

    # --- searching ---------------------------------------------------------------------

    def candidates(
        self, keys: Sequence[str], limit: int, *, keep_birth: BirthFilter | None = None
    ) -> list[PersonFields] | None:
        """Children sharing the most keys, as the SQL path returns them (less those `keep_birth`
        rules out); None: not loaded."""
        snap = self._fresh()
        if snap is None:
            return None
        return snap.candidates(keys, limit, keep_birth)

    def _fresh(self) -> _Snapshot | None:
        """The current snapshot after applying any change the log shows; None: use SQL."""
        snap = self._snap
        if snap is None:
            return None
        rows: list[tuple[int, str | None]] | None
        rows = self._peek(snap.last)
        if not rows:
            return snap
        with self._apply:
            if self._snap is None:
                return None
            if self._snap is not snap:  # another thread applied meanwhile: start from its state
                snap = self._snap
                rows = None
            with self._reader() as conn:
                while True:
                    if rows is None:
                        rows = self._poll(conn, snap.last)
                    if not rows:
                        break
                    ids = [c for c in dict.fromkeys(c for _, c in rows) if c is not None]
                    reload = any(c is None for _, c in rows)  # a rebuild, or rows pruned unseen
                    if reload or snap.changed + len(ids) > self.max_delta:
                        # Load afresh rather than carry (or guess) the change.
                        self._snap = None
                        self._start_loader()
                        return None
                    snap = snap.apply(self._read(conn, ids), rows[-1][0], recent_max=self.recent_max)
                    more, rows = len(rows) == POLL_ROWS, None
                    if not more:
                        break
            self._snap = snap
            return snap

    # --- database ----------------------------------------------------------------------

    def _reader(self) -> Connection:
        # (on the event loop, as a search applying the log's changes is, from the loop's own pool)
        return reader(self.engine)

    def _peek(self, last: int) -> list[tuple[int, str | None]]:
        """`_poll` on a driver connection (see `driver_reader`): the check every search makes,
        a few microseconds when nothing changed. On SQLite it never takes the write lock."""
        with driver_reader(self.engine) as conn:
            return self._poll(conn, last)

    @staticmethod
    def _poll(conn: Readable, last: int) -> list[tuple[int, str | None]]:
        return [(int(seq), child_id) for seq, child_id in _POLL.rows(conn, {"last": last})]

    @classmethod
    def _read(cls, conn: Connection, ids: Sequence[str]) -> dict[str, Change]:
        """Each child's stored record and key hashes now, or None where it is gone."""
        found: dict[str, Change] = dict.fromkeys(ids)
        for chunk in _chunks(ids, _IN_CHUNK):
            for child_id, stored, count, joined in conn.execute(
                _ROWS.where(search_record.c.child_id.in_(chunk))
            ):
                keys = _split(conn, child_id, count, joined)
                found[child_id] = (
                    PersonFields.from_dict(json.loads(stored)),
                    tuple(dict.fromkeys(map(hash, keys))),
                )
        return found

    # --- loading -----------------------------------------------------------------------

    def _start_loader(self) -> None:
        """Start the loader thread unless one runs (call with `_apply` held)."""
        if self._loader is not None and self._loader.is_alive():
            return
        self._loader = threading.Thread(target=self._run_loader, name="childindex-resident", daemon=True)
        self._loader.start()

    def _run_loader(self) -> None:
        while not self._stop.is_set():
            try:
                started = time.perf_counter()
                snap = self._load()
            except _Stopped:
                return
            except Exception:  # searches keep using SQL; try again later
                log.exception("loading the resident search index failed; retrying")
                self._stop.wait(self.retry_seconds)
                continue
            self.last_load_seconds = time.perf_counter() - started
            with self._apply:
                if self._stop.is_set():
                    return
                self._snap = snap
                self.loads += 1
            with self._loaded:
                self._loaded.notify_all()
            log.info(
                "resident search index loaded: %d children, %d keys, %d postings, %.0f MiB in %.1f s",
                len(snap.base.ids),
                len(snap.base.keys),
                len(snap.base.ordinals),
                snap.base.nbytes / 2**20,
                self.last_load_seconds,
            )
            return

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _Stopped

    def _load(self) -> _Snapshot:
        """Stream every record with its keys (one row per child) into arrays, chunk by chunk.

        The last seq is read first: a change committed after it is replayed from the log on
        the first search (replaying is idempotent), one committed before it is in the rows
        read. A child's record and keys come from one statement, so they always agree.
        """
        id_parts: list[npt.NDArray[np.bytes_]] = []
        length_parts: list[npt.NDArray[np.int64]] = []
        born_parts: list[Days] = []
        due_parts: list[Days] = []
        hash_parts: list[Hashes] = []
        ordinal_parts: list[Ordinals] = []
        blob = bytearray()
        loaded = 0
        with self._reader() as conn:
            last = int(conn.execute(select(func.coalesce(func.max(search_log.c.seq), 0))).scalar_one())
            result = conn.execution_options(yield_per=self.chunk).execute(
                _ROWS.order_by(search_record.c.child_id)
            )
            for rows in result.partitions():
                self._check_stop()
                child_ids, stored, counts, joined = zip(*rows, strict=True)
                recs = [PersonFields.from_dict(json.loads(s)) for s in stored]
                raw = [_compact(rec) for rec in recs]
                born_parts.append(_days(rec.birth_date for rec in recs))
                due_parts.append(_days(rec.expected_delivery_date for rec in recs))
                keys = [_split(conn, *row) for row in zip(child_ids, counts, joined, strict=True)]
                sizes = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
                flat = list(chain.from_iterable(keys))
                hash_parts.append(np.fromiter(map(hash, flat), dtype=np.int64, count=len(flat)))
                ordinal_parts.append(np.repeat(np.arange(loaded, loaded + len(rows), dtype=np.int32), sizes))
                id_parts.append(np.array([c.encode() for c in child_ids], dtype=np.bytes_))
                length_parts.append(np.fromiter(map(len, raw), dtype=np.int64, count=len(raw)))
                blob += b"".join(raw)
                loaded += len(rows)
        _release_freed_memory()  # the rows' Python objects, before the arrays' peak
        # Join the parts one array at a time, dropping each list at once: the peak is set by the
        # postings (8 + 4 bytes a key, 21 keys a child), held twice at most.
        ids = np.concatenate(id_parts) if id_parts else np.array([], dtype="S1")
        lengths = np.concatenate(length_parts) if length_parts else np.array([], dtype=np.int64)
        del id_parts, length_parts
        born = np.concatenate(born_parts) if born_parts else np.array([], dtype=np.int32)
        due = np.concatenate(due_parts) if due_parts else np.array([], dtype=np.int32)
        del born_parts, due_parts
        ends = np.cumsum(lengths)
        starts = ends - lengths
        hashes = np.concatenate(hash_parts) if hash_parts else np.array([], dtype=np.int64)
        del hash_parts
        ordinals = np.concatenate(ordinal_parts) if ordinal_parts else np.array([], dtype=np.int32)
        del ordinal_parts
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
        base = _Base(ids, blob, starts, ends, distinct, first, ordinals, born, due)
        _release_freed_memory()
        return _Snapshot(base, np.ones(len(ids), dtype=np.bool_), 0, _NO_CHANGES, _NO_CHANGES, last)


def _days(dates: Iterable[date | None]) -> Days:
    return np.fromiter((d.toordinal() if d else 0 for d in dates), dtype=np.int32)


def _day(number: int) -> date | None:
    return date.fromordinal(number) if number else None


def _compact(rec: PersonFields) -> bytes:
    """A stored record as a marshalled tuple: a third of the time to read back into PersonFields
    than its JSON (0.3 against 0.8 ms for a search's 200 candidates) and less than half the size.
    marshal's format is private to one Python version, which is all an in-process copy needs."""
    born, due = rec.birth_date, rec.expected_delivery_date
    return marshal.dumps(
        (
            rec.child_id,
            rec.given_names,
            rec.family_names,
            born.toordinal() if born else 0,  # day 0 is not a date: None
            due.toordinal() if due else 0,
            rec.sex,
            rec.postcodes,
            rec.identifiers,
            rec.shielded,
        )
    )


def _expand(row: tuple[Any, ...]) -> PersonFields:
    """Inverse of `_compact`."""
    child_id, given, family, born, due, sex, postcodes, identifiers, shielded = row
    return PersonFields(
        child_id,
        given,
        family,
        date.fromordinal(born) if born else None,
        date.fromordinal(due) if due else None,
        sex,
        postcodes,
        identifiers,
        shielded,
    )


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


class _Stopped(Exception):
    """The loader was asked to stop."""
