"""FHIR: an Elasticsearch cluster that cannot answer makes Patient/$match a 503 OperationOutcome."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from search.elasticsearch import ElasticsearchBackend
from search.matching import MatchingEngine
from tests.interop.conftest import system_headers

MATCH = {
    "resourceType": "Parameters",
    "parameter": [
        {
            "name": "resource",
            "resource": {
                "resourceType": "Patient",
                "name": [{"family": "Jones", "given": ["Alex"]}],
                "birthDate": "2015-03-07",
            },
        }
    ],
}
"""A $match the tests send to a cluster that cannot answer (tests/interop/test_search_lane.py too)."""


def test_a_patient_match_against_an_unreachable_cluster_is_a_503_outcome(
    api: TestClient, engine: Engine, state: object
) -> None:
    headers = {**system_headers(state, engine), "Content-Type": "application/fhir+json"}  # type: ignore[arg-type]
    params = MATCH
    app_state = api.app.state  # type: ignore[attr-defined]
    working = app_state.search_engine
    app_state.search_engine = MatchingEngine(ElasticsearchBackend.from_url("http://127.0.0.1:9"))
    try:
        r = api.post("/fhir/Patient/$match", headers=headers, json=params)
    finally:
        app_state.search_engine = working
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert r.headers["retry-after"]
    ok = api.post("/fhir/Patient/$match", headers=headers, json=params)
    assert ok.status_code == 200, ok.text
