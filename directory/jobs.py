"""Background jobs that run exactly once across every node sharing one database, with takeover.

A job works only while it holds its *lease*:

- on PostgreSQL, a session-level `pg_try_advisory_lock(key)` held on a dedicated connection (its
  own, outside the pool, in autocommit, with TCP keepalives) for as long as the node runs the job.
  When the node dies, PostgreSQL drops its connection and with it the lock; another node's next
  try (every `takeover_seconds`) takes it. If the lease connection fails while the node lives (a
  network blip), the job stops working at once, drops the connection and tries again: the server
  frees the old session's lock only once it sees that session gone, so two nodes never both hold
  it;
- on SQLite (one machine), an exclusive `flock` on a file beside the database.

Every node may start every job; only the holder works. `held()` says which jobs this process
holds (for /readyz and /metrics), `holders(engine)` which jobs some node holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

log = logging.getLogger("childindex.jobs")

OUTBOX_CHANNEL = "childindex_outbox"
"""PostgreSQL NOTIFY channel: a statement that inserted outbox rows committed (a trigger sends it)."""

_KEY_BASE = 0x43490000_00000000  # "CI": keeps the jobs' keys apart from other advisory locks
_HELD: set[str] = set()
_HELD_LOCK = threading.Lock()
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}
_SERVER_KEEPALIVES = (
    "SELECT set_config('tcp_keepalives_idle', '5', false), set_config('tcp_keepalives_interval', '2', false),"
    " set_config('tcp_keepalives_count', '3', false), set_config('idle_session_timeout', '0', false)"
)


def lease_key(name: str) -> int:
    """The job's advisory lock key (a signed 64-bit integer, stable across nodes and versions)."""
    return _KEY_BASE | zlib.crc32(name.encode())


def held() -> frozenset[str]:
    """The jobs whose lease this process holds now."""
    with _HELD_LOCK:
        return frozenset(_HELD)


def _mark(name: str, holding: bool) -> None:
    with _HELD_LOCK:
        (_HELD.add if holding else _HELD.discard)(name)


JOBS = ("indexer", "fhir-notifications", "front-door", "people-notices")
"""The jobs `serve` runs (each where its settings turn it on), by lease name."""


def holders(engine: Engine, names: tuple[str, ...] = JOBS) -> dict[str, bool]:
    """Whether some node or process holds each job's lease now (for /readyz, /metrics: with
    several workers the jobs run in the supervising process, so a worker's own `held()` is empty)."""
    if engine.dialect.name != "postgresql":
        return {n: Lease(engine, n).taken_elsewhere() for n in names}
    with engine.connect() as conn:
        taken = {
            int(r[0])
            for r in conn.execute(
                sa.text(
                    "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks "
                    "WHERE locktype = 'advisory' AND objsubid = 1 AND granted"
                )
            )
        }
    return {n: lease_key(n) in taken for n in names}


