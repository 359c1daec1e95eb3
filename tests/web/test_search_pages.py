"""Search as POST-redirect-GET, the reason per look, the shield banner and the consent a CAF needs,
without a browser (issue #20): audited once per display, no terms in any URL, refused reasons."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from childindex.web import search_pages
from tests.web.world import World, csrf_of, page_client, sign_in

DOB = {"dob-day": "27", "dob-month": "3", "dob-year": "2017"}
OLIVIA = {"given": "Olivia", "family": "Smith", **DOB}
RAW = ("Input should", "value is not a valid", "validation error", "String should")


def searches(engine: Engine, subject: str) -> int:
    """Searches audited for this person."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM audit_event WHERE action = 'search' AND actor_subject = :s"),
                {"s": subject},
            ).scalar_one()
        )


def post_search(client: TestClient, **fields: str) -> tuple[int, str]:
    """POST the form (not following the redirect): the status and the Location (or the page)."""
    token = csrf_of(client.get("/search").text)
    r = client.post("/search", data={"csrf_token": token, **fields}, follow_redirects=False)
    return r.status_code, r.headers.get("location", r.text)


def checked_purposes(html: str) -> list[str]:
    """The reasons a page has ticked already."""
    return re.findall(r'name="purpose" type="radio" value="([^"]+)"[^>]*\bchecked', html)


