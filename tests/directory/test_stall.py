"""No stall, in process: a request's transaction ends in the thread that did its work, the event
loop never waits for a pooled connection, and a request that cannot get a lock or a connection in
time is answered 503 with Retry-After on every surface (never a hang, never a 500).

The apps here build their own engine from the settings, as `childindex serve` does, on the test
database (SQLite and PostgreSQL); tests/directory/test_burst.py drives a real server process.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from auth.models import SubjectKind
from auth.policy import all_routes
from childindex.app import create_app
from childindex.settings import Settings
from directory import service
from directory.db import Limits, make_engine, pool_sizes, reader, unit_of_work
from directory.http.deps import UnitOfWorkRoute, get_session
from directory.models import CafSignal, Role, utcnow
from directory.sqlite_turns import WriteTurns
from tests.conftest import count
from tests.directory.test_burst import _signal_body
from tests.fixtures.auth_builders import bearer, make_client, make_grant, token_for
from tests.fixtures.builders import actor, make_child, make_practitioner
from tests.web.world import World, build_world, csrf_of, page_client, sign_in, web_settings

LOCK_SECONDS = 1.0  # the lock (and pool) timeout of the apps here
ISSUER = "http://testserver"


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _dev(practitioner_id: uuid.UUID) -> dict[str, str]:
    return {
        "X-Dev-Actor": f"subject=p-{practitioner_id}; role=practitioner; practitioner={practitioner_id}",
        "X-Purpose-Of-Use": "considering-caf",
    }


async def _gather(app: FastAPI, requests: list[tuple[str, str, dict[str, Any]]]) -> list[httpx.Response]:
    """Send requests at once through the app (in the event loop the app's lifespan runs in)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER, timeout=60) as client:
        return list(await asyncio.gather(*(client.request(m, u, **kw) for m, u, kw in requests)))


def test_a_burst_of_signals_for_one_child_ends_in_seconds_with_a_single_request_thread(
    engine: Engine,
) -> None:
    """The winner commits in its own thread: it never waits for a thread the others hold while
    they wait for its lock (before: every thread stalled until the lock timed out, or for ever)."""
    with unit_of_work(engine) as s:
        child = make_child(s)
        people = [make_practitioner(s, name=f"Practitioner {i}").id for i in range(10)]
    settings = Settings(
        environment="development",
        database_url=_url(engine),
        request_threads=1,
        indexer_interval_seconds=0,
        search_resident=False,
    )
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.portal is not None
        burst = [
            ("POST", f"/api/v1/children/{child}/caf", {"json": _signal_body(p), "headers": _dev(p)})
            for p in people
        ]
        started = time.monotonic()
        answers = client.portal.call(lambda: asyncio.wait_for(_gather(app, burst), 20))
        took = time.monotonic() - started
    app.state.engine.dispose()
    assert sorted(r.status_code for r in answers) == [201] + [409] * 9, [r.text for r in answers]
    assert took < 5, f"ten signals took {took:.1f} s"
    assert count(engine, "assessment") == 1


@contextmanager
def _signal_left_open(engine: Engine, child: uuid.UUID, practitioner: uuid.UUID) -> Iterator[None]:
    """Another practitioner's CAF signal, written but not committed: it holds SQLite's write lock,
    or on PostgreSQL the audit chain's lock and the child's open-CAF slot."""
    with Session(engine) as s:
        service.signal_caf(
            s,
            actor=actor(subject="someone-else", practitioner_id=practitioner),
            child_id=child,
            data=CafSignal(practitioner_id=practitioner, no_risk_of_significant_harm=True),
            signal_days=14,
            now=utcnow(),
        )
        s.flush()
        try:
            yield
        finally:
            s.rollback()


def _busy(r: httpx.Response, started: float) -> None:
    took = time.monotonic() - started
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == "2"
    assert took < LOCK_SECONDS + 3, f"answered after {took:.1f} s"


def test_a_request_that_cannot_get_its_lock_in_time_is_answered_503_on_every_surface(engine: Engine) -> None:
    world: World = build_world(engine)
    olivia, pat = world.children["olivia"], world.practitioners["pat"]
    with unit_of_work(engine) as s:
        make_client(s, "burst-system", secret="burst-secret")
        make_grant(s, "burst-system", kind=SubjectKind.CLIENT, role=Role.SYSTEM, scopes=("directory.search",))
    settings = web_settings(ISSUER, database_url=_url(engine)).model_copy(
        update={"database_lock_timeout_seconds": LOCK_SECONDS, "indexer_interval_seconds": 0}
    )
    app = create_app(settings)
    with page_client(app, ISSUER) as browser:
        sign_in(browser, world, "pat")
        token = csrf_of(browser.get("/search").text)  # a search says why (the purpose of use)
        found = browser.post(
            "/search",
            data={
                "csrf_token": token,
                "purpose": "considering-caf",
                "given": "Olivia",
                **{"dob-day": "27", "dob-month": "3", "dob-year": "2017"},  # a search that runs
            },
        )
        assert found.status_code == 200, found.text
        assert browser.get(f"/children/{olivia}").status_code == 200
        token = token_for(
            app.state.auth,
            "pat",
            scopes=("directory.search", "directory.write", "user/*.cruds"),
            practitioner_id=pat,
        )
        with _signal_left_open(engine, olivia, world.practitioners["hana"]):
            started = time.monotonic()
            r = browser.post(f"/api/v1/children/{olivia}/caf", json=_signal_body(pat), headers=bearer(token))
            _busy(r, started)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["detail"] == "Nothing was changed. Try again in a moment."

            started = time.monotonic()
            r = browser.get(f"/fhir/Patient/{olivia}", headers=bearer(token))
            _busy(r, started)
            assert r.json()["resourceType"] == "OperationOutcome"
            assert r.json()["issue"][0]["code"] == "transient"

            started = time.monotonic()
            r = browser.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=("burst-system", "burst-secret"),
            )
            _busy(r, started)
            assert r.json()["error"] == "temporarily_unavailable"

            started = time.monotonic()
            r = browser.get(f"/children/{olivia}")
            _busy(r, started)
            assert r.headers["content-type"].startswith("text/html")
            assert "Sorry, the service is busy" in r.text
        # Nothing was half-written; once the lock is free the same request goes through.
        assert count(engine, "assessment") == 0
        r = browser.post(f"/api/v1/children/{olivia}/caf", json=_signal_body(pat), headers=bearer(token))
        assert r.status_code == 201, r.text
    app.state.engine.dispose()


