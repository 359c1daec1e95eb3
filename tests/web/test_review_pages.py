"""The held feed rows page: reviewers decide (audited), others are refused, shielded candidates only
for who may see them."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from directory.db import unit_of_work
from directory.models import MatchReview, Role
from tests.conftest import count
from tests.directory.test_reconcile import scalar
from tests.fixtures.auth_builders import make_grant, make_user
from tests.web.world import World, csrf_of, sign_in


def hold(engine: Engine, candidate: uuid.UUID, *, given: str = "Amara", shielded: bool = False) -> uuid.UUID:
    """A feed row held beside `candidate`, as a feed run leaves it."""
    review = MatchReview(
        source="social-care",
        run_id="r1",
        file="feed.csv",
        line=7,
        row_hash=uuid.uuid4().hex,
        row={
            "child": {
                "names": [{"given": given, "family": "Heldrow"}],
                "date_of_birth": "2016-04-01",
                "sex": "female",
            },
            "identifiers": [["local:mosaic", f"M-{uuid.uuid4().hex[:6]}"]],
            "addresses": [],
            "shielded": False,
        },
        candidates=[{"child_id": candidate.hex, "grade": "probable"}],
        shielded_candidate=shielded,
    )
    with unit_of_work(engine) as s:
        s.add(review)
    return review.id


def add_data_manager(engine: Engine, world: World, username: str = "dora") -> None:
    with unit_of_work(engine) as s:
        user = make_user(s, username)
        make_grant(s, username, role=Role.DATA_MANAGER)
        world.totp[username] = user.totp_secret


def test_a_data_manager_creates_a_record_from_a_held_row_in_the_pages(
    browser: TestClient, world: World, engine: Engine
) -> None:
    review = hold(engine, world.children["amara"])
    add_data_manager(engine, world)
    sign_in(browser, world, "dora")
    page = browser.get("/admin/match-reviews")
    assert page.status_code == 200, page.text
    assert "feed.csv line 7" in page.text and "Heldrow" in page.text and "probable match" in page.text
    children = count(engine, "child")
    done = browser.post(
        f"/admin/match-reviews/{review}",
        data={"csrf_token": csrf_of(page.text), "decision": "create"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert count(engine, "child") == children + 1
    assert scalar(engine, "SELECT status FROM match_review") == "created"
    assert scalar(engine, "SELECT count(*) FROM audit_event WHERE action = 'match-review.create'") == 1
    again = browser.get("/admin/match-reviews")
    assert "A new record is made." in again.text and "feed.csv line 7" not in again.text


def test_an_admin_links_a_held_row_and_a_stale_form_changes_nothing(
    browser: TestClient, world: World, engine: Engine
) -> None:
    amara = world.children["amara"]
    review = hold(engine, amara, given="Amara")
    sign_in(browser, world, "ada")
    page = browser.get("/admin/match-reviews")
    assert page.status_code == 200 and f"link:{amara}" in page.text
    stale = browser.post(
        f"/admin/match-reviews/{review}", data={"csrf_token": "forged", "decision": f"link:{amara}"}
    )
    assert stale.status_code == 400 and scalar(engine, "SELECT status FROM match_review") == "open"
    browser.post(
        f"/admin/match-reviews/{review}",
        data={"csrf_token": csrf_of(page.text), "decision": f"link:{amara}"},
        follow_redirects=False,
    )
    assert scalar(engine, "SELECT status FROM match_review") == "linked"
    assert scalar(engine, "SELECT count(*) FROM audit_event WHERE action = 'match-review.link'") == 1


def test_practitioners_are_refused_and_shielded_candidates_are_shown_only_to_who_may_see_them(
    browser: TestClient, world: World, engine: Engine
) -> None:
    hold(engine, world.children["noah"], given="Nowhere", shielded=True)
    sign_in(browser, world, "pat")
    assert browser.get("/admin/match-reviews").status_code == 403
    browser.cookies.clear()
    sign_in(browser, world, "ada")
    page = browser.get("/admin/match-reviews")
    assert page.status_code == 200 and "Nowhere" not in page.text and "No rows are waiting." in page.text
    browser.cookies.clear()
    add_data_manager(engine, world)
    sign_in(browser, world, "dora")
    page = browser.get("/admin/match-reviews")
    assert "Nowhere" in page.text and "shielded" in page.text
