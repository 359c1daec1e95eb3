"""The counters behind the rate limit and trawling detection, shared by every process and node.

Each request of a rate-limited route adds one to its subject's counter for the current second
(`rate_hit`); it is admitted while the subject's counters for the last 61 seconds add up to no more
than the limit. Each child a read showed is marked once per half trawling window (`trawl_look`) and
tallied per subject (`trawl_tally`), so the distinct children and the looks of the last one to two
half-windows are two small reads; an alert is claimed once per window per subject (`trawl_alert`).

Where the counters live, so that they cost little on the search path:
- PostgreSQL: UNLOGGED tables in the directory's database (migration 0008): no WAL, no fsync; they
  are emptied by a crash, which only forgets the last minute's counts and the hour's looks.
- a SQLite file: a side database `<name>-limits.db` beside it (WAL, synchronous=OFF), so that a
  counter never takes the directory's write lock nor waits for its fsync. Every process of the box
  opens the same file; its write lock makes each count exact.
- SQLite in memory: a private in-memory database (one process, as such a database is).

Exact across processes: a subject's window is summed and its count made one request at a time.
On SQLite both are one statement, which holds the side file's write lock from its start; on
PostgreSQL one call of `childindex_rate_hit` (migration 0008), which takes an advisory lock for the
subject first (in the two-key space, apart from the audit chain's and the indexer's one-key locks).
Either is one round trip in autocommit (on PostgreSQL over a small pool of its own, no pre-ping).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table
from sqlalchemy.engine import Engine
from sqlalchemy.schema import CreateTable

WINDOW_SLOTS = 61  # one-second slots summed for the per-minute limit: the last 60 to 61 seconds

metadata = MetaData()
# PostgreSQL keeps these in the directory's database, UNLOGGED (migration 0008); SQLite in the side file.
rate_hit = Table(
    "rate_hit",
    metadata,
    Column("subject", String(200), primary_key=True),
    Column("slot", BigInteger, primary_key=True, autoincrement=False),  # the second (Unix time)
    Column("hits", Integer, nullable=False),
)
trawl_look = Table(
    "trawl_look",
    metadata,
    Column("bucket", BigInteger, primary_key=True, autoincrement=False),  # the half-window
    Column("subject", String(200), primary_key=True),
    Column("child_id", String(32), primary_key=True),  # uuid hex
)
trawl_tally = Table(
    "trawl_tally",
    metadata,
    Column("subject", String(200), primary_key=True),
    Column("bucket", BigInteger, primary_key=True, autoincrement=False),
    Column("children", Integer, nullable=False),  # distinct children looked at in the half-window
    Column("fresh", Integer, nullable=False),  # of them, those not looked at in the half before
    Column("looks", Integer, nullable=False),
)
trawl_alert = Table(
    "trawl_alert",
    metadata,
    Column("subject", String(200), primary_key=True),
    Column("until", BigInteger, nullable=False),  # no other alert for the subject before (Unix time)
)


class LimitsUnavailable(Exception):
    """The counters could not be reached or updated in time (the request is refused, not let through)."""


@dataclass(frozen=True)
class Tally:
    """A subject's looks over the current and the previous half-window."""

    children: int  # distinct children
    looks: int


class LimitStore(Protocol):
    """Where the counters are kept; every method is one short transaction."""

    def hit(self, subject: str, *, slot: int, limit: int) -> int | None:
        """Count a request in `slot` unless the subject's window is full: None, or the oldest
        counted slot of the full window (to say when to come back)."""
        ...

    def look(self, subject: str, *, bucket: int, child_ids: Sequence[str], looks: int) -> Tally:
        """Mark the children (distinct uuid hex) looked at in `bucket`; the tally of this and the last."""
        ...

    def claim_alert(self, subject: str, *, now: int, until: int) -> bool:
        """True for exactly one caller per subject until `until` passes."""
        ...

    def sweep(self, *, slot: int, bucket: int, now: int, burst_bucket: int | None = None) -> None:
        """Forget counters no window reaches any more (`burst_bucket`: the short window's half now)."""
        ...

    def dispose(self) -> None:
        """Close the store's connections (it opens them again if used)."""
        ...


