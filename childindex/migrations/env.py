"""Alembic environment: uses the engine handed over in config.attributes."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlmodel import SQLModel

from auth import models as auth_models  # noqa: F401
from auth.limits import metadata as limits_metadata
from directory import models  # noqa: F401
from directory.jobs import lease_key
from search.embedded import metadata as search_metadata

config = context.config
# The embedded search index lives in the directory's database, so its tables are migrated too;
# so do the rate-limit counters on PostgreSQL (SQLite keeps them in a side file: auth/limits.py).
target_metadata = [SQLModel.metadata, search_metadata]


def _one_at_a_time(connection: Any) -> None:
    """Nodes starting together each migrate on start: the first takes a transaction-level advisory
    lock and migrates; the others wait for its commit, then find the schema current (issue #21)."""
    previous = connection.exec_driver_sql("SELECT current_setting('lock_timeout')").scalar()
    connection.exec_driver_sql("SET LOCAL lock_timeout = 0")  # (however long the migration takes)
    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({lease_key('migrate')})")
    connection.exec_driver_sql(f"SELECT set_config('lock_timeout', '{previous}', true)")


def run() -> None:
    engine = config.attributes["engine"]
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A batch migration rebuilds a table (copy, drop, rename). With foreign keys enforced,
            # dropping a table others point at (child) deletes its rows first and fails on their
            # references; SQLite's own advice is to switch enforcement off for the rebuild and check
            # afterwards. The pragma only takes effect outside a transaction: on the driver's
            # connection, before the migrations' transaction begins.
            connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
        context.configure(
            connection=connection,
            target_metadata=target_metadata
            + ([limits_metadata] if connection.dialect.name == "postgresql" else []),
            render_as_batch=sqlite,
        )
        with context.begin_transaction():
            if not sqlite:
                _one_at_a_time(connection)
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"the migration left rows whose references are broken: {broken[:5]}")
        connection.commit()
        if sqlite:
            connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")


run()
