"""An Elasticsearch cluster that cannot answer makes a search a 503 with Retry-After, never a 500."""

from __future__ import annotations

from fastapi.testclient import TestClient

from search.elasticsearch import ElasticsearchBackend
from search.matching import MatchingEngine
from tests.directory.test_api import who


def test_a_search_against_an_unreachable_cluster_is_a_503(client: TestClient) -> None:
    state = client.app.state  # type: ignore[attr-defined]
    working = state.search_engine
    # nothing listens on port 9: the connection is refused at once
    unreachable = ElasticsearchBackend.from_url("http://127.0.0.1:9")
    state.search_engine = MatchingEngine(unreachable)
    try:
        r = client.post(
            "/api/v1/children/search",
            headers=who(),
            json={"given": "Alex", "family": "Jones", "birth_date": "2015-03-07"},
        )
    finally:
        state.search_engine = working
        client.portal.call(unreachable.aclose)  # type: ignore[union-attr]  # (the route awaited the node)
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["retry-after"]
    assert r.json()["type"].endswith("/busy")
    after = client.post(
        "/api/v1/children/search",
        headers=who(),
        json={"given": "Alex", "family": "Jones", "birth_date": "2015-03-07"},
    )
    assert after.status_code == 200, after.text