def test_the_event_loop_never_waits_for_a_connection_the_request_threads_hold(engine: Engine) -> None:
    """With every pooled connection taken, the event loop keeps serving; a request thread that
    cannot get one in time is answered 503 (before: the loop itself blocked in the checkout)."""
    with unit_of_work(engine) as s:
        child = make_child(s)
        who = make_practitioner(s).id
    settings = Settings(
        environment="development",
        database_url=_url(engine),
        request_threads=1,
        database_lock_timeout_seconds=LOCK_SECONDS,
        indexer_interval_seconds=0,
        search_resident=False,
    )
    app = create_app(settings)
    held: list[Any] = []
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.portal is not None
        pool = app.state.engine.pool
        assert pool.size() == pool_sizes(1)[0] == 8  # (1 thread, 1 in the search lane, 2 upstream; 4 kept)
        while pool.checkedout() < sum(pool_sizes(1)):  # every connection the pool may open
            held.append(app.state.engine.raw_connection())

        async def probe_while(request: tuple[str, str, dict[str, Any]]) -> tuple[httpx.Response, float]:
            """The request, and the longest the loop took meanwhile to answer /readyz (async)."""
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=ISSUER, timeout=60) as ac:
                task = asyncio.ensure_future(ac.request(request[0], request[1], **request[2]))
                slowest = 0.0
                while not task.done():
                    started = time.monotonic()
                    assert (await ac.get("/readyz")).status_code in (200, 503)
                    slowest = max(slowest, time.monotonic() - started)
                    await asyncio.sleep(0.05)
                return await task, slowest

        try:
            query = {"given": "Olivia", "family": "Smith", "birth_date": "2017-03-27"}
            search = ("POST", "/api/v1/children/search", {"json": query, "headers": _dev(who)})
            answer, slowest = client.portal.call(lambda: asyncio.wait_for(probe_while(search), 20))
            assert answer.status_code in (200, 503), answer.text  # (its audit needs the pool too)
            assert slowest < 0.5, f"the event loop stalled for {slowest:.2f} s during a search"
            card = ("GET", f"/api/v1/children/{child}", {"headers": _dev(who)})
            started = time.monotonic()
            answer, slowest = client.portal.call(lambda: asyncio.wait_for(probe_while(card), 20))
            _busy(answer, started)
            assert slowest < 0.5, f"the event loop stalled for {slowest:.2f} s during a card read"
        finally:
            for raw in held:
                raw.close()
        assert client.get(f"/api/v1/children/{child}", headers=_dev(who)).status_code == 200
    app.state.engine.dispose()


