"""A private mini-ORM for the few statements run on every request: `Prepared` statements run
straight on the driver's cursor, through a pooled driver connection (`driver_reader`) or, on a
SQLite file, a connection of this thread's own; and `SqliteWriter` transactions for the audit
log's group commit. Everything else goes through SQLAlchemy (directory.db.engine)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import PoolProxiedConnection

from directory.db.engine import is_sqlite_file, loop_engine, write_turns
from directory.sqlite_turns import WriteTurns


class Readable(Protocol):
    """What `Prepared` runs on: a Core `Connection`, or a `DriverReader`."""

    @property
    def dialect(self) -> sa.Dialect: ...

    @property
    def connection(self) -> PoolProxiedConnection: ...


class Writable(Readable, Protocol):
    """What `Prepared` writes through: a Core `Connection`, or a `SqliteWriter`."""

    def in_transaction(self) -> bool: ...


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
        return cls(engine.dialect, raw, write_turns(engine))

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
