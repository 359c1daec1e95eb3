"""The alerts page says what raises each alert, and a trawl made through the pages (a search, then
one card after another) raises one that it shows, by name, on both databases."""

from __future__ import annotations

import re
import uuid

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from directory.db import unit_of_work
from tests.fixtures.builders import make_child
from tests.web.world import World, csrf_of, sign_in


def many_children(engine: Engine, n: int) -> list[uuid.UUID]:
    """n children nobody works with."""
    with unit_of_work(engine) as s:
        return [
            make_child(s, names=[{"given": f"Child{i}", "family": "Trawl"}], date_of_birth="2015-01-02")
            for i in range(n)
        ]


def open_card(client: TestClient, child: uuid.UUID) -> None:
    """Open a child's card through the pages, giving the reason for looking when asked."""
    page = client.get(f"/children/{child}")
    assert page.status_code == 200, page.text
    if 'name="purpose"' in page.text:
        chose = client.post(
            f"/children/{child}/purpose",
            data={"csrf_token": csrf_of(page.text), "purpose": "direct-care"},
        )
        assert chose.status_code == 200, chose.text


def alerts_shown(html: str) -> list[str]:
    return re.findall(r'<h3 class="govuk-summary-card__title">([^<]+)</h3>', html)


def test_the_alerts_page_says_what_raises_each_alert(browser: TestClient, world: World) -> None:
    sign_in(browser, world, "aud")
    page = browser.get("/audit/alerts")
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", page.text))
    assert "opens the records of 15 or more different children within 5 minutes" in text
    assert "50 or more different children (in searches and records) within 60 minutes" in text
    assert "5 wrong sign-ins in a row" in text
    assert "alert.trawling" not in text and "No alerts have been raised." in text


def test_a_trawl_through_the_pages_shows_on_the_alerts_page(
    browser: TestClient, world: World, engine: Engine, web_app: object
) -> None:
    children = many_children(engine, 16)
    sign_in(browser, world, "pat")
    search = browser.get("/search")
    found = browser.post(
        "/search",
        data={
            "csrf_token": csrf_of(search.text),
            "purpose": "direct-care",
            "family": "Trawl",
            "given": "Child1",
            "dob-day": "2",
            "dob-month": "1",
            "dob-year": "2015",
        },
    )
    assert found.status_code == 200, found.text
    for child in children[:14]:
        open_card(browser, child)
    with TestClient(web_app, base_url="http://testserver", raise_server_exceptions=False) as auditor:  # type: ignore[arg-type]
        sign_in(auditor, world, "aud")
        assert alerts_shown(auditor.get("/audit/alerts").text) == []  # 14 records: not yet
        for child in children[14:]:
            open_card(browser, child)
        page = auditor.get("/audit/alerts")
    assert alerts_shown(page.text) == ["Possible trawling: Pat"]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", page.text))
    assert "Opened the records of 15 different children within 5 minutes." in text
    assert "Pat, Practitioner" in text
