"""An error page rendered for a signed-in person keeps their navigation: too many requests, a refusal."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.web.test_limits_pages import limited
from tests.web.world import World, csrf_of, sign_in


def nav_links(html: str) -> list[str]:
    """The service navigation's link texts."""
    items = re.findall(r'<li class="govuk-service-navigation__item.*?</li>', html, re.S)
    return [re.sub(r"<[^>]*>", "", item).strip() for item in items]


def test_the_too_many_requests_page_keeps_the_navigation(
    browser: TestClient, world: World, web_app: FastAPI
) -> None:
    sign_in(browser, world, "pat")
    olivia = world.children["olivia"]
    token = csrf_of(browser.get(f"/children/{olivia}").text)
    chose = browser.post(
        f"/children/{olivia}/purpose",
        data={"csrf_token": token, "purpose": "direct-care"},
        follow_redirects=False,
    )
    assert chose.status_code == 303
    normal = nav_links(browser.get("/search").text)
    assert "Find a child" in normal
    limited(web_app, per_minute=1)
    answers = [browser.get(f"/children/{olivia}") for _ in range(3)]
    too_many = answers[-1]
    assert too_many.status_code == 429, [a.status_code for a in answers]
    assert "Too many requests" in too_many.text
    assert nav_links(too_many.text) == normal


def test_a_refused_page_keeps_the_navigation(browser: TestClient, world: World) -> None:
    sign_in(browser, world, "aud")
    own = nav_links(browser.get("/audit").text)
    assert "Audit" in own
    refused = browser.get("/worklist")  # not an auditor's page
    assert refused.status_code == 403
    assert nav_links(refused.text) == own
