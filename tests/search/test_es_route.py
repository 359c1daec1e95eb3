"""The app's search route with Elasticsearch awaits the node on the event loop and holds no worker
thread meanwhile (search.port.AsyncReads): with every worker thread taken, searches still answer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from childindex.app import create_app
from childindex.settings import Settings
from search.indexer import drain
from tests.directory.test_api import new_child, who
from tests.search.conftest import ES_URL_ENV, require_env

pytestmark = pytest.mark.elasticsearch

SEARCH = {"given": "Amelia", "family": "Khan", "birth_date": "2015-03-07"}


@pytest.fixture
def es_client(engine: Engine, settings: Settings) -> Iterator[TestClient]:
    on_the_node = settings.model_copy(
        update={
            "search_backend": "elasticsearch",
            "elasticsearch_url": require_env(ES_URL_ENV, "Elasticsearch"),
            "elasticsearch_alias": f"childindex-route-{uuid.uuid4().hex[:12]}",
        }
    )
    app = create_app(on_the_node, engine=engine)
    backend = app.state.search_engine.backend
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
    finally:
        backend.client.indices.delete(index=f"{backend.alias}-*", ignore_unavailable=True)
        backend.client.close()


def test_a_search_through_the_node_holds_no_worker_thread(es_client: TestClient, engine: Engine) -> None:
    child = new_child(es_client, date_of_birth=SEARCH["birth_date"])
    backend = es_client.app.state.search_engine.backend  # type: ignore[attr-defined]
    drain(engine, backend)
    backend.refresh_now()
    found = es_client.post("/api/v1/children/search", headers=who(), json=SEARCH)
    assert found.status_code == 200, found.text
    assert [h["child_id"] for h in found.json()["hits"]] == [child]

    portal = es_client.portal
    assert portal is not None
    limiter = portal.call(anyio.to_thread.current_default_thread_limiter)
    taken: list[object] = []
    with ThreadPoolExecutor(1) as pool:
        try:
            # every worker thread busy, as if each waited on a slow node
            for _ in range(int(limiter.total_tokens)):
                taken.append(object())
                portal.call(limiter.acquire_on_behalf_of, taken[-1])
            asked = pool.submit(es_client.post, "/api/v1/children/search", headers=who(), json=SEARCH)
            answer = asked.result(timeout=30)
        finally:  # (before the pool waits: a search that waited for a thread can finish now)
            for holder in taken:
                portal.call(limiter.release_on_behalf_of, holder)
    assert answer.status_code == 200, answer.text
    assert [h["child_id"] for h in answer.json()["hits"]] == [child]
