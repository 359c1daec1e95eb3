"""Step up to children's social care and step down to early help (issue #18 part 5) over /api/v1, on
SQLite and PostgreSQL; the front door's webhook is a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from childindex import mail
from childindex.app import create_app
from childindex.panel_api import front_door_of
from childindex.settings import Settings
from directory.models import Child, ChildIdentifier, ChildName, FrontDoorNotice, utcnow
from directory.permissions import LOCALITY_TEAM_ASK
from interop import front_door, picture
from tests.conftest import count
from tests.directory.test_api import new_child, who
from tests.directory.test_panel import World, actions, completed_caf
from tests.fixtures.builders import actor
from tests.notices.test_email_smtp import SmtpServer

SECRET = "front-door-secret"


@dataclass
class FrontDoorServer:
    """A social care front door on loopback: records what it receives; answers `status`."""

    url: str = ""
    status: int = 200
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def door() -> Iterator[FrontDoorServer]:
    state = FrontDoorServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server name)
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append(({k.lower(): v for k, v in self.headers.items()}, raw))
            self.send_response(state.status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/referrals"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def door_settings(door: FrontDoorServer) -> Settings:
    return Settings(
        environment="development",
        database_url="sqlite://",
        indexer_interval_seconds=0,
        front_door_webhook=door.url,
        front_door_secret=SECRET,
        front_door_email="front.door@example.gov.uk",
        front_door_worker=False,  # (the tests deliver themselves; one test runs the worker)
        smtp_host="127.0.0.1",  # an email channel needs an SMTP server to send it (none listens here)
        people_notify_enabled=False,
    )


@pytest.fixture
def api(engine: Engine, door_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(door_settings, engine=engine), raise_server_exceptions=False) as c:
        yield c


def core_group_coded(engine: Engine, child: str, tac: str) -> bool:
    """Whether the child's CareTeam over FHIR carries the core-group category."""
    with Session(engine) as session:
        pic = picture.for_child(
            session,
            actor=actor(),
            child_id=uuid.UUID(child),
            now=utcnow(),
            fallback=LOCALITY_TEAM_ASK,
            audited=False,
        )
        team = pic.get("CareTeam", tac)
    assert team is not None
    codes = [c["code"] for cat in team["category"] for c in cat["coding"]]
    return "core-group" in codes


def with_tac(api: TestClient, engine: Engine) -> tuple[World, str]:
    w = completed_caf(api, engine)
    tac = api.post(
        f"/api/v1/cafs/{w.caf}/tac",
        headers=w.person("sam"),
        json={
            "add_members": [{"practitioner_id": w.ids[p], "role": "member"} for p in ("sam", "yusuf", "nora")]
        },
    )
    assert tac.status_code == 200, tac.text
    return w, tac.json()["id"]


