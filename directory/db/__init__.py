"""Engines and sessions for SQLite (embedded default) and PostgreSQL, and the database-side rules."""

from __future__ import annotations

import asyncio
import math
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import PoolProxiedConnection
from sqlmodel import Session, SQLModel

from directory import models  # noqa: F401  (registers the tables)
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

LOOP_CONNECTIONS = 2
"""Connections kept for the event loop (see `make_engine`): it holds one at a time, two when a
read nests in another."""


def pool_sizes(request_threads: int) -> tuple[int, int]:
    """An engine's (pool_size, max_overflow) for a process running `request_threads` at once.

    A request thread holds one connection for its unit of work and at most one more for a moment
    beside it (its sign-in check's read, or its refusal's audit once its own transaction has
    rolled back); the background threads hold one each. So the pool keeps a connection for each
    request thread and each background thread, and opens one more per request thread at a peak:
    2 x request_threads + BACKGROUND_CONNECTIONS in all, which the process's own threads can never
    exhaust. The event loop reads through a pool of its own that never waits (see `make_engine`).
    With the defaults (4 threads) that is 12 connections, plus up to 2 for the event loop: 14 a
    process, within PostgreSQL's default max_connections of 100 for several workers and nodes.
    """
    return request_threads + BACKGROUND_CONNECTIONS, request_threads


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


class Readable(Protocol):
    """What `Prepared` runs on: a Core `Connection`, or a `DriverReader`."""

    @property
    def dialect(self) -> sa.Dialect: ...

    @property
    def connection(self) -> PoolProxiedConnection: ...


class Writable(Readable, Protocol):
    """What `Prepared` writes through: a Core `Connection`, or a `SqliteWriter`."""

    def in_transaction(self) -> bool: ...


def is_sqlite_file(engine: Engine) -> bool:
    """True for a SQLite database in a file (where each connection has its own page cache)."""
    return engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")


@dataclass(frozen=True)
class DriverReader:
    """A pooled driver connection for `Prepared` reads, without Core's Connection around it."""

    dialect: sa.Dialect
    connection: PoolProxiedConnection


@contextmanager
def driver_reader(engine: Engine) -> Iterator[DriverReader]:
    """For the reads every request makes (see `Prepared`). Each statement reads its own snapshot.

    On a SQLite file: this thread's own connection to it, kept open (see `_thread_reader`), in
    autocommit mode, so it never holds a read transaction between statements nor takes the write
    lock. Otherwise a connection from the engine's pool (on an event loop, the loop's own: see
    `make_engine`), returned (and on PostgreSQL rolled back) after; there each statement reads
    at READ COMMITTED, as any does. Checking out a Core Connection and setting its options cost
    five times as much as the pool's checkout alone, and the checkout and return as much as the
    small query itself.
    """
    if is_sqlite_file(engine):
        yield DriverReader(engine.dialect, _thread_reader(engine))
        return
    raw = loop_engine(engine).raw_connection()
    try:
        yield DriverReader(engine.dialect, raw)
    finally:
        raw.close()


@dataclass(frozen=True)
class SqliteWriter:
    """A SQLite file's driver connection, detached from the pool, for `Prepared` writes in the
    transactions `sqlite_transaction` begins on it."""

    dialect: sa.Dialect
    connection: PoolProxiedConnection
    turns: WriteTurns | None = None

    @classmethod
    def open(cls, engine: Engine) -> SqliteWriter:
        """A connection of its own (set up as every connection of the engine is); close it when done."""
        raw = engine.raw_connection()
        raw.detach()
        return cls(engine.dialect, raw, _TURNS.get(engine))

    def in_transaction(self) -> bool:
        """True while a transaction is open on it."""
        return bool(cast(Any, self.connection.dbapi_connection).in_transaction)

    def close(self) -> None:
        """Close the driver connection (rolling back anything left open)."""
        self.connection.close()


