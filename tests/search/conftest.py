"""Fixtures for the search tests: backends on real SQLite, PostgreSQL and Elasticsearch."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlalchemy import Engine, create_engine

from search.embedded import EmbeddedBackend, metadata
from search.port import PersonFields, SearchBackend

ES_URL_ENV = "CHILDINDEX_TEST_ELASTICSEARCH_URL"
PG_URL_ENV = "CHILDINDEX_TEST_POSTGRES_URL"


def require_env(name: str, what: str) -> str:
    """The variable's value; skip without it locally, fail without it in CI (CI=true)."""
    value = os.environ.get(name)
    if value:
        return value
    message = f"{what} not configured: set {name}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (required in CI)")
    pytest.skip(message)


def build_person(**overrides: Any) -> PersonFields:
    """A typical child; override any field."""
    fields: dict[str, Any] = {
        "child_id": uuid.uuid4().hex,
        "given_names": ("Alexander",),
        "family_names": ("Smith-Jones",),
        "birth_date": date(2015, 3, 7),
        "expected_delivery_date": None,
        "sex": "male",
        "postcodes": ("OX4 1AB",),
        "identifiers": (("nhs", "9434765919"),),
        "shielded": False,
    }
    fields.update(overrides)
    return PersonFields(**fields)


def _embedded(engine: Engine, *, resident: bool) -> Iterator[EmbeddedBackend]:
    """The embedded backend; with `resident`, once its memory-resident copy is loaded."""
    backend = EmbeddedBackend(engine, resident=resident)
    backend.ensure_ready()
    if resident:
        assert backend.start_resident().wait_ready(30), "the resident copy did not load"
    try:
        yield backend
    finally:
        backend.stop_resident()


def _sqlite_backend(tmp_path: Path, *, resident: bool = False) -> Iterator[EmbeddedBackend]:
    engine = create_engine(f"sqlite:///{tmp_path / 'search.db'}")
    yield from _embedded(engine, resident=resident)
    engine.dispose()


def _postgres_backend(*, resident: bool = False) -> Iterator[EmbeddedBackend]:
    engine = create_engine(require_env(PG_URL_ENV, "PostgreSQL"))
    metadata.drop_all(engine)
    yield from _embedded(engine, resident=resident)
    metadata.drop_all(engine)
    engine.dispose()


def _elasticsearch_backend() -> Iterator[SearchBackend]:
    from search.elasticsearch import ElasticsearchBackend

    url = require_env(ES_URL_ENV, "Elasticsearch")
    alias = f"childindex-test-{uuid.uuid4().hex[:12]}"
    backend = ElasticsearchBackend.from_url(url, alias=alias, refresh="wait_for")
    backend.ensure_ready()
    yield backend
    backend.client.indices.delete(index=f"{alias}-*", ignore_unavailable=True)
    backend.client.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="embedded-sqlite"),
        pytest.param("postgres", id="embedded-postgres", marks=pytest.mark.postgres),
        pytest.param("sqlite-resident", id="embedded-sqlite-resident"),
        pytest.param("postgres-resident", id="embedded-postgres-resident", marks=pytest.mark.postgres),
        pytest.param("elasticsearch", id="elasticsearch", marks=pytest.mark.elasticsearch),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SearchBackend]:
    """Every SearchBackend implementation, each on the real thing (the embedded one also with
    its memory-resident copy)."""
    kind = request.param
    if kind.startswith("sqlite"):
        yield from _sqlite_backend(tmp_path, resident=kind.endswith("resident"))
    elif kind.startswith("postgres"):
        yield from _postgres_backend(resident=kind.endswith("resident"))
    else:
        yield from _elasticsearch_backend()


class PersonBuilder(Protocol):
    """Signature of the `make_person` fixture."""

    def __call__(self, **overrides: Any) -> PersonFields: ...


@pytest.fixture
def make_person() -> PersonBuilder:
    """Builder for PersonFields: `make_person(given_names=("Kate",))`."""
    return build_person


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Iterator[SearchBackend]:
    """The embedded backend on a temporary SQLite file."""
    yield from _sqlite_backend(tmp_path)
