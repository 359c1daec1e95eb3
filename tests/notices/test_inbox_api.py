"""GET /api/v1/inbox and its neighbours in production mode with real tokens: only the recipient sees
or marks a notice (anyone else: 404), the unread filter, newest first, the email-or-inbox choice, and
/api/v1/notices kept as it was. And the inbox pages, as a signed-in practitioner sees them."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from auth.models import SubjectKind
from childindex import people_notify
from directory.db import unit_of_work
from directory.models import Role
from tests.fixtures.auth_builders import bearer, make_grant, token_for
from tests.notices.scene import World, build, open_caf

SCOPES = ("directory.search", "directory.write")


def _headers(state: AuthState, w: World, name: str, role: Role = Role.PRACTITIONER) -> dict[str, str]:
    token = token_for(state, name, scopes=SCOPES, role=role, practitioner_id=getattr(w, name))
    return bearer(token, purpose="direct-care")


def _world(engine: Engine) -> World:
    w = build(engine)
    with unit_of_work(engine) as s:
        make_grant(s, "tess", role=Role.PRACTITIONER)
    open_caf(engine, w)
    people_notify.fan_out(engine, email=False)
    return w


def test_the_inbox_is_the_recipients_own_newest_first(
    api: TestClient, engine: Engine, state: AuthState
) -> None:
    w = _world(engine)
    tess = _headers(state, w, "tess")
    mine = api.get("/api/v1/inbox", headers=tess)
    assert mine.status_code == 200, mine.text
    items = mine.json()
    assert [n["event"] for n in items][-1] == "caf-signalled"  # newest first: signalled is the oldest
    assert {n["event"] for n in items} >= {"caf-signalled", "caf-started"}
    assert all(n["link"] == f"/children/{w.child}" and n["read_at"] is None for n in items)
    first = items[0]["id"]
    assert api.get(f"/api/v1/inbox/{first}", headers=tess).json()["id"] == first
    assert api.post(f"/api/v1/inbox/{first}/read", headers=tess).json()["read_at"] is not None
    unread = api.get("/api/v1/inbox?unread=true", headers=tess).json()
    assert first not in {n["id"] for n in unread} and len(unread) == len(items) - 1
    assert [n["id"] for n in api.get("/api/v1/notices", headers=tess).json()] == [n["id"] for n in items]


def test_nobody_else_reads_or_marks_a_notice(api: TestClient, engine: Engine, state: AuthState) -> None:
    w = _world(engine)
    tess, sam = _headers(state, w, "tess"), _headers(state, w, "sam")
    theirs = api.get("/api/v1/inbox", headers=tess).json()[0]["id"]
    for method, path in (
        ("GET", f"/api/v1/inbox/{theirs}"),
        ("POST", f"/api/v1/inbox/{theirs}/read"),
        ("GET", f"/api/v1/inbox/{uuid.uuid4()}"),
    ):
        answer = api.request(method, path, headers=sam)
        assert answer.status_code == 404 and answer.headers["content-type"].startswith(
            "application/problem+json"
        )
    assert theirs not in {n["id"] for n in api.get("/api/v1/inbox", headers=sam).json()}
    assert api.get(f"/api/v1/inbox/{theirs}", headers=tess).json()["read_at"] is None  # still unread
    with unit_of_work(engine) as s:
        make_grant(
            s, "gp-system", kind=SubjectKind.CLIENT, role=Role.SYSTEM, scopes=SCOPES, organisation="RNU"
        )
    system = bearer(
        token_for(
            state,
            "gp-system",
            kind=SubjectKind.CLIENT,
            scopes=SCOPES,
            role=Role.SYSTEM,
            client_id="gp-system",
        ),
        purpose="direct-care",
    )
    assert api.get("/api/v1/inbox", headers=system).status_code == 403


def test_each_person_chooses_email_or_the_inbox_only(
    api: TestClient, engine: Engine, state: AuthState
) -> None:
    w = _world(engine)
    tess = _headers(state, w, "tess")
    assert api.get("/api/v1/inbox/preference", headers=tess).json() == {"channel": "email"}
    assert api.put("/api/v1/inbox/preference", headers=tess, json={"channel": "inbox"}).json() == {
        "channel": "inbox"
    }
    assert api.get("/api/v1/inbox/preference", headers=tess).json() == {"channel": "inbox"}
    assert api.put("/api/v1/inbox/preference", headers=tess, json={"channel": "sms"}).status_code == 422
    assert api.get("/api/v1/inbox/preference", headers=_headers(state, w, "sam")).json() == {
        "channel": "email"
    }


SYSTEM_SCOPES = ("directory.search", "system/Patient.rs", "system/Flag.rs", "system/CareTeam.rs")


def test_a_health_system_reading_the_record_over_the_api_or_fhir_tells_the_lead(
    api: TestClient, engine: Engine, state: AuthState
) -> None:
    w = _world(engine)
    with unit_of_work(engine) as s:
        make_grant(
            s,
            "gp-system",
            kind=SubjectKind.CLIENT,
            role=Role.SYSTEM,
            scopes=SYSTEM_SCOPES,
            organisation="RNU",
        )
    token = token_for(
        state,
        "gp-system",
        kind=SubjectKind.CLIENT,
        scopes=SYSTEM_SCOPES,
        role=Role.SYSTEM,
        client_id="gp-system",
    )
    system = bearer(token, purpose="direct-care")
    fhir = api.get(f"/fhir/Patient/{w.child}", headers={**system, "Accept": "application/fhir+json"})
    assert fhir.status_code == 200, fhir.text
    people_notify.fan_out(engine, email=False)
    sam = _headers(state, w, "sam")
    looked = [n for n in api.get("/api/v1/inbox", headers=sam).json() if n["event"] == "open-caf-looked-up"]
    assert [n["message"] for n in looked] == ["RNU looked up a child whose CAF you lead."]
    assert api.get(f"/api/v1/children/{w.child}", headers=system).status_code == 200  # the same day again
    people_notify.fan_out(engine, email=False)
    again = [n for n in api.get("/api/v1/inbox", headers=sam).json() if n["event"] == "open-caf-looked-up"]
    assert len(again) == 1  # at most one per system, child and day
    tess = _headers(state, w, "tess")
    assert not [
        n for n in api.get("/api/v1/inbox", headers=tess).json() if n["event"] == "open-caf-looked-up"
    ]
