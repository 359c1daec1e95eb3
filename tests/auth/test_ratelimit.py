"""Per-subject rate limits and trawling detection, shared by every process through the database:
429 with Retry-After, one trawling alert per window, every read path counted."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from auth.errors import AuthRefused
from auth.limits import PostgresLimits, SqliteLimits, limit_store
from auth.ratelimit import SubjectLimiter
from childindex.app import create_app
from childindex.settings import Settings
from directory.db import make_engine, unit_of_work
from tests.auth.conftest import ISSUER
from tests.fixtures.auth_builders import bearer, make_grant, token_for
from tests.fixtures.builders import make_child


class Clock:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def limiter(state: AuthState, *, per_minute: int = 1000, distinct: int = 10_000) -> SubjectLimiter:
    """The app's shared limiter with other limits."""
    return SubjectLimiter(
        state.limiter.store, per_minute=per_minute, trawl_window_seconds=3600, trawl_distinct=distinct
    )


def alerts(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT actor_subject, outcome FROM audit_event WHERE action = 'alert.trawling'")
        ).all()
    return [(r[0], r[1]) for r in rows]


def test_the_limit_answers_429_with_retry_after(api: TestClient, engine: Engine, state: AuthState) -> None:
    state.limiter = limiter(state, per_minute=3)
    with unit_of_work(engine) as s:
        make_grant(s, "pat")
        make_grant(s, "sam")
    pat, sam = bearer(token_for(state, "pat")), bearer(token_for(state, "sam"))
    statuses = [api.get(f"/api/v1/children/{uuid.uuid4()}", headers=pat).status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    r = api.get(f"/api/v1/children/{uuid.uuid4()}", headers=pat)
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 61
    assert "limit is 3 a minute" in r.json()["detail"]
    # Per subject: someone else is not held up.
    assert api.get(f"/api/v1/children/{uuid.uuid4()}", headers=sam).status_code == 404
    # Listing the catalogue is not rate limited.
    assert api.get("/api/v1/localities", headers=pat).status_code == 200


def test_many_distinct_children_raise_one_trawling_alert(
    api: TestClient, engine: Engine, state: AuthState
) -> None:
    state.limiter = limiter(state, distinct=5)
    with unit_of_work(engine) as s:
        make_grant(s, "pat")
    pat = bearer(token_for(state, "pat"))
    for _ in range(8):
        api.get(f"/api/v1/children/{uuid.uuid4()}", headers=pat)
    assert alerts(engine) == [("pat", "alert")]


def test_repeat_looks_at_the_same_children_are_not_trawling(engine: Engine) -> None:
    clock = Clock()
    limits = SubjectLimiter(
        limit_store(engine), per_minute=1000, trawl_window_seconds=3600, trawl_distinct=5, clock=clock
    )
    regulars = [uuid.uuid4() for _ in range(3)]
    found = []
    for _ in range(4):  # a caseload looked at again and again
        for child in regulars:
            clock.t += 1
            found.append(limits.hit("pat", child))
    for _ in range(2):  # then two new children: five distinct, but mostly repeats
        clock.t += 1
        found.append(limits.hit("pat", uuid.uuid4()))
    assert all(a is None for a in found)
    # Five new children in a row is the pattern the alert is for.
    fresh = [limits.hit("sam", uuid.uuid4()) for _ in range(5)]
    assert fresh[-1] is not None and fresh[-1].distinct_children == 5


def test_the_window_slides_and_the_trawl_window_spans_its_halves(engine: Engine) -> None:
    clock = Clock()
    limits = SubjectLimiter(
        limit_store(engine), per_minute=3, trawl_window_seconds=3600, trawl_distinct=6, clock=clock
    )
    for _ in range(3):
        limits.hit("pat")
        clock.t += 10
    with pytest.raises(AuthRefused) as refused:
        limits.hit("pat")
    # The first hit (30 s ago) leaves the window in 31 s.
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "31"
    clock.t += 31
    assert limits.hit("pat") is None
    # Trawling across the halves of the window: three children just before a half ends, three after.
    clock.t = (int(clock.t // 1800) + 1) * 1800 - 5
    assert limits.look("pat", [uuid.uuid4() for _ in range(3)]) is None
    clock.t += 10
    alert = limits.look("pat", [uuid.uuid4() for _ in range(3)])
    assert alert is not None and alert.distinct_children == 6 and alert.looks == 6


# --------------------------------------------------------------------------- across processes


def _second_engine(engine: Engine) -> Engine:
    """Another engine on the same database: what a second worker process opens."""
    return make_engine(engine.url.render_as_string(hide_password=False))


@pytest.fixture
def two_apps(engine: Engine) -> Iterator[tuple[FastAPI, FastAPI]]:
    """Two app instances on one database, each with its own engine (as two worker processes)."""
    other = _second_engine(engine)
    settings = Settings(environment="production", issuer=ISSUER, secret_key="k", search_rate_per_minute=5)
    yield create_app(settings, engine=engine), create_app(settings, engine=other)
    limit_store(other).dispose()
    other.dispose()


def test_two_processes_share_one_limit(engine: Engine, two_apps: tuple[FastAPI, FastAPI]) -> None:
    first, second = two_apps
    state = first.state.auth
    with unit_of_work(engine) as s:
        make_grant(s, "pat")
        child = make_child(s)
    pat = bearer(token_for(state, "pat"))
    with TestClient(first) as a, TestClient(second) as b:
        statuses = [(a if i % 2 else b).get(f"/api/v1/children/{child}", headers=pat) for i in range(8)]
    assert [r.status_code for r in statuses] == [200] * 5 + [429] * 3


def test_a_trawling_alert_is_raised_once_across_processes(
    engine: Engine, two_apps: tuple[FastAPI, FastAPI]
) -> None:
    first, second = two_apps
    for app in two_apps:
        app.state.auth.limiter = limiter(app.state.auth, distinct=4)
    state = first.state.auth
    with unit_of_work(engine) as s:
        make_grant(s, "pat")
    pat = bearer(token_for(state, "pat"))
    with TestClient(first) as a, TestClient(second) as b:
        for i in range(12):  # twelve different children, alternately through each process
            (a if i % 2 else b).get(f"/api/v1/children/{uuid.uuid4()}", headers=pat)
    assert alerts(engine) == [("pat", "alert")]


def test_concurrent_counts_admit_no_more_than_the_limit(engine: Engine) -> None:
    """Each thread counts through its own store (a worker process of its own); none over the limit."""
    engines = [_second_engine(engine) for _ in range(4)]
    postgres = engine.dialect.name == "postgresql"
    stores = [
        PostgresLimits(e) if postgres else SqliteLimits(SqliteLimits.beside(str(e.url.database)))
        for e in engines
    ]
    barrier = threading.Barrier(40)

    def one(i: int) -> bool:
        barrier.wait()
        return stores[i % 4].hit("burst", slot=1_800_000_000 + i % 3, limit=30) is None

    with ThreadPoolExecutor(40) as pool:
        admitted = sum(pool.map(one, range(40)))
    for store, e in zip(stores, engines, strict=True):
        store.dispose()
        e.dispose()
    assert admitted == 30


# --------------------------------------------------------------------------- every read path


def test_app_api_searches_count_each_hit_as_a_look(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    from tests.search.test_search_api import _child, _index

    state: AuthState = client.app.state.auth  # type: ignore[attr-defined]
    state.limiter = limiter(state, distinct=4)
    for i in range(5):
        _child(client, "Alexander", "Smith", postcode=f"OX4 {i}AB")
    _index(client, engine)
    reader = {"X-Dev-Actor": "subject=trawler; role=practitioner", "X-Purpose-Of-Use": "considering-caf"}
    query = {"given": "Alexander", "family": "Smith", "birth_date": _dob()}
    posted = client.post("/api/v1/children/search", json=query, headers=reader)
    assert posted.status_code == 200 and len(posted.json()["hits"]) == 5
    assert alerts(engine) == [("trawler", "alert")]
    # GET searches count too (a second subject, a fresh window of its own).
    other = {**reader, "X-Dev-Actor": "subject=getter; role=practitioner"}
    assert client.get("/api/v1/children/search", params=query, headers=other).status_code == 200
    assert sorted(alerts(engine)) == [("getter", "alert"), ("trawler", "alert")]


def test_app_api_searches_count_towards_the_rate_limit(client: TestClient, engine: Engine) -> None:
    state: AuthState = client.app.state.auth  # type: ignore[attr-defined]
    state.limiter = limiter(state, per_minute=2)
    reader = {"X-Dev-Actor": "subject=pat; role=practitioner", "X-Purpose-Of-Use": "considering-caf"}
    query = {"given": "Alexander", "family": "Smith", "birth_date": _dob()}
    got = [client.post("/api/v1/children/search", json=query, headers=reader).status_code for _ in range(2)]
    got.append(client.get("/api/v1/children/search", params=query, headers=reader).status_code)
    assert got == [200, 200, 429]


def _dob() -> str:
    from tests.search.test_search_api import DOB

    return DOB
