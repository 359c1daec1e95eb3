"""Databases for the seed and import tests: a temp SQLite file, and PostgreSQL when given.

These fixtures stand alone (they do not use tests/conftest.py): each PostgreSQL test module
gets a schema of its own, so these tests can run beside the shared fixtures.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from childindex.migrations import upgrade
from directory.db import make_engine
from directory.models import Actor, Role

POSTGRES_URL = os.environ.get("CHILDINDEX_TEST_POSTGRES_URL")
IN_CI = os.environ.get("CI", "").lower() == "true"
ACTOR = Actor(subject="cli:test", role=Role.DIRECTORY_ADMIN, client_id="childindex-cli")


def sqlite_engine(tmp_path: Path, name: str = "x.db") -> Engine:
    """A migrated SQLite file in a temporary folder."""
    engine = make_engine(f"sqlite:///{tmp_path / name}")
    upgrade(engine)
    return engine


def _postgres_url() -> str:
    if not POSTGRES_URL:
        message = "PostgreSQL is not available: set CHILDINDEX_TEST_POSTGRES_URL"
        if IN_CI:
            pytest.fail(message + " (in CI a missing service fails the run)")
        pytest.skip(message)
    return POSTGRES_URL


@pytest.fixture(scope="module")
def postgres_schema() -> Iterator[str]:
    """A fresh schema for one test module, dropped afterwards; yields an engine URL using it."""
    url = _postgres_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    yield f"{url}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


def postgres_engine(schema_url: str) -> Engine:
    """A migrated, emptied PostgreSQL engine on the module's schema."""
    engine = make_engine(schema_url, pool_size=2)
    upgrade(engine)
    with engine.begin() as conn:
        tables = [
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename <> 'alembic_version'"
            )
        ]
        conn.exec_driver_sql("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
    return engine


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty migrated database: SQLite, and PostgreSQL when configured."""
    if request.param == "sqlite":
        engine = sqlite_engine(tmp_path)
    else:
        engine = postgres_engine(request.getfixturevalue("postgres_schema"))
    yield engine
    engine.dispose()


def scalar(engine: Engine, sql: str) -> int:
    """The single number a query returns."""
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())
