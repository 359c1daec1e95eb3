"""The panel in the pages (issue #18 part 4): a completed multi-agency CAF sent to panel from the card,
the locality team's queue, the decision form (every error in one round) and the decision shown."""

from __future__ import annotations

import re

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.conftest import count
from tests.web.test_pages import DOB, post_form, search
from tests.web.world import World, csrf_of, page_client, sign_in


def completed_multi_agency_caf(browser: TestClient, world: World) -> str:
    """Pat signals, starts and completes a CAF for Olivia calling for a multi-agency response."""
    olivia = world.children["olivia"]
    sign_in(browser, world, "pat")
    search(browser, given="Olivia", family="Smith", **DOB)
    post_form(browser, f"/children/{olivia}/caf-signal", {"not_safeguarding": "yes"})
    post_form(
        browser,
        f"/children/{olivia}/consent-new",
        {"scope": "caf", "given_by_kind": "parent_carer", "given_by_name": "Jane Smith"},
    )
    start = browser.get(f"/children/{olivia}/caf-start").text
    caf_id = re.search(r'name="caf_id" value="([^"]+)"', start)
    consent_id = re.search(r'name="consent_id" type="radio" value="([^"]+)"', start)
    assert caf_id and consent_id
    post_form(browser, f"/children/{olivia}/caf-start", {"caf_id": caf_id[1], "consent_id": consent_id[1]})
    done = post_form(
        browser, f"/children/{olivia}/caf-complete", {"caf_id": caf_id[1], "outcome": "multi_agency_response"}
    )
    assert "completed" in done.text
    return caf_id[1]


def test_a_caf_sent_to_panel_and_decided_in_the_pages(
    browser: TestClient, world: World, web_app: FastAPI, engine: Engine
) -> None:
    olivia = world.children["olivia"]
    caf = completed_multi_agency_caf(browser, world)
    card = browser.get(f"/children/{olivia}").text
    assert f"/children/{olivia}/panel-send" in card and "Step up to social care" in card
    sent = post_form(browser, f"/children/{olivia}/panel-send", {"caf_id": caf})
    assert sent.status_code == 200 and "sent to the locality" in sent.text
    assert browser.get("/panel").status_code == 403  # a practitioner has no panel queue

    with page_client(web_app, "http://testserver") as lena:
        sign_in(lena, world, "lena")
        queue = lena.get("/panel")
        assert queue.status_code == 200 and "Olivia Smith" in queue.text and f"/panel/{caf}" in queue.text
        # no purpose yet: the decision form asks for one first (it shows the record)
        search(lena, given="Olivia", family="Smith", **DOB)
        form = lena.get(f"/panel/{caf}")
        assert form.status_code == 200 and "Record the decision" in form.text
        token = csrf_of(form.text)
        empty = lena.post(f"/panel/{caf}", data={"csrf_token": token, "role-2": "youth worker"})
        assert empty.status_code == 400
        for words in (
            "Say whether a risk of harm",
            "Say whether level of need 3 or 4",
            "Say whether a Team Around the Child",
            "Choose the level of need",
            "Choose suggested member 2",
        ):
            assert words in empty.text, words
        assert count(engine, "panel_suggestion") == 0
        decision = {
            "csrf_token": token,
            "risk_of_harm": "no",
            "need_level_3_4_screened": "yes",
            "tac_needed": "yes",
            "level_benchmark": "3",
            "practitioner_support": "supervision",
            "member-1": str(world.practitioners["hana"]),
            "role-1": "health visitor",
            "member-2": str(world.practitioners["dee"]),
            "role-2": "youth worker",
        }
        risky = lena.post(f"/panel/{caf}", data={**decision, "risk_of_harm": "yes"})
        assert risky.status_code == 400 and "safeguarding procedures" in risky.text
        done = lena.post(f"/panel/{caf}", data=decision)
        assert done.status_code == 200, done.text
        assert "decision is recorded" in done.text
        assert "Hana Begum" in done.text and "Dee Walsh" in done.text and "youth worker" in done.text
        again = lena.post(f"/panel/{caf}", data=decision)
        assert again.status_code == 409 and "already recorded" in again.text
    assert count(engine, "panel_suggestion") == 2
    with engine.connect() as conn:
        statuses = conn.execute(sa.text("SELECT status FROM panel_referral")).scalars().all()
    assert statuses == ["decided"]


def test_step_up_and_step_down_pages_refuse_clearly_and_change_nothing(
    browser: TestClient, world: World, web_app: FastAPI, engine: Engine
) -> None:
    olivia = world.children["olivia"]
    caf = completed_multi_agency_caf(browser, world)
    unconfirmed = post_form(browser, f"/children/{olivia}/step-up", {"caf_id": caf})
    assert unconfirmed.status_code == 400 and "Confirm that the case is stepped up" in unconfirmed.text
    # no front door is configured here: refused, saying to phone it, and nothing is queued
    no_door = post_form(browser, f"/children/{olivia}/step-up", {"caf_id": caf, "confirm": "yes"})
    assert no_door.status_code == 409 and "phone your children" in no_door.text
    assert count(engine, "step_up") == 0 and count(engine, "front_door_notice") == 0
    assert browser.get(f"/children/{olivia}/step-down").status_code == 403  # a practitioner: not social care
    with page_client(web_app, "http://testserver") as cora:
        sign_in(cora, world, "cora")
        search(cora, given="Olivia", family="Smith", **DOB)
        card = cora.get(f"/children/{olivia}").text
        assert "Step down to early help" in card and "Step up to social care" not in card
        empty = post_form(cora, f"/children/{olivia}/step-down", {})
        assert empty.status_code == 400
        assert "Choose the early help practitioner" in empty.text and "Enter the reason" in empty.text
        open_caf = post_form(
            cora,
            f"/children/{olivia}/step-down",
            {"lead_practitioner_id": str(world.practitioners["dee"]), "reason": "closed to social care"},
        )
        assert open_caf.status_code == 409 and "already open" in open_caf.text  # Pat's CAF is not stepped up
    assert count(engine, "assessment") == 1 and count(engine, "step_up") == 0
