"""A TAC's plan on the pages (issue #18 item 6): the card shows the plan and the next review; the forms
add an action, change one and record a review, with every error in one round and no validator text;
someone with no part in the CAF is refused and changes nothing. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import date, timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.conftest import count
from tests.web.test_not_yours_pages import _caf_in_progress
from tests.web.test_pages import post_form
from tests.web.world import World, csrf_of, page_client, sign_in

VALIDATOR_WORDS = ("String should", "Input should", "value_error", "validation error", "pydantic")


def _day(prefix: str, d: date) -> dict[str, str]:
    return {f"{prefix}-day": str(d.day), f"{prefix}-month": str(d.month), f"{prefix}-year": str(d.year)}


def _convened(browser: TestClient, world: World) -> dict[str, str]:
    ids = _caf_in_progress(browser, world)
    olivia = world.children["olivia"]
    r = post_form(
        browser,
        f"/children/{olivia}/tac-convene",
        {"caf_id": ids["caf_id"], **_day("review", date.today() + timedelta(days=28))},
    )
    assert "convened" in r.text, r.text
    return ids


def test_add_an_action_every_error_in_one_round_then_the_card_shows_it(
    browser: TestClient, world: World, engine: Engine
) -> None:
    olivia = world.children["olivia"]
    ids = _convened(browser, world)
    card = browser.get(f"/children/{olivia}").text
    assert (
        "The plan" in card and "No actions recorded yet" in card and f"/children/{olivia}/tac-action" in card
    )
    page = browser.get(f"/children/{olivia}/tac-action").text
    assert "No case notes" in page and "Development of the child" in page and "The family" in page
    url = f"/children/{olivia}/tac-action"
    r = browser.post(
        url, data={"csrf_token": csrf_of(page), **ids, "title": "", "due-day": "31", "due-month": "2"}
    )
    assert r.status_code == 400
    for message in (
        "Enter what is to be done",
        "Choose the area of need",
        "Choose who does it",
        "must include a year",
    ):
        assert message in r.text, message
    r = browser.post(
        url,
        data={
            "csrf_token": csrf_of(page),
            **ids,
            "title": "x" * 81,
            "area": "child.health",
            "owner": "family",
            **_day("due", date.today() - timedelta(days=1)),
        },
    )
    assert r.status_code == 400
    assert "80 characters or fewer" in r.text and "before the TAC was convened" in r.text
    assert not any(w in r.text for w in VALIDATOR_WORDS)
    assert count(engine, "tac_action") == 0
    done = browser.post(
        url,
        data={
            "csrf_token": csrf_of(page),
            **ids,
            "title": "Book a hearing test",
            "area": "child.health",
            "owner": str(world.practitioners["dee"]),
            **_day("due", date.today() + timedelta(days=14)),
        },
    )
    assert done.status_code == 200 and "The action is added to the plan" in done.text
    assert "Book a hearing test" in done.text and "Dee Walsh" in done.text
    change = re.search(r'tac-action-change\?item=([0-9a-f-]+)"', done.text)
    assert change
    form = browser.get(f"/children/{olivia}/tac-action-change?item={change[1]}").text
    assert "Book a hearing test" in form
    changed = browser.post(
        f"/children/{olivia}/tac-action-change",
        data={"csrf_token": csrf_of(form), **ids, "item": change[1], "status": "done"},
    )
    assert changed.status_code == 200 and "The action is changed" in changed.text and "Done" in changed.text


def test_record_a_review_every_error_in_one_round_then_it_reconvenes(
    browser: TestClient, world: World, engine: Engine
) -> None:
    olivia = world.children["olivia"]
    ids = _convened(browser, world)
    url = f"/children/{olivia}/tac-review"
    page = browser.get(url).text
    r = browser.post(
        url,
        data={
            "csrf_token": csrf_of(page),
            **ids,
            **_day("held", date.today() + timedelta(days=2)),
            "outcome": "reconvene",
        },
    )
    assert r.status_code == 400
    for message in (
        "its date is in the future",
        "Give the date of the next review",
        "has a copy of the plan",
    ):
        assert message in r.text, message
    assert not any(w in r.text for w in VALIDATOR_WORDS) and count(engine, "tac_review") == 0
    later = date.today() + timedelta(days=56)
    done = browser.post(
        url,
        data={
            "csrf_token": csrf_of(page),
            **ids,
            **_day("held", date.today()),
            "outcome": "reconvene",
            **_day("next", later),
            "family": "yes",
        },
    )
    assert done.status_code == 200 and "The review is recorded" in done.text
    assert f"Next review: <strong>{later.day} {later:%B %Y}</strong>" in done.text
    assert "the family has a copy of the plan" in done.text


def test_someone_with_no_part_in_the_caf_is_refused_and_changes_nothing(
    browser: TestClient, world: World, web_app: FastAPI, engine: Engine
) -> None:
    olivia = world.children["olivia"]
    ids = _convened(browser, world)
    with page_client(web_app, "http://testserver") as hana:
        sign_in(hana, world, "hana")
        from tests.web.test_pages import DOB, search

        search(hana, given="Olivia", family="Smith", **DOB)
        card = hana.get(f"/children/{olivia}").text
        assert "The plan" in card and f"/children/{olivia}/tac-action" not in card
        page = hana.get(f"/children/{olivia}/tac-action")
        assert "Only the CAF's holder" in page.text and "Pat Okafor" in page.text
        r = hana.post(
            f"/children/{olivia}/tac-action",
            data={"csrf_token": csrf_of(card), **ids, "title": "", "area": "nonsense"},
        )
        assert r.status_code == 403 and "Only the CAF's holder" in r.text  # refused before any field is read
        assert count(engine, "tac_action") == 0
