"""The short way for POST searches (childindex/search_route.py) answers exactly as the FastAPI route
it stands in front of: the same caller checks in the same order, the same problems, the same audit.

Each case is sent twice to one app, with the short way in place and with it taken out, and the two
answers compared (bar the request id each problem carries)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from starlette.routing import Route

from auth.deps import AuthState
from childindex.search_route import install_lean_search
from directory.db import unit_of_work
from directory.models import Role
from search.indexer import drain
from tests.fixtures.auth_builders import bearer, make_grant, token_for
from tests.fixtures.builders import make_child

SEARCH = "/api/v1/children/search"
CRITERIA = {"given": "Amelia", "family": "Khan", "birth_date": "2016-05-01"}


def _lean(api: TestClient) -> Route:
    first = api.app.router.routes[0]  # type: ignore[attr-defined]
    assert isinstance(first, Route) and first.path == SEARCH and first.methods == {"POST"}
    return first


def _answer(api: TestClient, *, short: bool, **request: Any) -> tuple[int, str, Any]:
    routes = api.app.router.routes  # type: ignore[attr-defined]
    lean = _lean(api)
    if not short:
        routes.remove(lean)
    try:
        r = api.post(SEARCH, **request)
    finally:
        if not short:
            routes.insert(0, lean)
    body = r.json() if r.content else None
    if isinstance(body, dict):
        body.pop("instance", None)  # the request id
    return r.status_code, r.headers.get("content-type", ""), body


def _audit(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT action, outcome, actor_subject FROM audit_event ORDER BY seq")
        ).all()
    return [(r[0], r[1], r[2]) for r in rows]


@pytest.fixture
def callers(api: TestClient, engine: Engine, state: AuthState) -> dict[str, str]:
    with unit_of_work(engine) as s:
        make_grant(s, "pat")
        make_grant(s, "aud", role=Role.AUDITOR)
        make_child(s, names=[{"given": "Amelia", "family": "Khan"}], date_of_birth=CRITERIA["birth_date"])
    drain(engine, api.app.state.search_backend, wait=True)  # type: ignore[attr-defined]
    return {"pat": token_for(state, "pat"), "aud": token_for(state, "aud", role=Role.AUDITOR)}


def _cases(tokens: dict[str, str]) -> dict[str, dict[str, Any]]:
    pat, aud = tokens["pat"], tokens["aud"]
    return {
        "a search": {"headers": bearer(pat), "json": CRITERIA},
        "unsigned": {"json": CRITERIA},
        "unsigned with a bad body": {"json": {"given": 7, "shoe_size": 9}},
        "a forged token": {"headers": bearer(pat[:-4] + "AAAA"), "json": CRITERIA},
        "no purpose": {"headers": bearer(pat, purpose=None), "json": CRITERIA},
        "an unknown purpose": {"headers": bearer(pat, purpose="curiosity"), "json": CRITERIA},
        "an auditor": {"headers": bearer(aud, purpose="audit"), "json": CRITERIA},
        "too little to search on": {"headers": bearer(pat), "json": {"given": "Amelia"}},
        "an unknown field": {"headers": bearer(pat), "json": {**CRITERIA, "shoe_size": 9}},
        "a date out of bounds": {"headers": bearer(pat), "json": {**CRITERIA, "birth_date": "1066-10-14"}},
        "not JSON": {
            "headers": {**bearer(pat), "Content-Type": "application/json"},
            "content": b"{given: Amelia",
        },
        "an empty body": {"headers": {**bearer(pat), "Content-Type": "application/json"}, "content": b""},
        "a form, not JSON": {"headers": bearer(pat), "data": {"given": "Amelia"}},
        "JSON under another type": {
            "headers": {**bearer(pat), "Content-Type": "text/plain"},
            "content": b'{"given": "Amelia", "family": "Khan", "birth_date": "2016-05-01"}',
        },
        "a bad local id": {"headers": bearer(pat), "json": {"local_id": "mosaic12345"}},
        "an oversized body": {"headers": bearer(pat), "json": {**CRITERIA, "given": "A" * 1_100_000}},
    }


def test_every_case_is_answered_as_the_fastapi_route_answers_it(
    api: TestClient, engine: Engine, callers: dict[str, str]
) -> None:
    for name, request in _cases(callers).items():
        short = _answer(api, short=True, **request)
        slow = _answer(api, short=False, **request)
        assert short == slow, name
        assert short[0] < 500, name
    assert _answer(api, short=True, **_cases(callers)["an oversized body"])[0] == 413
    status, kind, body = _answer(api, short=True, **_cases(callers)["a search"])
    assert (status, kind) == (200, "application/json")
    assert [h["name"] for h in body["hits"]] == ["Amelia Khan"]


def test_both_ways_audit_the_same_events_under_the_token_s_subject(
    api: TestClient, engine: Engine, callers: dict[str, str]
) -> None:
    cases = _cases(callers)
    audits = []
    for short in (True, False):
        before = len(_audit(engine))
        for name in ("a search", "unsigned", "an auditor", "too little to search on", "a bad local id"):
            _answer(api, short=short, **cases[name])
        audits.append(_audit(engine)[before:])
    assert audits[0] == audits[1]
    assert ("search", "success", "pat") in audits[0]
    assert all(subject != "anonymous" for _, outcome, subject in audits[0] if outcome == "success")


def test_the_short_way_is_the_first_route_and_keeps_the_route_s_policy(api: TestClient) -> None:
    from auth.policy import declared_policy

    lean = _lean(api)
    assert lean.name == "search_children"
    policy = declared_policy(lean)
    assert policy is not None and "directory.search" in policy.scopes  # type: ignore[union-attr]
    # GET searches still go to their FastAPI route.
    assert api.get(SEARCH, params=CRITERIA).status_code == 401


def test_installing_twice_is_refused(api: TestClient) -> None:
    with pytest.raises(ValueError, match="already"):
        install_lean_search(api.app)  # type: ignore[arg-type]
