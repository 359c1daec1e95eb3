"""/readyz: the database answers with the code's schema, the search index is loaded or Elasticsearch
answers; 503 names what failed in plain words, never a URL or a password; a probe storm costs one
round of checks; /healthz stays liveness only."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from childindex.readiness import Readiness
from directory.db import make_engine
from search.embedded import EmbeddedBackend
from tests.conftest import need_service

SECRET = "s3cret-pw"


def test_ready_on_a_migrated_database_and_liveness_stays_simple(client: TestClient) -> None:
    deadline = time.monotonic() + 10
    while (r := client.get("/readyz")).status_code == 503 and time.monotonic() < deadline:
        # (the resident copy loads in the background from start-up: until then, and only for that)
        assert [p for p in r.json()["problems"] if "search index" not in p] == [], r.text
        time.sleep(0.2)
    assert r.status_code == 200 and r.json() == {"status": "ready"}, r.text
    assert client.get("/healthz").json() == {"status": "ok"}


def test_a_schema_behind_the_code_is_not_ready(client: TestClient, engine: Engine) -> None:
    with engine.begin() as conn:
        head = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        time.sleep(1.05)  # (past the one-second cache of the last answer)
        r = client.get("/readyz")
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        assert r.json() == {
            "status": "not ready",
            "problems": ["the database's schema is not the code's (run `childindex migrate`)"],
        }
        assert client.get("/healthz").status_code == 200  # (liveness: no restart for this)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": head})


def test_a_database_that_does_not_answer_is_named_without_its_url(engine: Engine) -> None:
    gone = make_engine(f"postgresql+psycopg://childindex:{SECRET}@127.0.0.1:9/nowhere?connect_timeout=1")
    checks = Readiness(gone, EmbeddedBackend(engine), resident=False, timeout=3)
    checks.head = "0025"
    answer = asyncio.run(checks.answer())
    assert not answer.ready
    assert answer.problems[0].startswith("the database does not answer (")
    said = repr(answer.body())
    assert SECRET not in said and "127.0.0.1" not in said and "nowhere" not in said
    gone.dispose()


def test_elasticsearch_that_does_not_answer_is_named_without_its_url(engine: Engine) -> None:
    from search.elasticsearch import ElasticsearchBackend

    backend = ElasticsearchBackend.from_url(f"http://elastic:{SECRET}@127.0.0.1:9")
    checks = Readiness(engine, backend, resident=False, timeout=3)
    answer = asyncio.run(checks.answer())
    assert not answer.ready
    assert [p.startswith("Elasticsearch cannot be asked") for p in answer.problems] == [True]
    said = repr(answer.body())
    assert SECRET not in said and "127.0.0.1" not in said and "elastic:" not in said


def test_a_reachable_elasticsearch_is_ready_once_its_index_exists(engine: Engine) -> None:
    url = os.environ.get("CHILDINDEX_TEST_ELASTICSEARCH_URL")
    if not url:
        need_service("Elasticsearch", "CHILDINDEX_TEST_ELASTICSEARCH_URL")
    from search.elasticsearch import ElasticsearchBackend

    backend = ElasticsearchBackend.from_url(url or "", alias=f"childindex-ready-{uuid.uuid4().hex[:8]}")
    checks = Readiness(engine, backend, resident=False)
    answer = asyncio.run(checks.answer())
    assert answer.problems == (f"Elasticsearch has no index {backend.alias}: run `childindex reindex`",)
    backend.ensure_ready()
    try:
        time.sleep(1.05)  # (past the one-second cache)
        answer = asyncio.run(checks.answer())
        assert answer.ready, answer.problems
    finally:
        for index in backend._current_indices():
            backend.client.indices.delete(index=index, ignore_unavailable=True)


def test_a_check_that_hangs_answers_within_the_timeout(engine: Engine) -> None:
    checks = Readiness(engine, EmbeddedBackend(engine), resident=False, timeout=0.3)

    def stuck() -> str | None:
        time.sleep(2)
        return None

    checks._database = stuck  # type: ignore[method-assign]
    started = time.monotonic()
    answer = asyncio.run(checks.answer())
    assert time.monotonic() - started < 1.5
    assert answer.problems == ("the database check did not finish within 0.3 seconds",)


def test_a_probe_storm_costs_one_round_of_checks(engine: Engine) -> None:
    checks = Readiness(engine, EmbeddedBackend(engine), resident=False)
    rounds = 0
    real = checks._database

    def counted() -> str | None:
        nonlocal rounds
        rounds += 1
        time.sleep(0.05)
        return real()

    checks._database = counted  # type: ignore[method-assign]

    async def storm() -> list[bool]:
        first = await asyncio.gather(*(checks.answer() for _ in range(50)))
        again = await asyncio.gather(*(checks.answer() for _ in range(50)))  # within the second: cached
        return [a.ready for a in first + again]

    assert all(asyncio.run(storm()))
    assert rounds == 1


def test_a_resident_index_still_loading_is_not_ready_at_once(engine: Engine) -> None:
    class Loading(EmbeddedBackend):
        warm = False  # (as while its resident copy loads: tests/search/test_search_resident.py)

    checks = Readiness(engine, Loading(engine), resident=True)
    answer = asyncio.run(checks.answer())
    assert answer.problems == ("the search index is still loading into memory",)