def test_serving_connections_carry_the_lock_statement_and_idle_timeouts(engine: Engine) -> None:
    limits = Limits(lock_timeout=1.5, statement_timeout=20, idle_in_transaction_timeout=25)
    served = make_engine(_url(engine), limits=limits)
    names = ("lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout")

    def shown() -> list[Any]:
        with reader(served) as conn:
            if conn.dialect.name == "sqlite":
                return [conn.exec_driver_sql("PRAGMA busy_timeout").scalar()]
            return [conn.exec_driver_sql(f"SHOW {name}").scalar() for name in names]

    async def on_the_loop() -> list[Any]:
        return shown()

    try:
        if served.dialect.name == "sqlite":
            assert shown() == asyncio.run(on_the_loop()) == [1500]
        else:
            assert shown() == ["1500ms", "20s", "25s"]
            # A read on the event loop holds up every request: it stops after the lock timeout.
            assert asyncio.run(on_the_loop()) == ["1500ms", "1500ms", "25s"]
    finally:
        served.dispose()


def test_sqlite_writers_take_turns_in_the_order_they_came() -> None:
    turns = WriteTurns(timeout=2)
    order: list[str] = []
    turns.take("first")
    waiting = []
    for name in ("second", "third", "fourth"):
        ready = threading.Event()

        def wait(name: str = name, ready: threading.Event = ready) -> None:
            ready.set()
            turns.take(name)
            order.append(name)
            turns.give_back(name)

        thread = threading.Thread(target=wait)
        thread.start()
        ready.wait()
        time.sleep(0.05)  # (in the queue before the next comes)
        waiting.append(thread)
    turns.give_back("first")
    for thread in waiting:
        thread.join(timeout=5)
    assert order == ["second", "third", "fourth"]
    turns.take("holder")
    started = time.monotonic()
    with pytest.raises(sa.exc.OperationalError, match="database is locked"):
        WriteTurns.take(turns, "late")
    assert 1.5 < time.monotonic() - started < 4


def _users_of_the_unit_of_work(route: APIRoute) -> list[Any]:
    """The calls (the endpoint, dependencies) that are handed the request's session."""
    users, stack = [], [route.dependant]
    while stack:
        dependant = stack.pop()
        if any(d.call is get_session for d in dependant.dependencies):
            users.append(dependant.call)
        stack.extend(dependant.dependencies)
    return users


def test_every_route_with_a_unit_of_work_ends_it_in_its_own_thread() -> None:
    app = create_app(Settings(environment="development", database_url="sqlite://"))
    routes = [r.original_route for r in all_routes(app)]
    with_unit = [r for r in routes if isinstance(r, APIRoute) and _users_of_the_unit_of_work(r)]
    assert len(with_unit) > 50  # the app API's, the grants API's and FHIR's
    assert [r.path for r in with_unit if not isinstance(r, UnitOfWorkRoute)] == []
    # A sync dependency runs in a thread of its own: one that queried would begin the transaction
    # there, and hold its locks while waiting for the endpoint's thread.
    sync_dependencies = {
        getattr(call, "__name__", repr(call))
        for r in with_unit
        for call in _users_of_the_unit_of_work(r)
        if call is not r.dependant.call and not inspect.iscoroutinefunction(call)
    }
    assert sync_dependencies == set()
