"""The held feed rows page: a row held beside a sealed record (an adopted child's birth identity) is
on the adoption team's page only; for admins and data managers the page is as if it did not exist."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from directory.db import unit_of_work
from directory.models import MatchReview, Role
from tests.fixtures.auth_builders import make_grant, make_user
from tests.web.test_review_pages import add_data_manager, hold
from tests.web.world import World, csrf_of, sign_in


def test_a_row_beside_a_sealed_record_is_on_the_adoption_teams_page_only(
    browser: TestClient, world: World, engine: Engine
) -> None:
    review = hold(engine, world.children["amara"], given="Birthname")
    with unit_of_work(engine) as s:
        row = s.get(MatchReview, review)
        assert row is not None
        row.restricted = "sealed"
        s.add(row)
    sign_in(browser, world, "ada")
    empty = browser.get("/admin/match-reviews")
    assert empty.status_code == 200 and "Birthname" not in empty.text and "No rows are waiting." in empty.text
    refused = browser.post(
        f"/admin/match-reviews/{review}",
        data={"csrf_token": csrf_of(empty.text), "decision": "create"},
        follow_redirects=False,
    )
    unknown = browser.post(
        f"/admin/match-reviews/{uuid.uuid4()}",
        data={"csrf_token": csrf_of(empty.text), "decision": "create"},
        follow_redirects=False,
    )
    assert refused.status_code == unknown.status_code  # withheld reads exactly as absent
    assert refused.headers.get("location") == unknown.headers.get("location")
    after = browser.get("/admin/match-reviews").text
    assert "Birthname" not in after
    browser.cookies.clear()
    add_data_manager(engine, world)
    sign_in(browser, world, "dora")
    page = browser.get("/admin/match-reviews")
    assert "Birthname" not in page.text and "No rows are waiting." in page.text
    browser.cookies.clear()
    with unit_of_work(engine) as s:
        user = make_user(s, "adam")
        make_grant(s, "adam", role=Role.ADOPTION_OFFICER)
        world.totp["adam"] = user.totp_secret
    sign_in(browser, world, "adam")
    mine = browser.get("/admin/match-reviews")
    assert mine.status_code == 200 and "Birthname" in mine.text and "Held feed rows" in mine.text
    with unit_of_work(engine) as s:
        still = s.get(MatchReview, review)
        assert still is not None and still.status == "open"
