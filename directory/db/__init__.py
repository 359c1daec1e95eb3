"""The database: engines and sessions (engine), the mini-ORM for the statements run on every
request (driver), and the rules the database enforces itself (rules). Callers import from here."""

from __future__ import annotations

from directory.db.driver import (
    DriverReader,
    Prepared,
    Readable,
    SqliteWriter,
    Writable,
    driver_reader,
    sqlite_transaction,
)
from directory.db.engine import (
    BACKGROUND_CONNECTIONS,
    LOOP_CONNECTIONS,
    READ_ONLY,
    UPSTREAM_THREADS,
    Limits,
    is_postgres,
    is_sqlite_file,
    loop_engine,
    make_engine,
    pool_sizes,
    read_only,
    reader,
    unit_of_work,
    write_turns,
)
from directory.db.rules import POSTGRES_RULES, SQLITE_RULES, create_schema, install_rules

__all__ = [
    "BACKGROUND_CONNECTIONS",
    "LOOP_CONNECTIONS",
    "UPSTREAM_THREADS",
    "POSTGRES_RULES",
    "READ_ONLY",
    "SQLITE_RULES",
    "DriverReader",
    "Limits",
    "Prepared",
    "Readable",
    "SqliteWriter",
    "Writable",
    "create_schema",
    "driver_reader",
    "install_rules",
    "is_postgres",
    "is_sqlite_file",
    "loop_engine",
    "make_engine",
    "pool_sizes",
    "read_only",
    "reader",
    "sqlite_transaction",
    "unit_of_work",
    "write_turns",
]