# --------------------------------------------------------------------------- the statements

_CLAIM = (
    "INSERT INTO trawl_alert (subject, until) VALUES (:subject, :until) "
    "ON CONFLICT (subject) DO UPDATE SET until = excluded.until "
    "WHERE trawl_alert.until <= :now RETURNING until"
)
_SUM = (
    "SELECT coalesce(sum(hits), 0), min(slot) FROM rate_hit "
    "WHERE subject = :subject AND slot > :slot - " + str(WINDOW_SLOTS)
)
# SQLite: one statement takes the write lock before it reads, so the sum and the count are one step.
_COUNT_IF_ROOM = (
    "INSERT INTO rate_hit (subject, slot, hits) SELECT :subject, :slot, 1 "
    "WHERE (SELECT coalesce(sum(hits), 0) FROM rate_hit WHERE subject = :subject "
    "AND slot > :slot - " + str(WINDOW_SLOTS) + ") < :limit "
    "ON CONFLICT (subject, slot) DO UPDATE SET hits = rate_hit.hits + 1 RETURNING hits"
)
_TALLY = (
    "INSERT INTO trawl_tally (subject, bucket, children, fresh, looks) "
    "VALUES (:subject, :bucket, :children, :fresh, :looks) "
    "ON CONFLICT (subject, bucket) DO UPDATE SET children = trawl_tally.children + excluded.children, "
    "fresh = trawl_tally.fresh + excluded.fresh, looks = trawl_tally.looks + excluded.looks "
    "RETURNING fresh, looks"
)
_TALLY_AND_PREVIOUS = _TALLY + (
    ", (SELECT children FROM trawl_tally p WHERE p.subject = :subject AND p.bucket = :bucket - 1), "
    "(SELECT looks FROM trawl_tally p WHERE p.subject = :subject AND p.bucket = :bucket - 1)"
)
# The short window's counters (auth/ratelimit.py, the burst rule) are kept under "burst <subject>": a
# subject never holds a space (auth/grant_rules.py), so they are apart from the subject's own, and
# their buckets (numbered in the short window's halves) are swept by their own number.
BURST_PREFIX = "burst "
_OWN = " AND substr(subject, 1, 6) <> 'burst '"
_BURST = " AND substr(subject, 1, 6) = 'burst '"
_SWEEPS = (
    "DELETE FROM rate_hit WHERE slot < :slot - " + str(2 * WINDOW_SLOTS),
    "DELETE FROM trawl_tally WHERE bucket < :bucket - 1" + _OWN,
    "DELETE FROM trawl_tally WHERE bucket < :burst_bucket - 1" + _BURST,
    "DELETE FROM trawl_alert WHERE until < :now",
)
_LOOK_SWEEPS = (  # (the bucket condition, the subjects)
    ("bucket < :bucket - 1", _OWN),
    ("bucket < :burst_bucket - 1", _BURST),
)


def _child_values(n: int, style: str) -> str:
    """`(bucket, subject, child) , ...` placeholders for n children."""
    if style == "pg":
        return ", ".join(f"(%(bucket)s, %(subject)s, %(c{i})s)" for i in range(n))
    return ", ".join(f"(:bucket, :subject, :c{i})" for i in range(n))


def _pg(sql: str) -> str:
    """A statement written with :name parameters, in psycopg's %(name)s style."""
    return re.sub(r"(?<![:\w]):([a-z_]\w*)", r"%(\1)s", sql)


# --------------------------------------------------------------------------- SQLite