@contextmanager
def sqlite_transaction(writer: SqliteWriter) -> Iterator[SqliteWriter]:
    """BEGIN IMMEDIATE on the writer's connection; COMMIT when the block succeeds, ROLLBACK when it
    raises. Core's begin and commit and the pool's checkout around them cost a fifth of an audit
    append's CPU, which the group commit pays once a search under load."""
    driver = cast(Any, writer.connection.dbapi_connection)
    if writer.turns is not None:
        writer.turns.take(driver)  # (in turn with this process's other writers: see WriteTurns)
    try:
        driver.execute("BEGIN IMMEDIATE")
        try:
            yield writer
            driver.execute("COMMIT")
        except BaseException:
            if driver.in_transaction:
                driver.rollback()
            raise
    finally:
        if writer.turns is not None:
            writer.turns.give_back(driver)


_THREAD = threading.local()


def _thread_reader(engine: Engine) -> PoolProxiedConnection:
    """This thread's reading connection to a SQLite file: taken from the engine's pool once (so set
    up as every connection is) and detached from it, then kept until the thread or the engine goes."""
    readers: weakref.WeakKeyDictionary[Engine, PoolProxiedConnection] | None = getattr(
        _THREAD, "readers", None
    )
    if readers is None:
        readers = _THREAD.readers = weakref.WeakKeyDictionary()
    raw = readers.get(engine)
    if raw is None or raw.dbapi_connection is None:
        raw = loop_engine(engine).raw_connection()
        raw.detach()
        readers[engine] = raw
    return raw


@dataclass(frozen=True)
class _Plan:
    sql: str
    names: tuple[str, ...] | None  # positional order (qmark), or None for named parameters
    fixed: dict[str, Any]  # the statement's own literal values, converted for the driver
    bind: dict[str, Callable[[Any], Any]]  # conversions of the caller's values
    result: tuple[Callable[[Any], Any] | None, ...]


