"""Engines and sessions for SQLite (the embedded default) and PostgreSQL: each engine's pools and
timeouts, SQLite's write lock taken up front and in turn, reads that never take it, and one
transaction per unit of work."""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from directory.sqlite_turns import WriteTurns

READ_ONLY = "childindex_read_only"
"""Execution option for connections that only read (e.g. a bulk export while a writer runs)."""


@dataclass(frozen=True)
class Limits:
    """How long a connection waits, and for how many request threads an engine's pool is sized.

    The defaults are for batch work (the command line): a long import or migration is not cut
    short. `childindex serve` and `create_app` pass the serving limits from the settings.
    """

    request_threads: int = 4
    lock_timeout: float = 30.0
    """Seconds a statement waits for a lock (SQLite busy_timeout, PostgreSQL lock_timeout), and
    a checkout for a pooled connection; then it fails (OperationalError or a pool TimeoutError),
    which the app answers with 503 and Retry-After."""
    statement_timeout: float = 0.0
    """PostgreSQL statement_timeout in seconds (0: none)."""
    idle_in_transaction_timeout: float = 0.0
    """PostgreSQL idle_in_transaction_session_timeout in seconds (0: none)."""


BACKGROUND_CONNECTIONS = 4
"""Threads of a serving process that hold a connection of their own: the audit log's group
commit, the search indexer, the resident search index's loader, the notification sender."""

UPSTREAM_THREADS = 2
"""Threads of a serving process's upstream lane (directory/http/lanes.py): the requests that wait
on a service outside (the identity provider, the national demographics service) take turns in it."""

LOOP_CONNECTIONS = 2
"""Connections kept for the event loop (see `make_engine`): it holds one at a time, two when a
read nests in another."""


def pool_sizes(request_threads: int) -> tuple[int, int]:
    """An engine's (pool_size, max_overflow) for a process running `request_threads` at once in
    its shared pool of threads, as many again in its search lane and UPSTREAM_THREADS in its
    upstream lane (directory/http/lanes.py).

    A request thread (of either) holds one connection for its unit of work and at most one more for
    a moment beside it (its sign-in check's read, a search's own read, or its refusal's audit once
    its own transaction has rolled back); the background threads hold one each. So the pool keeps a
    connection for each request thread and each background thread, and opens one more per request
    thread at a peak: 2 x (2 x request_threads + UPSTREAM_THREADS) + BACKGROUND_CONNECTIONS in all,
    which the process's own threads can never exhaust. The event loop reads through a pool of its
    own that never waits (see `make_engine`). With the defaults (4 threads) that is 24 connections,
    plus up to 2 for the event loop: 26 a process (docs/access.md: PostgreSQL's max_connections
    against workers x nodes).
    """
    threads = 2 * request_threads + UPSTREAM_THREADS
    return threads + BACKGROUND_CONNECTIONS, threads


_LOOP_ENGINES: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def make_engine(
    url: str, *, echo: bool = False, pool_size: int | None = None, limits: Limits = Limits()
) -> Engine:
    """Create an engine; SQLite gets WAL, FULL sync, foreign keys and BEGIN IMMEDIATE, PostgreSQL
    its lock, statement and idle-in-transaction timeouts (see `Limits`).

    Beside it, a pool of its own for reads made on the event loop (`driver_reader` and `reader`
    use it there): a request thread may wait for a pooled connection, but the event loop must
    never, since the threads holding them may be waiting for the loop to hand them their next
    step. That pool keeps LOOP_CONNECTIONS and opens another rather than wait, and its statements
    stop after the lock timeout at the latest (a read on the loop holds up every request).
    """
    size, overflow = (pool_size, pool_size) if pool_size else pool_sizes(limits.request_threads)
    turns = WriteTurns(limits.lock_timeout) if url.startswith("sqlite") and not _in_memory(url) else None
    engine = _create(url, echo=echo, limits=limits, turns=turns, pool_size=size, max_overflow=overflow)
    if turns is not None:
        _TURNS[engine] = turns
    if not _in_memory(url):
        capped = min(limits.statement_timeout or limits.lock_timeout, limits.lock_timeout)
        loop = _create(
            url,
            echo=echo,
            limits=replace(limits, statement_timeout=capped),
            turns=turns,
            pool_size=LOOP_CONNECTIONS,
            max_overflow=-1,
        )
        _LOOP_ENGINES[engine] = loop
        event.listen(engine, "engine_disposed", lambda _conn: loop.dispose())
    return engine


def _in_memory(url: str) -> bool:
    return url in ("sqlite://", "sqlite:///:memory:")