class SqliteLimits:
    """The counters in a SQLite database of their own: a file shared by the processes of a box, or
    (path None) a private in-memory database.

    One connection per process, taken in turn: the threads of a process hand it over through a
    lock, and the processes of the box through a lock file beside it (`<side file>-turn`), so each
    is woken as soon as the one before is done. SQLite's own wait for a busy file sleeps 1-100 ms
    between tries, holding the search that waits (no CPU spent, but its answer late): with two
    worker processes counting every search, a side-by-side run at 1,000,000 children answered 638
    searches/s flat out without this turn-taking (the release before the shared limits: 838), and
    702-801/s with it (README, "Measured").
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._turn: int | None = None  # the lock file's descriptor, opened on first use
        self._look_sql: dict[int, str] = {}

    @staticmethod
    def beside(database: str) -> Path:
        """The side file of a SQLite database file: `x.db` -> `x-limits.db`."""
        main = Path(database)
        return main.with_name(f"{main.stem}-limits{main.suffix or '.db'}")

    def _open(self) -> sqlite3.Connection:
        where = ":memory:" if self.path is None else str(self.path)
        conn = sqlite3.connect(where, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        if self.path is not None:
            conn.execute("PRAGMA journal_mode=WAL")
        # Counters need not survive a power cut: no fsync (a file damaged by one can be deleted).
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN IMMEDIATE")
        for table in metadata.sorted_tables:
            conn.execute(str(CreateTable(table, if_not_exists=True).compile(dialect=_sqlite_dialect())))
        conn.execute("COMMIT")
        return conn

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """This process's connection, its turn taken; SQLite's errors become LimitsUnavailable."""
        with self._lock, self._processes_turn():
            try:
                conn = self._conn
                if conn is None:
                    conn = self._conn = self._open()
                yield conn
            except sqlite3.Error as exc:
                raise LimitsUnavailable(str(exc)) from exc

    @contextlib.contextmanager
    def _processes_turn(self) -> Iterator[None]:
        """This process's turn at the side file among the box's processes (see the class doc)."""
        if self.path is None:
            yield
            return
        if self._turn is None:
            try:
                self._turn = os.open(f"{self.path}-turn", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise LimitsUnavailable(str(exc)) from exc
        fcntl.flock(self._turn, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._turn, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE on this process's connection; COMMIT, or ROLLBACK when the block raises."""
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def hit(self, subject: str, *, slot: int, limit: int) -> int | None:
        """One statement, which holds the side file's write lock from its start: it sums the window
        and counts only if there is room (so exact); the oldest counted slot is read only when full."""
        params = {"subject": subject, "slot": slot, "limit": limit}
        with self._connection() as conn:
            if conn.execute(_COUNT_IF_ROOM, params).fetchone() is not None:
                return None
            total, oldest = conn.execute(_SUM, params).fetchone()
        return int(oldest if oldest is not None else slot)

    def look(self, subject: str, *, bucket: int, child_ids: Sequence[str], looks: int) -> Tally:
        """Mark (learning which were not looked at in the half before) and tally, in one transaction."""
        n = len(child_ids)
        sql = self._look_sql.get(n)
        if sql is None:
            sql = self._look_sql[n] = (
                f"INSERT INTO trawl_look (bucket, subject, child_id) VALUES {_child_values(n, 'sqlite')} "
                "ON CONFLICT DO NOTHING RETURNING EXISTS (SELECT 1 FROM trawl_look p WHERE "
                "p.bucket = :bucket - 1 AND p.subject = :subject AND p.child_id = trawl_look.child_id)"
            )
        params: dict[str, Any] = {"bucket": bucket, "subject": subject}
        params.update({f"c{i}": c for i, c in enumerate(child_ids)})
        with self._transaction() as conn:
            new = [seen for (seen,) in conn.execute(sql, params).fetchall()]
            fresh, total_looks, before_children, before_looks = conn.execute(
                _TALLY_AND_PREVIOUS,
                {**params, "children": len(new), "fresh": new.count(0), "looks": looks},
            ).fetchone()
        return Tally(children=(before_children or 0) + fresh, looks=(before_looks or 0) + total_looks)

    def claim_alert(self, subject: str, *, now: int, until: int) -> bool:
        """One atomic upsert: the row comes back only to the claimant."""
        with self._transaction() as conn:
            row = conn.execute(_CLAIM, {"subject": subject, "now": now, "until": until}).fetchone()
        return row is not None

    def dispose(self) -> None:
        """Close this process's connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._turn is not None:
                os.close(self._turn)
                self._turn = None

    def sweep(self, *, slot: int, bucket: int, now: int, burst_bucket: int | None = None) -> None:
        """Delete in small steps, so that no request waits long for the side file's lock."""
        params = {"slot": slot, "bucket": bucket, "now": now, "burst_bucket": burst_bucket or 0}
        for sql in _SWEEPS:
            with self._transaction() as conn:
                conn.execute(sql, params)
        for older, whose in _LOOK_SWEEPS:
            while True:
                with self._transaction() as conn:
                    gone = conn.execute(
                        "DELETE FROM trawl_look WHERE rowid IN "
                        f"(SELECT rowid FROM trawl_look WHERE {older}{whose} LIMIT 500)",
                        params,
                    ).rowcount
                if gone < 500:
                    break


