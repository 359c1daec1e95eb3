"""Per-subject rate limits on card reads (search when it lands): 429, and the trawling alert."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from auth.ratelimit import SubjectLimiter
from directory.db import unit_of_work
from tests.fixtures.auth_builders import bearer, make_grant, token_for


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_the_limit_answers_429_with_retry_after(api: TestClient, engine: Engine, state: AuthState) -> None:
    state.limiter = SubjectLimiter(per_minute=3, trawl_window_seconds=3600, trawl_distinct=100)
    with unit_of_work(engine) as s:
        make_grant(s, "pat")
        make_grant(s, "sam")
    pat, sam = bearer(token_for(state, "pat")), bearer(token_for(state, "sam"))
    statuses = [api.get(f"/api/v1/children/{uuid.uuid4()}", headers=pat).status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    r = api.get(f"/api/v1/children/{uuid.uuid4()}", headers=pat)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "limit is 3 a minute" in r.json()["detail"]
    # Per subject: someone else is not held up.
    assert api.get(f"/api/v1/children/{uuid.uuid4()}", headers=sam).status_code == 404
    # Listing the catalogue is not rate limited.
    assert api.get("/api/v1/localities", headers=pat).status_code == 200


def test_many_distinct_children_raise_one_trawling_alert(
    api: TestClient, engine: Engine, state: AuthState
) -> None:
    state.limiter = SubjectLimiter(per_minute=1000, trawl_window_seconds=3600, trawl_distinct=5)
    with unit_of_work(engine) as s:
        make_grant(s, "pat")
    pat = bearer(token_for(state, "pat"))
    for _ in range(8):
        api.get(f"/api/v1/children/{uuid.uuid4()}", headers=pat)
    with engine.connect() as conn:
        alerts = conn.execute(
            sa.text("SELECT actor_subject, outcome FROM audit_event WHERE action = 'alert.trawling'")
        ).all()
    assert [tuple(a) for a in alerts] == [("pat", "alert")]


def test_repeat_looks_at_the_same_children_are_not_trawling() -> None:
    clock = Clock()
    limiter = SubjectLimiter(per_minute=1000, trawl_window_seconds=3600, trawl_distinct=5, clock=clock)
    regulars = [str(uuid.uuid4()) for _ in range(3)]
    alerts = []
    for _ in range(4):  # a caseload looked at again and again
        for child in regulars:
            clock.t += 1
            alerts.append(limiter.hit("pat", child))
    for _ in range(2):  # then two new children: five distinct, but mostly repeats
        clock.t += 1
        alerts.append(limiter.hit("pat", str(uuid.uuid4())))
    assert all(a is None for a in alerts)
    # Five new children in a row is the pattern the alert is for.
    fresh = [limiter.hit("sam", str(uuid.uuid4())) for _ in range(5)]
    assert fresh[-1] is not None and fresh[-1].distinct_children == 5
