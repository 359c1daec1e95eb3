"""The pages keep the same limits as the API: purposes by role, searches and cards counted."""

from __future__ import annotations

import re

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from auth.ratelimit import SubjectLimiter
from tests.web.test_pages import DOB, NEW_CHILD
from tests.web.world import World, csrf_of, sign_in


def offered(html: str) -> list[str]:
    """The purposes a page offers (its radio buttons named purpose)."""
    return re.findall(r'name="purpose" type="radio" value="([^"]+)"', html)


def limited(app: FastAPI, *, per_minute: int = 1000, distinct: int = 10_000) -> None:
    state: AuthState = app.state.auth
    state.limiter = SubjectLimiter(
        state.limiter.store, per_minute=per_minute, trawl_window_seconds=3600, trawl_distinct=distinct
    )


def test_each_role_is_offered_only_its_own_purposes(browser: TestClient, world: World) -> None:
    sign_in(browser, world, "pat")
    search_page = browser.get("/search").text
    assert offered(search_page) == [
        "considering-caf",
        "direct-care",
        "caf-coordination",
        "safeguarding-concern",
    ]
    assert "Directory administration" not in search_page
    card_question = browser.get(f"/children/{world.children['olivia']}").text
    assert offered(card_question) == offered(search_page)
    assert offered(browser.get("/children/new").text) == offered(search_page)


def test_an_administrator_is_offered_administration_and_audit(browser: TestClient, world: World) -> None:
    sign_in(browser, world, "ada")
    assert offered(browser.get("/search").text) == ["administration", "audit"]


def test_a_purpose_the_role_may_not_give_is_refused_on_the_pages(
    browser: TestClient, world: World, engine: Engine
) -> None:
    sign_in(browser, world, "pat")
    token = csrf_of(browser.get("/search").text)
    r = browser.post(
        "/search",
        data={"csrf_token": token, "purpose": "administration", "given": "Olivia", "family": "Smith", **DOB},
    )
    assert r.status_code == 403 and "considering-caf" in r.text
    olivia = world.children["olivia"]
    asked = browser.post(f"/children/{olivia}/purpose", data={"csrf_token": token, "purpose": "audit"})
    assert asked.status_code == 403
    # Nothing was searched or read under the refused purpose.
    with engine.connect() as conn:
        used = conn.execute(
            sa.text("SELECT count(*) FROM audit_event WHERE purpose IN ('administration', 'audit')")
        )
        assert used.scalar_one() == 0
    new = browser.post("/children/new", data={**NEW_CHILD, "purpose": "administration", "csrf_token": token})
    assert new.status_code == 403


def test_the_search_page_counts_each_child_shown_as_a_look(
    browser: TestClient, world: World, web_app: FastAPI, engine: Engine
) -> None:
    limited(web_app, distinct=2)
    sign_in(browser, world, "pat")
    token = csrf_of(browser.get("/search").text)
    data = {"csrf_token": token, "purpose": "direct-care", "family": "Smith"}
    found = browser.post(
        "/search",
        data={
            **data,
            "dob-from-day": "1",
            "dob-from-month": "1",
            "dob-from-year": "2017",
            "dob-to-day": "31",
            "dob-to-month": "12",
            "dob-to-year": "2017",
        },
    )
    assert found.status_code == 200, found.text
    r = browser.post(
        "/search", data={**data, "given": "Amara", "dob-day": "11", "dob-month": "11", "dob-year": "2019"}
    )
    assert r.status_code == 200 and str(world.children["amara"]) in r.text
    with engine.connect() as conn:
        who = conn.execute(
            sa.text("SELECT actor_subject FROM audit_event WHERE action = 'alert.trawling'")
        ).all()
    assert [w[0] for w in who] == ["pat"]


def test_the_pages_reads_count_towards_the_limit(browser: TestClient, world: World, web_app: FastAPI) -> None:
    sign_in(browser, world, "pat")
    olivia = world.children["olivia"]
    token = csrf_of(browser.get("/search").text)
    chose = browser.post(
        f"/children/{olivia}/purpose",
        data={"csrf_token": token, "purpose": "direct-care"},
        follow_redirects=False,
    )
    assert chose.status_code == 303
    limited(web_app, per_minute=3)
    reads = [
        browser.get(f"/children/{olivia}").status_code,  # the card
        browser.get(f"/children/{olivia}/caf-signal").status_code,  # an action's form shows the card too
        browser.post("/children/new", data={**NEW_CHILD, "csrf_token": token}).status_code,  # duplicate check
        browser.get(f"/children/{olivia}").status_code,
    ]
    assert reads == [200, 200, 200, 429]
