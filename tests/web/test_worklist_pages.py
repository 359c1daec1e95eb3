"""The locality delivery team's worklist on the pages and the app API (directory/service/worklist.py)."""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from directory import service
from directory.models import CafSignal, CafStart, ConsentCreate, utcnow
from tests.fixtures.auth_builders import bearer, token_for
from tests.fixtures.builders import actor
from tests.web.world import World, sign_in


def started_caf(engine: Engine, world: World, child: str = "olivia", by: str = "pat") -> uuid.UUID:
    """A CAF signalled and started by a world practitioner (its Lead Professional not yet agreed)."""
    who = actor(practitioner_id=world.practitioners[by], subject=by)
    with Session(engine, expire_on_commit=False) as s:
        caf = service.signal_caf(
            s,
            actor=who,
            child_id=world.children[child],
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=utcnow(),
        )
        consent = service.record_consent(
            s,
            actor=who,
            child_id=world.children[child],
            data=ConsentCreate(scope="caf", given_by_kind="parent_carer", given_by_name="Jane Smith"),
        )
        service.start_caf(s, actor=who, caf_id=caf.id, data=CafStart(consent_id=consent.id), now=utcnow())
        s.commit()
        return caf.id


def test_the_team_lands_on_its_worklist_and_sees_what_needs_acting_on(
    browser: TestClient, world: World, engine: Engine
) -> None:
    started_caf(engine, world)
    sign_in(browser, world, "lena")
    home = browser.get("/")
    assert "Worklist" in home.text
    chooser = browser.get("/worklist")
    assert chooser.status_code == 200 and 'href="/worklist/CITY"' in chooser.text
    page = browser.get("/worklist/CITY")
    assert page.status_code == 200, page.text
    assert "Open CAFs without an agreed Lead Professional" in page.text
    assert "Olivia Smith" in page.text and "Pat Okafor" in page.text and "CAF in progress" in page.text
    assert "As at" in page.text
    north = browser.get("/worklist/NORTH")
    assert north.status_code == 200 and "Olivia Smith" not in north.text
    assert browser.get("/worklist/NOWHERE").status_code == 404


def test_others_may_not_open_the_worklist(browser: TestClient, world: World) -> None:
    sign_in(browser, world, "pat")
    assert browser.get("/worklist").status_code == 403
    assert browser.get("/worklist/CITY").status_code == 403
    assert "/worklist" not in browser.get("/search").text


def test_the_api_answers_the_team_and_refuses_others(web_app: FastAPI, world: World, engine: Engine) -> None:
    caf = started_caf(engine, world)
    state = web_app.state.auth
    with TestClient(web_app, raise_server_exceptions=False) as api:
        lena = bearer(token_for(state, "lena", scopes=("directory.search",)), purpose=None)
        places = api.get("/api/v1/worklists", headers=lena)
        assert places.status_code == 200 and {p["code"] for p in places.json()} == {"CITY", "NORTH"}
        r = api.get("/api/v1/localities/CITY/worklist", headers=lena)
        assert r.status_code == 200, r.text
        items = next(s["items"] for s in r.json()["sections"] if s["code"] == "no-agreed-lead")
        assert [i["caf_id"] for i in items] == [str(caf)]
        pat = bearer(token_for(state, "pat", scopes=("directory.search",)), purpose=None)
        refused = api.get("/api/v1/localities/CITY/worklist", headers=pat)
        assert refused.status_code == 403
