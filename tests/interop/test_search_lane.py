"""Patient/$match waiting on an Elasticsearch node that has stopped answering holds threads of the
search lane only (directory/http/lanes.py): the process's other sync routes still answer, and once
the node is gone every waiting match is a 503 OperationOutcome."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.fixtures.stuck_node import searching_through_a_stuck_node
from tests.interop.conftest import World, system_headers
from tests.interop.test_fhir_search_unavailable import MATCH

# More than the process's shared threads and its search lane together (4 each: request_threads).
WAITING = 12


def test_matches_waiting_on_a_stuck_node_leave_the_other_routes_their_threads(
    api: TestClient, engine: Engine, state: object, world: World
) -> None:
    headers = system_headers(state, engine)  # type: ignore[arg-type]
    posting = {**headers, "Content-Type": "application/fhir+json"}
    lane = api.app.state.settings.request_threads  # type: ignore[attr-defined]  # (the search lane's width)
    with (
        searching_through_a_stuck_node(api.app) as node,  # type: ignore[arg-type]
        ThreadPoolExecutor(WAITING + 1) as pool,
    ):
        matches = [
            pool.submit(api.post, "/fhir/Patient/$match", headers=posting, json=MATCH) for _ in range(WAITING)
        ]
        assert node.wait_for(lane, timeout=30), "the matches never reached the node"
        time.sleep(0.5)
        assert node.held == lane  # the lane's threads wait on the node; the rest wait for one
        read = pool.submit(api.get, f"/fhir/Patient/{world.child}", headers=headers)
        answer = read.result(timeout=20)  # (before the lane: no thread left, until the node's timeout)
        assert answer.status_code == 200, answer.text
        assert all(not m.done() for m in matches)
        node.let_go()
        answered = [m.result(timeout=60) for m in matches]
    assert [r.status_code for r in answered] == [503] * WAITING
    assert {r.json()["resourceType"] for r in answered} == {"OperationOutcome"}
    assert all(r.headers.get("retry-after") for r in answered)
    ok = api.post("/fhir/Patient/$match", headers=posting, json=MATCH)
    assert ok.status_code == 200, ok.text