def test_step_up_queues_a_signed_referral_and_makes_the_tac_the_core_group(
    api: TestClient, engine: Engine, door: FrontDoorServer, door_settings: Settings
) -> None:
    w, tac = with_tac(api, engine)
    stranger = api.post(f"/api/v1/cafs/{w.caf}/step-up", headers=w.person("stranger"), json={})
    assert stranger.status_code == 403 and count(engine, "step_up") == 0
    up = api.post(f"/api/v1/cafs/{w.caf}/step-up", headers=w.person("sam"), json={})
    assert up.status_code == 201, up.text
    assert up.json()["core_group"] is True and up.json()["tac_id"] == tac
    assert sorted(up.json()["front_door"]) == ["email", "webhook"]
    again = api.post(f"/api/v1/cafs/{w.caf}/step-up", headers=w.person("yusuf"), json={"reason": "worse"})
    assert again.status_code == 409 and "already stepped up" in again.json()["detail"]
    assert count(engine, "step_up") == 1 and count(engine, "front_door_notice") == 2
    (event,) = [d for a, d in actions(engine, "caf.step-up")]
    assert event["tac_id"] == uuid.UUID(tac).hex and event["caf_id"] == uuid.UUID(w.caf).hex

    # the worker delivers it, signed; a second round sends nothing more
    with httpx.Client(timeout=5) as client:
        done = front_door.deliver_due(engine, client, front_door_of(door_settings))
        assert done.delivered == 1
        assert front_door.deliver_due(engine, client, front_door_of(door_settings)).delivered == 0
    ((headers, raw),) = door.received
    mac = hmac.new(SECRET.encode(), headers["x-childindex-timestamp"].encode() + b"." + raw, hashlib.sha256)
    assert headers["x-childindex-signature"] == f"sha256={mac.hexdigest()}"
    body = json.loads(raw)
    assert body["child_id"] == w.child and body["caf_id"] == uuid.UUID(w.caf).hex and body["nhs_number"]
    assert body["referrer"] == {"name": "Sam Senco", "organisation": "Cowley School"}
    assert body["link"].endswith(f"/children/{w.child}")
    assert "Amelia" not in raw.decode() and "Khan" not in raw.decode() and "Temple" not in raw.decode()
    # the email notice waits for the SMTP sender; its text carries no child details
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT channel, status FROM front_door_notice")).all()
    rows = {str(channel): str(status) for channel, status in found}
    assert rows == {"webhook": "delivered", "email": "queued"}
    with Session(engine) as session:
        email = session.exec(select(FrontDoorNotice).where(FrontDoorNotice.channel == "email")).one()
        subject, text = front_door.email_text(session, email, "https://ci.example")
    assert "Sam Senco (Cowley School)" in text and f"https://ci.example/children/{w.child}" in text
    assert body["nhs_number"] not in text and "Amelia" not in text + subject and "Khan" not in text + subject


def test_a_failed_delivery_is_retried_and_then_delivered(
    api: TestClient, engine: Engine, door: FrontDoorServer, door_settings: Settings
) -> None:
    w, _ = with_tac(api, engine)
    assert api.post(f"/api/v1/cafs/{w.caf}/step-up", headers=w.person("sam"), json={}).status_code == 201
    door.status = 503
    fd = front_door_of(door_settings)
    with httpx.Client(timeout=5) as client:
        assert front_door.deliver_due(engine, client, fd, backoff_seconds=0).retried == 1
        door.status = 200
        assert front_door.deliver_due(engine, client, fd, backoff_seconds=0).delivered == 1
    assert len(door.received) == 2
    with engine.connect() as conn:
        attempts = conn.execute(
            sa.text("SELECT attempts FROM front_door_notice WHERE channel = 'webhook'")
        ).scalar()
    assert attempts == 2


def take_up(api: TestClient, w: World, who_: str) -> None:
    """The named practitioner accepts the Lead Professional hand-over addressed to them."""
    mine = [r for r in api.get("/api/v1/requests", headers=w.person(who_)).json() if r["mine_to_answer"]]
    assert [r["kind"] for r in mine] == ["hand-over"], mine
    done = api.post(f"/api/v1/requests/{mine[0]['id']}/accept", headers=w.person(who_))
    assert done.status_code == 200, done.text


