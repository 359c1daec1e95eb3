"""Fast bulk loading for seed and import: Core executemany on SQLite, COPY on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

Row = Mapping[str, Any]


class BulkWriter:
    """Writes rows straight into tables on one connection, inside the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
        self.counts: dict[str, int] = {}
        self._plans: dict[str, tuple[str, list[str], list[Any]]] = {}

    def insert(self, table: sa.Table, rows: Sequence[Row]) -> None:
        """Insert rows (dicts with the same keys) into a table."""
        if not rows:
            return
        if self.postgres:
            self._copy(table, rows)
        else:
            self._executemany(table, rows)
        self.counts[table.name] = self.counts.get(table.name, 0) + len(rows)

    def _executemany(self, table: sa.Table, rows: Sequence[Row]) -> None:
        # The statement is SQLAlchemy Core's insert() compiled once, and each value goes
        # through its column type's own bind processor (so a uuid, date or UTC datetime is
        # stored exactly as the ORM stores it). Only SQLAlchemy's per-row bookkeeping is
        # skipped: on a million children it took twice as long as SQLite itself.
        columns = list(rows[0].keys())
        key = table.name + ":" + ",".join(columns)
        plan = self._plans.get(key)
        if plan is None:
            dialect = self.conn.dialect
            stmt = table.insert().values({c: sa.bindparam(c) for c in columns})
            compiled = stmt.compile(dialect=dialect, column_keys=columns)
            order = compiled.positiontup or columns
            if set(order) != set(columns):  # a column left to its default: let Core do it
                self.conn.execute(table.insert(), list(rows))
                return
            processors = [table.c[c].type._cached_bind_processor(dialect) for c in order]
            plan = (str(compiled), list(order), processors)
            self._plans[key] = plan
        sql, order, processors = plan
        pairs = list(zip(order, processors, strict=True))
        params = [
            tuple(proc(row[c]) if proc is not None else row[c] for c, proc in pairs) for row in rows
        ]
        if not self.conn.in_transaction():
            raise RuntimeError("bulk inserts run inside the caller's transaction (conn.begin())")
        raw = self.conn.connection.driver_connection
        assert raw is not None
        raw.executemany(sql, params)

    def _copy(self, table: sa.Table, rows: Sequence[Row]) -> None:
        # COPY bypasses the SQLAlchemy type layer, so rows must hold values psycopg adapts
        # directly: uuid.UUID, date, and naive UTC datetimes (what the seed and import produce).
        columns = list(rows[0].keys())
        names = ", ".join(f'"{c}"' for c in columns)
        raw = self.conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])


@contextmanager
def loading(engine: Engine) -> Iterator[Connection]:
    """A connection tuned for a bulk load; SQLite durability is restored before it is returned."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        # PRAGMAs go to the driver directly: SQLAlchemy would open a transaction first, and
        # SQLite refuses to change the safety level inside one.
        raw = conn.connection.driver_connection
        if sqlite:
            # A bulk load into a file we can load again: skip the fsyncs and keep the indexes
            # in memory. The connection goes back to FULL afterwards, as db.make_engine set it.
            raw.execute("PRAGMA synchronous=OFF")
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