class Prepared:
    """A statement run straight on the driver's cursor, for the few run on every request: the
    reads every request makes, and the audit log's appends.

    SQLAlchemy's Core spends ten times as long getting a small indexed SELECT to and from the
    driver (cache key, parameters, execution context, result metadata) as SQLite spends running
    it, and more than SQLite's own commit in an audit append's four statements. This compiles the
    statement once per dialect and keeps its parameter order and its columns' type conversions
    (the same ones SQLAlchemy applies: UUIDs, dates, booleans), so a run is one cursor call. No
    expanding (`IN :list`) parameters; engine events and echo are bypassed. A read outside a
    transaction reads its own snapshot; a write runs in the connection's transaction, which the
    caller has begun and commits.
    """

    def __init__(self, statement: sa.Select[Any] | sa.CompoundSelect[Any] | sa.Insert | sa.Update) -> None:
        self.statement = statement
        self._plans: dict[str, _Plan] = {}

    def _plan(self, dialect: sa.Dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            compiled = self.statement.compile(dialect=dialect)
            binds = [(name, b) for b, name in compiled.bind_names.items()]  # as named in the SQL
            if any(b.expanding or b.literal_execute for _, b in binds):
                raise ValueError("Prepared statements take no expanding or literal-execute parameters")
            convert = {name: b.type.dialect_impl(dialect).bind_processor(dialect) for name, b in binds}
            fixed = {name: b.effective_value for name, b in binds if not b.required}
            plan = self._plans[dialect.name] = _Plan(
                sql=compiled.string,
                names=tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None,
                fixed={k: v if (f := convert[k]) is None else f(v) for k, v in fixed.items()},
                bind={k: f for k, f in convert.items() if f is not None and k not in fixed},
                result=tuple(
                    c.type.dialect_impl(dialect).result_processor(dialect, None)
                    for c in self.statement.selected_columns
                )
                if isinstance(self.statement, sa.Select | sa.CompoundSelect)
                else (),
            )
        return plan

    def _values(self, plan: _Plan, params: dict[str, Any]) -> list[Any] | dict[str, Any]:
        values = {**plan.fixed, **params}
        for key, convert in plan.bind.items():
            if values[key] is not None:
                values[key] = convert(values[key])
        return [values[k] for k in plan.names] if plan.names else values

    def rows(self, conn: Readable, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run on this connection (its transaction, if it has begun one) and fetch every row."""
        plan = self._plan(conn.dialect)
        cursor = conn.connection.cursor()
        try:
            cursor.execute(plan.sql, self._values(plan, params))
            fetched = cursor.fetchall()
        finally:
            cursor.close()
        if not any(plan.result):
            return [tuple(row) for row in fetched]
        result = plan.result
        return [
            tuple(v if f is None or v is None else f(v) for f, v in zip(result, row, strict=True))
            for row in fetched
        ]

    def run(self, conn: Writable, params: Sequence[dict[str, Any]]) -> None:
        """Run a write once for each set of parameters, in the connection's transaction."""
        if not conn.in_transaction():
            raise RuntimeError("a prepared write runs in a transaction its caller has begun")
        plan = self._plan(conn.dialect)
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(plan.sql, cast(Any, [self._values(plan, p) for p in params]))
        finally:
            cursor.close()


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


# The rules the database enforces itself, beyond keys, checks and partial unique indexes.
SQLITE_RULES = [
    """CREATE TRIGGER IF NOT EXISTS audit_event_no_update BEFORE UPDATE ON audit_event
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_event_no_delete BEFORE DELETE ON audit_event
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS tac_convened_needs_three BEFORE UPDATE OF status ON tac
       WHEN NEW.status = 'convened' AND (SELECT count(*) FROM tac_member
            WHERE tac_id = NEW.id AND left_at IS NULL) < 3
       BEGIN SELECT RAISE(ABORT, 'a TAC needs more than two practitioners to be convened'); END""",
    """CREATE TRIGGER IF NOT EXISTS tac_member_leave_keeps_three BEFORE UPDATE OF left_at
       ON tac_member
       WHEN NEW.left_at IS NOT NULL AND OLD.left_at IS NULL
            AND (SELECT status FROM tac WHERE id = NEW.tac_id) = 'convened'
            AND (SELECT count(*) FROM tac_member WHERE tac_id = NEW.tac_id
                 AND left_at IS NULL) <= 3
       BEGIN SELECT RAISE(ABORT, 'a convened TAC needs more than two practitioners'); END""",
]

POSTGRES_RULES = [
    """CREATE OR REPLACE FUNCTION childindex_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event",
    """CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
       FOR EACH ROW EXECUTE FUNCTION childindex_append_only()""",
    """CREATE OR REPLACE FUNCTION childindex_tac_convene_check() RETURNS trigger AS $$
       BEGIN
         IF NEW.status = 'convened' AND (SELECT count(*) FROM tac_member
             WHERE tac_id = NEW.id AND left_at IS NULL) < 3 THEN
           RAISE EXCEPTION 'a TAC needs more than two practitioners to be convened';
         END IF;
         RETURN NEW;
       END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS tac_convened_needs_three ON tac",
    """CREATE TRIGGER tac_convened_needs_three BEFORE UPDATE OF status ON tac
       FOR EACH ROW EXECUTE FUNCTION childindex_tac_convene_check()""",
    """CREATE OR REPLACE FUNCTION childindex_tac_member_leave_check() RETURNS trigger AS $$
       BEGIN
         IF NEW.left_at IS NOT NULL AND OLD.left_at IS NULL
            AND (SELECT status FROM tac WHERE id = NEW.tac_id) = 'convened'
            AND (SELECT count(*) FROM tac_member WHERE tac_id = NEW.tac_id
                 AND left_at IS NULL) <= 3 THEN
           RAISE EXCEPTION 'a convened TAC needs more than two practitioners';
         END IF;
         RETURN NEW;
       END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS tac_member_leave_keeps_three ON tac_member",
    """CREATE TRIGGER tac_member_leave_keeps_three BEFORE UPDATE OF left_at ON tac_member
       FOR EACH ROW EXECUTE FUNCTION childindex_tac_member_leave_check()""",
]


def install_rules(conn: sa.Connection) -> None:
    """Create the triggers that make the database refuse what the domain refuses."""
    rules = POSTGRES_RULES if conn.dialect.name == "postgresql" else SQLITE_RULES
    for ddl in rules:
        conn.exec_driver_sql(ddl)


def create_schema(engine: Engine) -> None:
    """Create every table and rule directly (tests and throwaway databases; prefer migrate)."""
    SQLModel.metadata.create_all(engine)
    with engine.begin() as conn:
        install_rules(conn)
