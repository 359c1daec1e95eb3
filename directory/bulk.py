"""Fast bulk loading for seed and import: Core executemany on SQLite, COPY on PostgreSQL.

Rows are first *prepared* - turned into tuples of plain database values - which can
happen in another process (the seed generates children in one while this one writes),
and then inserted on one connection inside the caller's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Prepared:
    """Rows of one table as tuples of database values, in the order of `columns`."""

    table: str
    columns: tuple[str, ...]
    params: list[tuple[Any, ...]]


def _postgres_value(value: Any) -> Any:
    # COPY's text format parses these the same way PostgreSQL parses SQL literals.
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def prepare(dialect: Dialect, table: sa.Table, rows: Sequence[Row]) -> Prepared:
    """Turn rows (dicts with the same keys) into plain values for this dialect."""
    columns = tuple(rows[0].keys())
    values_by_column: list[list[Any]] = []
    for name in columns:
        values = [row[name] for row in rows]
        if dialect.name == "postgresql":
            values = [_postgres_value(v) for v in values]
        else:
            # Each column's own bind processor, so a uuid, date or UTC datetime is stored
            # exactly as the ORM stores it.
            processor: Callable[[Any], Any] | None = table.c[name].type._cached_bind_processor(dialect)
            if processor is not None:
                values = [None if v is None else processor(v) for v in values]
        values_by_column.append(values)
    return Prepared(table.name, columns, list(zip(*values_by_column, strict=True)))


class BulkWriter:
    """Writes rows straight into tables on one connection, inside the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
        self.counts: dict[str, int] = {}
        self._sql: dict[tuple[str, tuple[str, ...]], str] = {}

    def insert(self, table: sa.Table, rows: Sequence[Row]) -> None:
        """Insert rows (dicts with the same keys) into a table."""
        if rows:
            self.insert_prepared(table, prepare(self.conn.dialect, table, rows))

    def insert_prepared(self, table: sa.Table, prepared: Prepared) -> None:
        """Insert rows made by `prepare` for this connection's dialect."""
        if not prepared.params:
            return
        if not self.conn.in_transaction():
            raise RuntimeError("bulk inserts run inside the caller's transaction (conn.begin())")
        raw = self.conn.connection.driver_connection
        assert raw is not None
        if self.postgres:
            names = ", ".join(f'"{c}"' for c in prepared.columns)
            with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as cp:
                for params in prepared.params:
                    cp.write_row(params)
        else:
            raw.executemany(self._insert_sql(table, prepared.columns), prepared.params)
        self.counts[table.name] = self.counts.get(table.name, 0) + len(prepared.params)

    def _insert_sql(self, table: sa.Table, columns: tuple[str, ...]) -> str:
        # SQLAlchemy Core's insert(), compiled once per table. Executing it through the
        # driver skips only SQLAlchemy's per-row bookkeeping, which on a million children
        # took longer than SQLite itself.
        key = (table.name, columns)
        if key not in self._sql:
            stmt = table.insert().values({c: sa.bindparam(c) for c in columns})
            compiled = stmt.compile(dialect=self.conn.dialect, column_keys=list(columns))
            if tuple(compiled.positiontup or ()) != columns:
                raise ValueError(f"give every column of {table.name} in each row")
            self._sql[key] = str(compiled)
        return self._sql[key]


@contextmanager
def loading(engine: Engine, *, empty_database: bool = False) -> Iterator[Connection]:
    """A connection tuned for a bulk load; SQLite durability is restored before it is returned.

    Only a load into an empty database (the seed) skips fsyncs altogether: if the machine
    fails, that file is simply made again. An import into a live directory keeps WAL's
    NORMAL level, which cannot corrupt the file; at worst the last batches are lost, and
    re-running the (idempotent) import restores them.
    """
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        # PRAGMAs go to the driver directly: SQLAlchemy would open a transaction first, and
        # SQLite refuses to change the safety level inside one.
        raw = conn.connection.driver_connection
        assert raw is not None
        if sqlite:
            # Keep the indexes in memory; the connection goes back to FULL afterwards, as
            # db.make_engine set it.
            raw.execute(f"PRAGMA synchronous={'OFF' if empty_database else 'NORMAL'}")
            raw.execute("PRAGMA cache_size=-2000000")
            raw.execute("PRAGMA temp_store=MEMORY")
        try:
            yield conn
        finally:
            if sqlite:
                if conn.in_transaction():
                    conn.rollback()
                raw.execute("PRAGMA cache_size=-2000")
                raw.execute("PRAGMA synchronous=FULL")
                raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