def test_each_display_of_results_is_one_audited_search(
    browser: TestClient, web_app: FastAPI, world: World, engine: Engine
) -> None:
    sign_in(browser, world, "pat")
    before = searches(engine, "pat")
    status, where = post_search(browser, purpose="considering-caf", **OLIVIA)
    assert (status, where) == (303, "/search/results")  # the POST searches nothing, and says nothing
    assert searches(engine, "pat") == before
    results = browser.get("/search/results")
    assert results.status_code == 200 and "Olivia Smith" in results.text
    assert searches(engine, "pat") == before + 1
    assert browser.get("/search/results").status_code == 200  # Back, or a reload: searched again
    assert searches(engine, "pat") == before + 2
    with engine.connect() as conn:
        purposes = conn.execute(
            sa.text(
                "SELECT DISTINCT purpose FROM audit_event WHERE action = 'search' AND actor_subject = 'pat'"
            )
        ).all()
    assert [p[0] for p in purposes] == ["considering-caf"]
    # Nothing kept yet in another person's session; nothing shown without a kept search.
    with page_client(web_app, "http://testserver") as other:
        sign_in(other, world, "hana")
        assert 'value="Olivia"' not in other.get("/search").text
        r = other.get("/search/results", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/search"
    assert searches(engine, "hana") == 0


def test_no_search_terms_reach_a_url_or_the_cookie_in_clear(browser: TestClient, world: World) -> None:
    sign_in(browser, world, "pat")
    long_name = "Olivia" + "a" * 94  # the longest a given name may be: the sealed cookie stays small
    status, where = post_search(
        browser, purpose="direct-care", given=long_name, family="Smith", postcode="OX4 1AB", **DOB
    )
    assert status == 303 and where == "/search/results"
    cookie = browser.cookies.get("childindex_session") or ""
    assert cookie and "Olivia" not in cookie and len(cookie) < 3500, len(cookie)
    status, _ = post_search(browser, purpose="direct-care", **OLIVIA)
    results = browser.get("/search/results")
    card = browser.get(f"/children/{world.children['olivia']}")
    for page in (results.text, card.text, browser.get("/search").text):
        for url in re.findall(r'(?:href|action)="([^"]+)"', page):
            assert not any(term in url for term in ("Olivia", "Smith", "2017", "OX4")), url
    assert str(results.url).endswith("/search/results")


def test_every_problem_at_once_in_plain_words(browser: TestClient, world: World, engine: Engine) -> None:
    sign_in(browser, world, "pat")
    status, page = post_search(
        browser,
        given="O" * 101,
        nhs_number="1234567890",
        postcode="12345",
        **{"dob-day": "31", "dob-month": "2", "dob-year": "2017"},
    )
    assert status == 400
    summary = page.split('govuk-error-summary__list">', 1)[1].split("</ul>", 1)[0]
    for problem in (
        "Select why you are looking for this child",
        "The given name must be 100 characters or fewer",
        "That is not a valid NHS number",
        "The postcode is not a UK postcode",
        "The date of birth must be a real date",
    ):
        assert problem in summary, problem
    assert not any(raw in page for raw in RAW)
    assert 'value="12345"' in page  # the form keeps what was typed
    status, page = post_search(browser, purpose="direct-care", given="Olivia")
    assert status == 400 and "Add a date of birth" in page
    assert browser.get("/search/results", follow_redirects=False).status_code == 303  # nothing kept
    assert searches(engine, "pat") == 0


def test_the_reason_is_chosen_per_look_and_only_from_the_role_s_own(
    browser: TestClient, world: World, engine: Engine
) -> None:
    sign_in(browser, world, "pat")
    form = browser.get("/search").text
    assert "Directory administration" not in form and 'value="administration"' not in form
    assert "You or your service are working with the child" in form  # one line of help per reason
    status, _ = post_search(browser, purpose="administration", **OLIVIA)
    assert status == 403  # a reason the page never offers is refused, and nothing is kept or searched
    assert browser.get("/search/results", follow_redirects=False).status_code == 303
    post_search(browser, purpose="safeguarding-concern", **OLIVIA)
    results = browser.get("/search/results").text
    assert checked_purposes(results) == []  # "Change your search" asks the reason again
    again = browser.get("/search").text
    assert 'value="Olivia"' in again and checked_purposes(again) == []  # terms kept, reason not
    olivia = world.children["olivia"]
    assert "I have a safeguarding concern" in browser.get(f"/children/{olivia}").text  # this look's reason
    token = csrf_of(again)
    assert (
        browser.post("/search/clear", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    )
    assert 'value="Olivia"' not in browser.get("/search").text
    assert browser.get("/search/results", follow_redirects=False).headers["location"] == "/search"
    assert searches(engine, "pat") == 1


def test_kept_terms_lapse(
    browser: TestClient, world: World, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_in(browser, world, "pat")
    post_search(browser, purpose="direct-care", **OLIVIA)
    monkeypatch.setattr(search_pages, "KEEP_SECONDS", -1)
    assert browser.get("/search/results", follow_redirects=False).headers["location"] == "/search"
    assert 'value="Olivia"' not in browser.get("/search").text
    assert searches(engine, "pat") == 0


def test_the_shield_banner_and_the_consent_a_caf_needs(
    browser: TestClient, web_app: FastAPI, world: World
) -> None:
    noah, olivia = world.children["noah"], world.children["olivia"]
    sign_in(browser, world, "pat")
    post_search(
        browser,
        purpose="direct-care",
        given="Noah",
        family="Jones",
        **{"dob-day": "2", "dob-month": "5", "dob-year": "2016"},
    )
    card = browser.get(f"/children/{noah}").text
    assert "This record is shielded" in card and "app-shield-banner" not in card
    with page_client(web_app, "http://testserver") as dee:
        sign_in(dee, world, "dee")
        token = csrf_of(dee.get("/search").text)
        dee.post(f"/children/{noah}/purpose", data={"csrf_token": token, "purpose": "direct-care"})
        for path in ("", "/history", "/access-log", "/details"):
            page = dee.get(f"/children/{noah}{path}").text
            assert 'class="govuk-notification-banner app-shield-banner"' in page, path
            assert page.index("app-shield-banner") < page.index("<h1"), path  # at the top
    post_search(browser, purpose="considering-caf", **OLIVIA)
    token = csrf_of(browser.get(f"/children/{olivia}/caf-signal").text)
    signalled = browser.post(
        f"/children/{olivia}/caf-signal", data={"csrf_token": token, "not_safeguarding": "yes"}
    ).text
    consent_link = f'href="/children/{olivia}/consent-new?scope=caf"'
    assert consent_link in signalled and f'href="/children/{olivia}/caf-start"' not in signalled
    assert 'class="govuk-notification-banner__link" ' + consent_link in signalled  # in the banner
    start = browser.get(f"/children/{olivia}/caf-start").text
    assert consent_link in start and ">Start the CAF</button>" not in start
