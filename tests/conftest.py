"""Shared fixtures: the same tests run on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from auth.deps import AuthState
from auth.limits import metadata as limits_metadata
from childindex import keys
from childindex.app import create_app
from childindex.migrations import upgrade
from childindex.settings import Settings
from directory import keyfile
from directory.db import make_engine
from search.tables import metadata as search_metadata

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get("CHILDINDEX_TEST_POSTGRES_URL")


def _test_keys() -> None:
    """Key files for the run (the audit chain's, the secrets'), made in a folder of their own and
    named in the environment, so every Settings and every `childindex` child process uses them."""
    folder = Path(tempfile.mkdtemp(prefix="childindex-test-keys-"))
    atexit.register(shutil.rmtree, folder, True)
    for purpose in keyfile.PURPOSES:
        variable = f"CHILDINDEX_{purpose.upper()}_KEY_FILE"
        if not os.environ.get(variable):
            os.environ[variable] = str(keyfile.generate(folder / f"{purpose}.key", purpose).path)
    keys.install(Settings())


_test_keys()


def need_service(name: str, env: str) -> None:
    """Skip when a real service was not started locally; in CI that is a failure."""
    message = f"{name} is not available: set {env} (the README's test command starts it)"
    if IN_CI:
        pytest.fail(message + " - in CI a missing service fails the run")
    pytest.skip(message)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # closing the last connection checkpoints the WAL into the file
    return path


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[Engine]:
    """A PostgreSQL engine with the schema migrated once for the run."""
    if not POSTGRES_URL:
        need_service("PostgreSQL", "CHILDINDEX_TEST_POSTGRES_URL")
    engine = make_engine(POSTGRES_URL or "", pool_size=20)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    upgrade(engine)
    yield engine
    engine.dispose()


def _truncate_all(engine: Engine) -> None:
    # The search backend's own tests drop the embedded index's tables in this database when they
    # end (tests/search/conftest.py): a test after them on the migrated schema needs them back.
    search_metadata.create_all(engine)
    tables = [t.name for t in SQLModel.metadata.sorted_tables]
    tables += [t.name for t in search_metadata.sorted_tables]
    tables += [t.name for t in limits_metadata.sorted_tables]  # the shared rate-limit counters
    names = ", ".join(f'"{t}"' for t in tables)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[Engine]:
    """A clean database for one test, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(sqlite_template, path)
        eng = make_engine(f"sqlite:///{path}")
        yield eng
        eng.dispose()
    else:
        pg: Engine = request.getfixturevalue("postgres_engine")
        _truncate_all(pg)
        yield pg


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session whose work the test commits explicitly (or not)."""
    with Session(engine, expire_on_commit=False) as s:
        yield s
        s.rollback()


@pytest.fixture
def settings() -> Settings:
    """Development settings (the dev actor header is accepted)."""
    # No background indexer: tests apply the outbox themselves, so they never race it.
    return Settings(environment="development", database_url="sqlite://", indexer_interval_seconds=0)


@pytest.fixture
def client(engine: Engine, settings: Settings) -> Iterator[TestClient]:
    """An HTTP client for the app on the test database."""
    app = create_app(settings, engine=engine)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def count(engine: Engine, table: str) -> int:
    """Rows in a table."""
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.fixture
def app(engine: Engine, prod_settings: Settings) -> FastAPI:
    """The app in production mode, with the `prod_settings` of the test package asking for it."""
    return create_app(prod_settings, engine=engine)


@pytest.fixture
def api(app: FastAPI) -> Iterator[TestClient]:
    """An HTTP client for the production-mode app."""
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def state(app: FastAPI) -> AuthState:
    """The app's auth state (keys, validator, config)."""
    return app.state.auth  # type: ignore[no-any-return]