def _create(
    url: str, *, echo: bool, limits: Limits, turns: WriteTurns | None, pool_size: int, max_overflow: int
) -> Engine:
    pool: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": max_overflow,
        "pool_timeout": limits.lock_timeout,
    }
    if url.startswith("sqlite"):
        # Each connection has its own page cache: reuse the most recent first, so a few
        # connections stay warm instead of all of them taking turns.
        engine = sa.create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": limits.lock_timeout},
            **({} if _in_memory(url) else {**pool, "pool_use_lifo": True}),
        )
        _tune_sqlite(engine, limits, turns)
        return engine
    parsed = sa.make_url(url)
    postgres = parsed.get_backend_name() == "postgresql"
    connect_args: dict[str, Any] = {}
    if postgres and "connect_timeout" not in parsed.query:  # (else the operating system's minutes)
        connect_args["connect_timeout"] = max(2, math.ceil(limits.lock_timeout))
    engine = sa.create_engine(url, echo=echo, pool_pre_ping=True, connect_args=connect_args, **pool)
    if postgres:
        _tune_postgres(engine, limits)
    return engine


def loop_engine(engine: Engine) -> Engine:
    """The engine to read through from here: on an event loop, `engine`'s pool for the loop."""
    if asyncio._get_running_loop() is None:
        return engine
    return _LOOP_ENGINES.get(engine, engine)


def _tune_postgres(engine: Engine, limits: Limits) -> None:
    timeouts = {
        "lock_timeout": limits.lock_timeout,
        "statement_timeout": limits.statement_timeout,
        "idle_in_transaction_session_timeout": limits.idle_in_transaction_timeout,
    }
    values = [f"{round(seconds * 1000)}ms" for seconds in timeouts.values()]
    sql = "SELECT " + ", ".join(f"set_config('{name}', %s, false)" for name in timeouts)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Once per connection, for the session (the pool's rollback on return keeps it).
        cur = dbapi_conn.cursor()
        cur.execute(sql, values)
        cur.close()
        dbapi_conn.commit()


def _tune_sqlite(engine: Engine, limits: Limits, turns: WriteTurns | None) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy (not the driver) issue BEGIN, so we can make it IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL, not NORMAL: the audit log lives here and must survive power loss.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={round(limits.lock_timeout * 1000)}")
        # A larger page cache per connection: a request touches a few hundred scattered pages.
        # No memory map: each commit by another connection (an audit event, many a second under
        # load) makes a reader drop its cache at its next read and SQLite then unmaps and remaps
        # the whole file, so every page it touches faults in again (measured on 1,000,000
        # children with 300 commits/s beside: a search's hit summaries took 1.30 ms mapped,
        # 0.58 ms read into the cache).
        cur.execute("PRAGMA cache_size=-32768")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers queue for the lock up front instead of failing on upgrade from a read;
        # connections marked read-only read a WAL snapshot beside a running writer.
        if conn.get_execution_options().get(READ_ONLY, False):
            conn.exec_driver_sql("BEGIN")
            return
        if turns is None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        owner = conn.connection.dbapi_connection
        turns.take(owner)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            turns.give_back(owner)
            raise

    if turns is None:
        return

    # The turn ends as the transaction does ("commit" and "rollback" come just before the
    # driver's), or at the latest when its connection goes back to the pool or is dropped.
    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _on_end(conn: Any) -> None:
        turns.give_back(conn.connection.dbapi_connection)

    @event.listens_for(engine.pool, "checkin")
    @event.listens_for(engine.pool, "invalidate")
    @event.listens_for(engine.pool, "close")
    def _on_release(dbapi_conn: Any, *_: Any) -> None:
        turns.give_back(dbapi_conn)


_TURNS: weakref.WeakKeyDictionary[Engine, WriteTurns] = weakref.WeakKeyDictionary()


def is_postgres(engine_or_session: Engine | Session) -> bool:
    """True when the database is PostgreSQL."""
    bind = engine_or_session.get_bind() if isinstance(engine_or_session, Session) else engine_or_session
    return bind.dialect.name == "postgresql"


def reader(engine: Engine) -> Connection:
    """A connection that only reads (use it as a context manager): on SQLite a WAL snapshot that
    never takes the write lock. On an event loop it comes from the loop's own pool (see
    `make_engine`)."""
    return loop_engine(engine).connect().execution_options(**{READ_ONLY: True})


def is_sqlite_file(engine: Engine) -> bool:
    """True for a SQLite database in a file (where each connection has its own page cache)."""
    return engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")


def write_turns(engine: Engine) -> WriteTurns | None:
    """The turns this process's writers take at a SQLite file's write lock (see WriteTurns)."""
    return _TURNS.get(engine)


@contextmanager
def read_only(engine: Engine) -> Iterator[Session]:
    """A session that only reads (see `reader`)."""
    with reader(engine) as conn, Session(bind=conn, expire_on_commit=False) as session:
        yield session


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    """One transaction: commit when the block succeeds, roll back when it raises."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