def _sqlite_dialect() -> Any:
    from sqlalchemy.dialects import sqlite

    return sqlite.dialect()


# --------------------------------------------------------------------------- PostgreSQL


class PostgresLimits:
    """The counters in UNLOGGED tables of the directory's PostgreSQL database.

    A small pool of its own, in autocommit and without a ping at each checkout: every call is one
    statement, and a broken connection is dropped when it fails (the request gets a 503).
    """

    POOL_SIZE = 4  # the event loop and a few request threads at once, each for a round trip

    def __init__(self, engine: Engine) -> None:
        self.engine = sa.create_engine(
            engine.url,
            pool_size=self.POOL_SIZE,
            max_overflow=4 * self.POOL_SIZE,
            pool_timeout=5,
            isolation_level="AUTOCOMMIT",
            connect_args={"options": "-c statement_timeout=5000 -c lock_timeout=5000"},
        )
        self._look_sql: dict[int, str] = {}

    @contextlib.contextmanager
    def _autocommit(self) -> Iterator[Any]:
        try:
            raw = self.engine.raw_connection()
        except Exception as exc:
            raise LimitsUnavailable(str(exc)) from exc
        driver: Any = raw.driver_connection
        try:
            with driver.cursor() as cursor:
                yield cursor
        except self.engine.dialect.loaded_dbapi.Error as exc:
            raw.invalidate()  # (a connection that failed is not handed out again)
            raise LimitsUnavailable(str(exc)) from exc
        finally:
            raw.close()

    def hit(self, subject: str, *, slot: int, limit: int) -> int | None:
        """One call: lock the subject, sum its window, count unless full (see migration 0008)."""
        with self._autocommit() as cur:
            cur.execute(
                "SELECT childindex_rate_hit(%(subject)s, %(slot)s, %(limit)s)",
                {"subject": subject, "slot": slot, "limit": limit},
            )
            oldest = cur.fetchone()[0]
        return None if oldest is None else int(oldest)

    def look(self, subject: str, *, bucket: int, child_ids: Sequence[str], looks: int) -> Tally:
        """One statement: mark, count the fresh, tally, and read the previous half's tally."""
        n = len(child_ids)
        sql = self._look_sql.get(n)
        if sql is None:
            sql = self._look_sql[n] = (
                "WITH new AS (INSERT INTO trawl_look (bucket, subject, child_id) VALUES "
                f"{_child_values(n, 'pg')} ON CONFLICT DO NOTHING RETURNING child_id), "
                "fresh AS (SELECT count(*) AS n FROM new WHERE NOT EXISTS (SELECT 1 FROM trawl_look p "
                "WHERE p.bucket = %(bucket)s - 1 AND p.subject = %(subject)s "
                "AND p.child_id = new.child_id)), "
                "tally AS (INSERT INTO trawl_tally (subject, bucket, children, fresh, looks) "
                "SELECT %(subject)s, %(bucket)s, (SELECT count(*) FROM new), fresh.n, %(looks)s FROM fresh "
                "ON CONFLICT (subject, bucket) DO UPDATE SET "
                "children = trawl_tally.children + excluded.children, "
                "fresh = trawl_tally.fresh + excluded.fresh, looks = trawl_tally.looks + excluded.looks "
                "RETURNING fresh, looks) "
                "SELECT tally.fresh, tally.looks, coalesce(p.children, 0), coalesce(p.looks, 0) FROM tally "
                "LEFT JOIN trawl_tally p ON p.subject = %(subject)s AND p.bucket = %(bucket)s - 1"
            )
        params: dict[str, Any] = {"bucket": bucket, "subject": subject, "looks": looks}
        params.update({f"c{i}": c for i, c in enumerate(child_ids)})
        with self._autocommit() as cur:
            cur.execute(sql, params)
            fresh, total_looks, before_children, before_looks = cur.fetchone()
        return Tally(children=before_children + fresh, looks=before_looks + total_looks)

    def claim_alert(self, subject: str, *, now: int, until: int) -> bool:
        """One atomic upsert: the row comes back only to the claimant."""
        with self._autocommit() as cur:
            cur.execute(_PG_CLAIM, {"subject": subject, "now": now, "until": until})
            return cur.fetchone() is not None

    def dispose(self) -> None:
        """Close the pool's connections."""
        self.engine.dispose()

    def sweep(self, *, slot: int, bucket: int, now: int, burst_bucket: int | None = None) -> None:
        """Delete what no window reaches (each statement on its own; inserts are not held up)."""
        params = {"slot": slot, "bucket": bucket, "now": now, "burst_bucket": burst_bucket or 0}
        looks = [f"DELETE FROM trawl_look WHERE {older}{whose}" for older, whose in _LOOK_SWEEPS]
        with self._autocommit() as cur:
            for sql in (*_SWEEPS, *looks):
                cur.execute(_pg(sql), params)


