"""The request pages on SQLite and PostgreSQL (no browser): only the practitioner a hand-over names
answers it on the page, and a refusal changes nothing; the card offers "Ask to join" to someone who
is neither a holder nor a member, also on a shielded record, without naming its holder."""

from __future__ import annotations

import re
import uuid

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from directory import service
from directory.db import unit_of_work
from directory.models import CafSignal, CafStart, ConsentCreate, HandOver, utcnow
from tests.fixtures.builders import actor
from tests.web.test_pages import search
from tests.web.world import World, csrf_of, page_client, sign_in


def _caf(engine: Engine, world: World, child: str, holder: str = "pat") -> uuid.UUID:
    who = actor(subject=holder, practitioner_id=world.practitioners[holder])
    with unit_of_work(engine) as s:
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
            data=ConsentCreate(scope="caf", given_by_kind="parent_carer", given_by_name="A parent"),
        )
        service.start_caf(s, actor=who, caf_id=caf.id, data=CafStart(consent_id=consent.id), now=utcnow())
        return caf.id


def _requests(engine: Engine) -> list[tuple[str, ...]]:
    with engine.connect() as conn:
        return sorted(tuple(map(str, r)) for r in conn.execute(sa.text("SELECT * FROM caf_request")))


def test_only_the_named_practitioner_answers_on_the_page(
    browser: TestClient, world: World, web_app: FastAPI, engine: Engine
) -> None:
    caf = _caf(engine, world, "olivia")
    with unit_of_work(engine) as s:
        asked = service.request_hand_over(
            s,
            actor=actor(subject="pat", practitioner_id=world.practitioners["pat"]),
            caf_id=caf,
            data=HandOver(to_practitioner_id=world.practitioners["dee"], reason="the young person asked"),
            now=utcnow(),
        ).request
        assert asked is not None
    sign_in(browser, world, "hana")
    mine = browser.get("/requests")
    assert "Nothing is waiting for your answer" in mine.text and str(asked.id) not in mine.text
    before = _requests(engine)
    for verb in ("accept", "decline"):
        r = browser.post(f"/requests/{asked.id}/{verb}", data={"csrf_token": csrf_of(mine.text)})
        assert r.status_code == 403 and "addressed to someone else" in r.text
    forged = browser.post(f"/requests/{asked.id}/accept", data={"csrf_token": "forged"})
    assert forged.status_code == 400
    assert _requests(engine) == before
    with page_client(web_app, "http://testserver") as dee:
        sign_in(dee, world, "dee")
        page = dee.get("/requests")
        assert "the young person asked" in page.text and f'action="/requests/{asked.id}/accept"' in page.text
        done = dee.post(f"/requests/{asked.id}/accept", data={"csrf_token": csrf_of(page.text)})
        assert "You are now the Lead Professional" in done.text


def test_ask_to_join_from_a_shielded_card_names_no_holder(
    browser: TestClient, world: World, web_app: FastAPI, engine: Engine
) -> None:
    caf = _caf(engine, world, "noah", holder="dee")  # Noah's record is shielded from Pat
    sign_in(browser, world, "pat")
    search(browser, given="Noah", family="Jones", **{"dob-day": "2", "dob-month": "5", "dob-year": "2016"})
    card = browser.get(f"/children/{world.children['noah']}")
    assert "This record is shielded" in card.text and "Dee Walsh" not in card.text
    assert "Ask to join the Team Around the Child" in card.text
    assert re.search(rf'name="caf_id" value="{caf}"', card.text)
    asked = browser.post(
        f"/children/{world.children['noah']}/tac-join",
        data={"csrf_token": csrf_of(card.text), "caf_id": str(caf), "role": "SENCO"},
    )
    assert asked.status_code == 200 and "You asked to join" in asked.text and "Dee Walsh" not in asked.text
    assert "its holder has not answered yet" in asked.text
    mine = browser.get("/requests")
    assert "Ask to join a Team Around the Child as SENCO" in mine.text and "Dee Walsh" not in mine.text
    twice = browser.post(
        f"/children/{world.children['noah']}/tac-join",
        data={"csrf_token": csrf_of(mine.text), "caf_id": str(caf), "role": "SENCO"},
    )
    assert twice.status_code == 409 and "already asked" in twice.text
    with page_client(web_app, "http://testserver") as dee:
        sign_in(dee, world, "dee")
        page = dee.get("/requests")
        assert "Asks to join the Team Around the Child" in page.text and "Pat Okafor" in page.text