def test_the_card_shows_the_core_group_until_stepped_down(api: TestClient, engine: Engine) -> None:
    w, tac = with_tac(api, engine)
    assert api.post(f"/api/v1/cafs/{w.caf}/step-up", headers=w.person("sam"), json={}).status_code == 201
    card = api.get(f"/api/v1/children/{w.child}", headers=who(subject="reader")).json()
    assert card["tac"]["core_group"] is True
    assert core_group_coded(engine, w.child, tac) is True
    # a social worker who is not on the case is refused (nothing changes); one in the core group steps down
    add = api.post(
        f"/api/v1/cafs/{w.caf}/tac",
        headers=w.person("sam"),
        json={"add_members": [{"practitioner_id": w.ids["sw"], "role": "social worker"}]},
    )
    assert add.status_code == 200
    body = {"lead_practitioner_id": w.ids["yusuf"], "reason": "needs met below threshold"}
    practitioner = api.post(f"/api/v1/children/{w.child}/step-down", headers=w.person("nora"), json=body)
    assert practitioner.status_code == 403
    outsider = api.post(
        f"/api/v1/children/{w.child}/step-down",
        headers=w.person("stranger", role="child_protection"),
        json=body,
    )
    assert outsider.status_code == 403
    assert api.get(f"/api/v1/children/{w.child}", headers=who(subject="reader")).json()["tac"]["core_group"]
    down = api.post(
        f"/api/v1/children/{w.child}/step-down", headers=w.person("sw", role="child_protection"), json=body
    )
    assert down.status_code == 200, down.text
    assert down.json()["caf_id"] == w.caf and down.json()["came_from"] is None
    card = api.get(f"/api/v1/children/{w.child}", headers=who(subject="reader")).json()
    assert card["tac"]["core_group"] is False
    assert core_group_coded(engine, w.child, tac) is False
    # the Lead Professional is handed over by acceptance, as every hand-over is
    assert card["lead_professional"]["contact"]["name"] != "Yusuf Youth"
    take_up(api, w, "yusuf")
    card = api.get(f"/api/v1/children/{w.child}", headers=who(subject="reader")).json()
    assert card["lead_professional"]["contact"]["name"] == "Yusuf Youth"
    assert [d["how"] for _, d in actions(engine, "caf.step-down")] == ["reverted"]
    # stepped down, it can step up again
    assert api.post(f"/api/v1/cafs/{w.caf}/step-up", headers=w.person("yusuf"), json={}).status_code == 201


def test_a_social_worker_opens_a_caf_from_a_step_down(api: TestClient, engine: Engine) -> None:
    w, _ = with_tac(api, engine)
    child = new_child(api)
    sw = w.person("sw", role="child_protection")
    consent = api.post(
        f"/api/v1/children/{child}/consents",
        headers=sw,
        json={"scope": "caf", "given_by_kind": "parent_carer", "given_by_name": "Sara Khan"},
    ).json()["id"]
    body: dict[str, object] = {
        "lead_practitioner_id": w.ids["yusuf"],
        "members": [{"practitioner_id": w.ids["nora"], "role": "school nurse"}],
        "reason": "closed to social care",
    }
    no_consent = api.post(f"/api/v1/children/{child}/step-down", headers=sw, json=body)
    assert no_consent.status_code == 422 and count(engine, "assessment") == 1
    down = api.post(f"/api/v1/children/{child}/step-down", headers=sw, json=body | {"consent_id": consent})
    assert down.status_code == 200, down.text
    assert down.json()["came_from"] == "step_down" and down.json()["status"] == "in_progress"
    card = api.get(f"/api/v1/children/{child}", headers=who(subject="reader")).json()
    assert card["lead_professional"]["contact"]["name"] == "Sofia Social"  # until Yusuf accepts
    take_up(api, w, "yusuf")
    card = api.get(f"/api/v1/children/{child}", headers=who(subject="reader")).json()
    assert card["lead_professional"]["contact"]["name"] == "Yusuf Youth"
    assert {m["contact"]["name"] for m in card["tac"]["members"]} >= {"Yusuf Youth", "Nora Nurse"}
    assert card["caf"]["came_from"] == "step_down"
    # never a second open CAF: a step-down for a child whose CAF is open and not stepped up is refused
    again = api.post(f"/api/v1/children/{child}/step-down", headers=sw, json=body | {"consent_id": consent})
    assert again.status_code == 409 and again.json()["type"].endswith("caf-already-open")
    assert count(engine, "assessment") == 2


def test_step_up_rules(api: TestClient, engine: Engine, client: TestClient) -> None:
    w, _ = with_tac(api, engine)
    # no front door configured (the plain client's settings): refused, nothing queued
    none = client.post(f"/api/v1/cafs/{w.caf}/step-up", headers=w.person("sam"), json={})
    assert none.status_code == 422 and "front door" in none.json()["detail"]
    assert count(engine, "step_up") == 0 and count(engine, "front_door_notice") == 0
    closed = api.post(f"/api/v1/cafs/{w.caf}/close", headers=w.person("sam"), json={"reason": "done"})
    assert closed.status_code == 200
    r = api.post(f"/api/v1/cafs/{w.caf}/step-up", headers=w.person("sam"), json={})
    assert r.status_code == 409 and "open CAF" in r.json()["detail"]
    assert count(engine, "step_up") == 0


