"""`ResidentIndex`: a process's resident copy of the embedded index, fresh as of every search.

Every search first asks the log what changed since the snapshot it holds (`_fresh`) and applies
it; a rebuild, a pruned gap or a large backlog drops the copy instead, and a background thread
loads a new one (search/resident/load.py) while searches go back to SQL. See search/resident/.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select

from directory.db import Prepared, Readable, driver_reader, reader
from search.port import BirthFilter, PersonFields
from search.resident.load import LOAD_CHUNK, load_snapshot, read_changes
from search.resident.snapshot import RECENT_MAX, Snapshot
from search.tables import search_log

log = logging.getLogger("childindex.search")

POLL_ROWS = 1_000
"""Log rows applied per round trip."""
MAX_DELTA = 50_000
"""More changed children than this since the load: load afresh instead of growing the delta."""
RETRY_SECONDS = 30.0
"""Wait after a failed load before trying again (searches use SQL meanwhile)."""

_POLL = Prepared(
    select(search_log.c.seq, search_log.c.child_id)
    .where(search_log.c.seq > bindparam("last"))
    .order_by(search_log.c.seq)
    .limit(POLL_ROWS)
)


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
        self._snap: Snapshot | None = None
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

    def _fresh(self) -> Snapshot | None:
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
                    snap = snap.apply(read_changes(conn, ids), rows[-1][0], recent_max=self.recent_max)
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

    def _load(self) -> Snapshot:
        """Load a snapshot from the tables (see `load_snapshot`), stopping between chunks if asked."""
        return load_snapshot(self._reader, chunk=self.chunk, check_stop=self._check_stop)


class _Stopped(Exception):
    """The loader was asked to stop."""