_PG_CLAIM = _pg(_CLAIM)

# Created by migration 0008 on PostgreSQL; the window's 61 slots are WINDOW_SLOTS.
RATE_HIT_FUNCTION = """
CREATE OR REPLACE FUNCTION childindex_rate_hit(p_subject varchar, p_slot bigint, p_limit integer)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  counted bigint;
  oldest bigint;
BEGIN
  -- One subject's window is summed and counted one request at a time, whichever process asks.
  PERFORM pg_advisory_xact_lock(1279870292, hashtext(p_subject));
  SELECT coalesce(sum(hits), 0), min(slot) INTO counted, oldest
    FROM rate_hit WHERE subject = p_subject AND slot > p_slot - 61;
  IF counted >= p_limit THEN
    RETURN coalesce(oldest, p_slot);  -- full: when its oldest counted second leaves, there is room
  END IF;
  INSERT INTO rate_hit (subject, slot, hits) VALUES (p_subject, p_slot, 1)
    ON CONFLICT (subject, slot) DO UPDATE SET hits = rate_hit.hits + 1;
  RETURN NULL;
END $$
"""


# --------------------------------------------------------------------------- choosing one

_STORES: weakref.WeakKeyDictionary[Engine, LimitStore] = weakref.WeakKeyDictionary()
_STORES_LOCK = threading.Lock()


def limit_store(engine: Engine) -> LimitStore:
    """The counters for the directory on this engine (one store per engine in a process)."""
    with _STORES_LOCK:
        store = _STORES.get(engine)
        if store is None:
            store = _STORES[engine] = _make_store(engine)
        return store


def _make_store(engine: Engine) -> LimitStore:
    if engine.dialect.name == "postgresql":
        return PostgresLimits(engine)
    database = engine.url.database
    if (
        engine.dialect.name == "sqlite"
        and database
        and database != ":memory:"
        and not database.startswith("file:")
    ):
        return SqliteLimits(SqliteLimits.beside(database))
    return SqliteLimits(None)
