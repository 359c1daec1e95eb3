"""Notifications: queued from the audit log (never in a request), delivered signed, retried, dead-lettered."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import respx
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from directory import service
from directory.db import unit_of_work
from directory.models import CafClose, HandOver, Role, utcnow
from interop import notify
from tests.conftest import count
from tests.fixtures.builders import actor
from tests.interop.conftest import World, system_headers

HOOK = "https://trust.example.nhs.uk/hooks/childindex"
FHIR_HOOK = "https://ehr.example.nhs.uk/fhir/subscription-hook"


def _subscribe(engine: Engine, **kw: object) -> None:
    with unit_of_work(engine) as s:
        notify.subscribe(s, owner="trust-hv", **kw)  # type: ignore[arg-type]


def test_caf_and_lead_professional_events_are_delivered_signed(engine: Engine, world: World) -> None:
    _subscribe(
        engine,
        endpoint=HOOK,
        events=["caf-signalled", "caf-closed", "lead-professional-changed"],
        secret="hook-secret",
    )
    admin = actor(Role.DIRECTORY_ADMIN)
    with unit_of_work(engine) as s:
        service.hand_over_lead(
            s,
            actor=admin,
            caf_id=world.caf,
            data=HandOver(to_practitioner_id=world.hv, reason="TAC appointed"),
            now=utcnow(),
        )
        service.close_caf(s, actor=admin, caf_id=world.caf, data=CafClose(reason="needs met"), now=utcnow())
    assert count(engine, "notification") == 0  # nothing is queued, let alone sent, inside the change
    assert notify.fan_out(engine) == 3  # the signal (from the fixture), the hand-over, the close
    assert notify.fan_out(engine) == 0  # idempotent
    with respx.mock() as mock:
        route = mock.post(HOOK).respond(204)
        with httpx.Client() as client:
            result = notify.deliver_due(engine, client)
    assert (result.delivered, result.retried, result.dead) == (3, 0, 0)
    events = []
    for call in route.calls:
        req = call.request
        stamp = req.headers[notify.TIMESTAMP_HEADER]
        assert req.headers[notify.SIGNATURE_HEADER] == notify.sign("hook-secret", stamp, req.content)
        payload = json.loads(req.content)
        assert payload["patient"] == f"Patient/{world.child}"
        assert "Smith" not in req.content.decode()  # no names or other child data
        events.append(payload["event"])
    assert events == ["caf-signalled", "lead-professional-changed", "caf-closed"]


def test_a_shielded_record_viewed_over_fhir_is_notified_as_a_rest_hook(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    _subscribe(engine, endpoint=FHIR_HOOK, events=["shielded-record-viewed"], kind="rest-hook")
    h = system_headers(state, engine)
    assert api.get(f"/fhir/Patient/{world.child}", headers=h).status_code == 200  # not shielded: no event
    assert api.get(f"/fhir/Patient/{world.shielded_child}", headers=h).status_code == 200
    assert notify.fan_out(engine) == 1
    with respx.mock() as mock:
        route = mock.post(FHIR_HOOK).respond(200)
        with httpx.Client() as client:
            notify.deliver_due(engine, client, base_url="http://testserver/fhir")
    req = route.calls[0].request
    assert req.headers["content-type"] == "application/fhir+json"
    bundle = json.loads(req.content)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "history"
    assert bundle["entry"][0]["fullUrl"] == f"http://testserver/fhir/Patient/{world.shielded_child}"


def test_failures_are_retried_with_back_off_then_dead_lettered(engine: Engine, world: World) -> None:
    _subscribe(engine, endpoint=HOOK, events=["caf-signalled"], secret="s")
    notify.fan_out(engine)
    now = utcnow()
    with respx.mock() as mock:
        route = mock.post(HOOK).mock(
            side_effect=[httpx.ConnectTimeout("down"), httpx.Response(500), httpx.Response(503)]
        )
        with httpx.Client() as client:
            first = notify.deliver_due(engine, client, now=now, max_attempts=3, backoff_seconds=10)
            early = notify.deliver_due(engine, client, now=now + timedelta(seconds=5), max_attempts=3)
            second = notify.deliver_due(
                engine, client, now=now + timedelta(seconds=11), max_attempts=3, backoff_seconds=10
            )
            third = notify.deliver_due(engine, client, now=now + timedelta(seconds=60), max_attempts=3)
    assert (first.retried, early.retried + early.delivered, second.retried, third.dead) == (1, 0, 1, 1)
    assert route.call_count == 3
    dead = notify.dead_letters(engine)
    assert len(dead) == 1 and dead[0].last_error == "HTTP 503" and dead[0].attempts == 3
    notify.replay(engine, dead[0].id or 0)
    with respx.mock() as mock:
        mock.post(HOOK).respond(200)
        with httpx.Client() as client:
            assert notify.deliver_due(engine, client).delivered == 1
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM notification")).scalar_one() == "delivered"


def test_the_worker_runs_in_the_background(engine: Engine, world: World) -> None:
    _subscribe(engine, endpoint=HOOK, events=["caf-signalled"])
    worker = notify.NotificationWorker(engine, interval_seconds=0.05)
    with respx.mock() as mock:
        route = mock.post(HOOK).respond(200)
        worker.start()
        try:
            import time

            for _ in range(100):
                if route.call_count:
                    break
                time.sleep(0.05)
        finally:
            worker.stop()
    assert route.call_count == 1