class Lease:
    """One job's lease on this database; `acquire()` tries once and never waits."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine, self.name, self.key = engine, name, lease_key(name)
        self._conn: Any = None  # the dedicated PostgreSQL connection while held
        self._fd: int | None = None  # the flock'd file while held (SQLite)

    @property
    def is_held(self) -> bool:
        return self._conn is not None or self._fd is not None

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; True when this object now holds it."""
        if self.is_held:
            return True
        got = self._acquire_postgres() if self.engine.dialect.name == "postgresql" else self._acquire_file()
        if got:
            _mark(self.name, True)
        return got

    def _acquire_postgres(self) -> bool:
        dialect = self.engine.dialect
        cargs, cparams = dialect.create_connect_args(self.engine.url)
        conn = dialect.loaded_dbapi.connect(*cargs, **{**_KEEPALIVES, **cparams}, autocommit=True)
        try:
            # The server, too, probes the node: a machine that vanished without closing its
            # connection loses the lease in about 11 s, not at the next TCP timeout (hours).
            conn.execute(_SERVER_KEEPALIVES)
            got = bool(conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0])
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _acquire_file(self) -> bool:
        fd = os.open(self._lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def _in_memory(self) -> bool:
        database = self.engine.url.database
        return not database or database == ":memory:" or database.startswith("file:")

    def _lock_path(self) -> str:
        database = self.engine.url.database
        if not database or self._in_memory():
            # A database in memory lives in one process: a lock file per process is enough.
            return f"/tmp/childindex-{os.getpid()}-{id(self.engine):x}.{self.name}.lock"
        return f"{database}.{self.name}.lock"

    def taken_elsewhere(self) -> bool:
        """SQLite: whether some process holds the lease file (a shared lock is refused), or this
        process does."""
        if self.name in held():
            return True
        try:
            fd = os.open(self._lock_path(), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # (closing drops the shared lock, if taken)
        return False

    def check(self) -> None:
        """Raise if the lease may have been lost (its connection answers no more)."""
        if self._conn is not None:
            self._conn.execute("SELECT 1").fetchone()

    def listen(self, channel: str) -> None:
        """Be told (see `wait`) when `channel` is notified (PostgreSQL; a no-op on SQLite)."""
        if self._conn is not None:
            self._conn.execute(f'LISTEN "{channel}"')

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` for a notification on a channel listened to; True if one came.
        Raises if the lease connection fails meanwhile (on SQLite, simply returns False at once)."""
        if self._conn is None:
            return False
        came = False
        for _ in self._conn.notifies(timeout=seconds, stop_after=1):
            came = True
        return came

    def release(self) -> None:
        """Give the lease up (closing its connection frees the lock even if the unlock fails)."""
        conn, fd = self._conn, self._fd
        self._conn, self._fd = None, None
        _mark(self.name, False)
        if conn is not None:
            try:
                conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            except Exception:  # the connection is gone already: so is the lock
                pass
            finally:
                conn.close()
        if fd is not None:
            if self._in_memory():  # (a file of this process's own: leave nothing behind in /tmp)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._lock_path())
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[bool]:
    """Hold `name`'s lease for a block (a cron command such as the life cycle); False if another
    node or process holds it, and then the caller does nothing."""
    lease = Lease(engine, name)
    got = lease.acquire()
    try:
        yield got
    finally:
        if got:
            lease.release()


class Job(ABC):
    """A loop that runs `work` every `interval` seconds in a daemon thread, only while this
    node holds the job's lease. With `channel` set (PostgreSQL), a NOTIFY on it starts a round at
    once; `poke()` does the same from this process."""

    name: str = "job"
    channel: str | None = None
    takeover_seconds: float = 2.0

    def __init__(self, engine: Engine, *, interval: float) -> None:
        self.engine, self.interval = engine, interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lease = Lease(engine, self.name)

    @abstractmethod
    def work(self) -> Any:
        """One round of work (called only while the lease is held)."""

    def start(self) -> None:
        """Start the thread."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name=f"childindex-{self.name}", daemon=True)
            self._thread.start()

    def poke(self) -> None:
        """Ask for a round now."""
        self._wake.set()

    def stop(self) -> None:
        """Stop, wait for the thread, and release the lease (another node takes over at its next try)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    @property
    def holding(self) -> bool:
        return self._lease.is_held

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                if not self._take():
                    self._wake.wait(self.takeover_seconds)
                    self._wake.clear()
                    continue
                try:
                    self._lease.check()
                except Exception:
                    self._lose()
                    continue
                try:
                    self.work()
                except Exception:  # keep going: the next round retries
                    log.exception("background job %s failed; will retry", self.name)
                self._pause()
        finally:
            if self._lease.is_held:
                self._lease.release()
                log.info("this node no longer runs the %s (stopped)", self.name)

    def _take(self) -> bool:
        if self._lease.is_held:
            return True
        try:
            if not self._lease.acquire():
                return False
            if self.channel:
                self._lease.listen(self.channel)
        except Exception:
            log.warning("could not try the %s lease (database unreachable?); will retry", self.name)
            self._lease.release()
            return False
        log.info("this node now runs the %s", self.name)
        return True

    def _lose(self) -> None:
        log.warning("this node no longer runs the %s (lease connection lost); will try again", self.name)
        self._lease.release()

    def _pause(self) -> None:
        """Wait `interval`, ending early on a poke, a stop or (PostgreSQL) a notification."""
        if self.channel and self._lease.is_held and self.engine.dialect.name == "postgresql":
            waited, step = 0.0, min(self.interval, 0.25)
            while waited < self.interval and not self._stop.is_set() and not self._wake.is_set():
                try:
                    if self._lease.wait(step):
                        break
                except Exception:
                    self._lose()
                    return
                waited += step
        else:
            self._wake.wait(self.interval)
        self._wake.clear()


# --- a write tells the indexer's holder at once -------------------------------------------------
# Every path that writes outbox rows (the ORM, the prepared driver statement, the bulk importer)
# goes through one INSERT on one table: a statement-level trigger NOTIFYs there. PostgreSQL delivers
# the notification when (and only if) the transaction commits, once per transaction and channel.
OUTBOX_NOTIFY_DDL = [
    f"""CREATE OR REPLACE FUNCTION childindex_outbox_notify() RETURNS trigger AS $$
       BEGIN PERFORM pg_notify('{OUTBOX_CHANNEL}', ''); RETURN NULL; END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS outbox_notify ON outbox",
    """CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
       FOR EACH STATEMENT EXECUTE FUNCTION childindex_outbox_notify()""",
]
OUTBOX_NOTIFY_DROP = [
    "DROP TRIGGER IF EXISTS outbox_notify ON outbox",
    "DROP FUNCTION IF EXISTS childindex_outbox_notify()",
]


def install_outbox_notify(conn: sa.Connection) -> None:
    """Create the trigger that NOTIFYs the indexer of new outbox rows (PostgreSQL; SQLite has one
    machine, where the indexer's timer suffices)."""
    if conn.dialect.name == "postgresql":
        for ddl in OUTBOX_NOTIFY_DDL:
            conn.exec_driver_sql(ddl)
