"""Alembic environment: uses the engine handed over in config.attributes."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from auth import models as auth_models  # noqa: F401
from auth.limits import metadata as limits_metadata
from directory import models  # noqa: F401
from search.embedded import metadata as search_metadata

config = context.config
# The embedded search index lives in the directory's database, so its tables are migrated too;
# so do the rate-limit counters on PostgreSQL (SQLite keeps them in a side file: auth/limits.py).
target_metadata = [SQLModel.metadata, search_metadata]


def run() -> None:
    engine = config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata
            + ([limits_metadata] if connection.dialect.name == "postgresql" else []),
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run()