def test_twenty_step_ups_at_once_make_one(api: TestClient, engine: Engine) -> None:
    w, _ = with_tac(api, engine)

    def up(_: int) -> int:
        return int(api.post(f"/api/v1/cafs/{w.caf}/step-up", headers=w.person("sam"), json={}).status_code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(up, range(20)))
    assert codes.count(201) == 1 and set(codes) == {201, 409}
    assert count(engine, "step_up") == 1 and count(engine, "front_door_notice") == 2
    assert len(actions(engine, "caf.step-up")) == 1


def test_nothing_leaves_for_a_record_sealed_since_the_step_up(
    api: TestClient, engine: Engine, door: FrontDoorServer, door_settings: Settings
) -> None:
    w, _ = with_tac(api, engine)
    assert api.post(f"/api/v1/cafs/{w.caf}/step-up", headers=w.person("sam"), json={}).status_code == 201
    with Session(engine) as session:  # (as an adoption seals it: directory/service/adoption.py)
        child = session.get(Child, uuid.UUID(w.child))
        assert child is not None
        child.status = "sealed"
        session.add(child)
        session.commit()
    with httpx.Client(timeout=5) as client:
        assert front_door.deliver_due(engine, client, front_door_of(door_settings)).dead == 1
    assert door.received == []


def test_the_app_runs_the_worker_that_delivers_a_step_up(
    engine: Engine, door: FrontDoorServer, door_settings: Settings
) -> None:
    settings = door_settings.model_copy(update={"front_door_worker": True, "notify_interval_seconds": 0.1})
    with TestClient(create_app(settings, engine=engine), raise_server_exceptions=False) as served:
        w, _ = with_tac(served, engine)
        assert (
            served.post(f"/api/v1/cafs/{w.caf}/step-up", headers=w.person("sam"), json={}).status_code == 201
        )
        deadline = time.monotonic() + 10
        while not door.received and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(door.received) == 1 and json.loads(door.received[0][1])["caf_id"] == uuid.UUID(w.caf).hex


def test_a_step_up_is_emailed_to_the_front_door_without_child_details(
    api: TestClient, engine: Engine, tmp_path: Path
) -> None:
    """Through a real SMTP server (aiosmtpd on loopback): the referrer, ids and a link, never the
    child's name or NHS number; delivered once, then never again."""
    server = SmtpServer(tmp_path / "maildir")
    server.start()
    try:
        w, _ = with_tac(api, engine)
        assert api.post(f"/api/v1/cafs/{w.caf}/step-up", headers=w.person("sam"), json={}).status_code == 201
        smtp = mail.Smtp(
            host="127.0.0.1", port=server.port, tls="none", sender="index@council.test", timeout=3
        )
        done = mail.send_front_door_emails(engine, smtp, to="front.door@example.gov.uk")
        assert (done.sent, done.retried, done.dead) == (1, 0, 0)
        (got,) = server.messages()
        assert got["To"] == "front.door@example.gov.uk" and "stepped up" in got["Subject"]
        raw = got.get_payload(decode=True)
        assert isinstance(raw, bytes)
        body = raw.decode()
        assert "Sam" in body and uuid.UUID(w.caf).hex in body
        with Session(engine) as s:
            child_id = uuid.UUID(w.child)
            numbers = [
                i.value for i in s.exec(select(ChildIdentifier).where(ChildIdentifier.child_id == child_id))
            ]
            names = [n.family for n in s.exec(select(ChildName).where(ChildName.child_id == child_id))]
        assert numbers and names and not any(x in body for x in [*numbers, *names])
        assert mail.send_front_door_emails(engine, smtp, to="front.door@example.gov.uk").sent == 0
    finally:
        server.stop()


def test_without_an_smtp_server_there_is_no_email_channel(engine: Engine, door_settings: Settings) -> None:
    """A front door email with no SMTP server to send it would never leave: it is not a channel then."""
    settings = door_settings.model_copy(update={"smtp_host": None})
    assert front_door_of(settings).channels == ("webhook",)
    assert front_door_of(settings.model_copy(update={"front_door_webhook": None})).channels == ()
