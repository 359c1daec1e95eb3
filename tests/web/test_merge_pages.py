"""The merge pages: compare two records, merge with a reason, see the merged record, undo the merge."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from directory.db import unit_of_work
from directory.models import Child, Role
from tests.fixtures.auth_builders import make_grant, make_user
from tests.fixtures.builders import make_child
from tests.web.world import World, csrf_of, sign_in


def _data_manager(engine: Engine, world: World, username: str = "dora") -> None:
    with unit_of_work(engine) as s:
        user = make_user(s, username)
        make_grant(s, username, role=Role.DATA_MANAGER)
        world.totp[username] = user.totp_secret


def _status(engine: Engine, child_id: uuid.UUID) -> str:
    with Session(engine) as s:
        child = s.get(Child, child_id)
        assert child is not None
        return child.status


def test_a_data_manager_merges_and_unmerges_in_the_pages(
    browser: TestClient, world: World, engine: Engine
) -> None:
    with unit_of_work(engine) as s:
        dup = make_child(s, names=[{"given": "Olivia", "family": "Smyth"}], date_of_birth="2017-03-27")
    keep = world.children["olivia"]
    _data_manager(engine, world)
    sign_in(browser, world, "dora")
    page = browser.get(f"/admin/children/{keep}/merge?duplicate={dup}")
    assert page.status_code == 200, page.text
    assert "Olivia" in page.text and "Smyth" in page.text and "Smith" in page.text  # side by side
    assert "involvements" not in page.text.split('id="moves"')[1].split("</ul>")[0]  # the duplicate has none
    assert "identifiers" in page.text and "parents and carers" in page.text
    # No reason: asked again, nothing changed.
    again = browser.post(
        f"/admin/children/{keep}/merge",
        data={"csrf_token": csrf_of(page.text), "duplicate": str(dup), "reason": ""},
    )
    assert again.status_code == 400 and "Enter why" in again.text
    assert _status(engine, dup) == "active"
    # A forged form (no CSRF token) changes nothing.
    forged = browser.post(f"/admin/children/{keep}/merge", data={"duplicate": str(dup), "reason": "x"})
    assert forged.status_code == 400 and _status(engine, dup) == "active"
    done = browser.post(
        f"/admin/children/{keep}/merge",
        data={"csrf_token": csrf_of(page.text), "duplicate": str(dup), "reason": "same NHS number"},
    )
    assert done.status_code == 200, done.text
    assert str(done.url.path) == f"/admin/children/{dup}/merged"
    assert "The records are merged" in done.text and "Undo the merge" in done.text
    assert _status(engine, dup) == "merged"
    undone = browser.post(f"/admin/children/{dup}/unmerge", data={"csrf_token": csrf_of(done.text)})
    assert undone.status_code == 200, undone.text
    assert "The merge is undone" in undone.text
    assert _status(engine, dup) == "active"


def test_the_merge_page_shows_a_shielded_record_only_as_the_caller_may_see_it(
    browser: TestClient, world: World, engine: Engine
) -> None:
    keep, shielded = world.children["olivia"], world.children["noah"]
    _data_manager(engine, world)
    sign_in(browser, world, "dora")
    page = browser.get(f"/admin/children/{keep}/merge?duplicate={shielded}")
    assert page.status_code == 200, page.text
    assert "Hidden Lane" not in page.text and "OX4 2ZZ" not in page.text and "Targeted Youth" not in page.text
    assert "withheld (shielded)" in page.text
    assert "the record kept becomes shielded" in page.text


def test_practitioners_cannot_reach_the_merge_pages(
    browser: TestClient, world: World, engine: Engine
) -> None:
    keep, dup = world.children["olivia"], world.children["amara"]
    sign_in(browser, world, "pat")
    assert browser.get(f"/admin/children/{keep}/merge?duplicate={dup}").status_code == 403
    r = browser.post(f"/admin/children/{keep}/merge", data={"duplicate": str(dup), "reason": "x"})
    assert r.status_code in (400, 403) and _status(engine, dup) == "active"


def test_self_merge_and_unknown_records_in_the_pages(
    browser: TestClient, world: World, engine: Engine
) -> None:
    keep = world.children["olivia"]
    sign_in(browser, world, "ada")
    page = browser.get(f"/admin/children/{keep}/merge?duplicate={keep}")
    assert page.status_code == 200 and "cannot be merged into itself" in page.text
    assert "Merge the records</button>" not in page.text
    assert browser.get(f"/admin/children/{keep}/merge?duplicate={uuid.uuid4()}").status_code == 404
    which = browser.get(f"/admin/children/{keep}/merge?duplicate=nonsense")
    assert which.status_code == 200 and "Enter the duplicate" in which.text


def test_a_merged_records_card_page_leads_to_the_record_kept(
    browser: TestClient, world: World, engine: Engine
) -> None:
    from directory import service
    from tests.fixtures.builders import actor

    keep = world.children["olivia"]
    with unit_of_work(engine) as s:
        dup = make_child(s, names=[{"given": "Olivia", "family": "Smyth"}], date_of_birth="2017-03-27")
        service.merge_children(
            s, actor=actor(Role.DATA_MANAGER), duplicate_id=dup, into_id=keep, reason="same"
        )
    sign_in(browser, world, "pat")
    page = browser.get(f"/children/{dup}?purpose=direct-care", follow_redirects=False)
    if page.status_code == 200:  # asked the purpose first
        page = browser.post(
            f"/children/{dup}/purpose",
            data={"csrf_token": csrf_of(page.text), "purpose": "direct-care"},
            follow_redirects=False,
        )
        assert page.headers["location"] == f"/children/{dup}"  # the purpose is kept; then the card
        page = browser.get(page.headers["location"], follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == f"/children/{keep}", page.text
    card = browser.get(page.headers["location"])
    assert card.status_code == 200 and "merged into this one" in card.text
    assert "/admin/children/" not in card.text  # a practitioner is not offered merges


def test_an_admin_finds_the_merged_record_from_the_card_and_undoes_the_merge(
    browser: TestClient, world: World, engine: Engine
) -> None:
    from directory import service
    from tests.fixtures.builders import actor

    keep = world.children["olivia"]
    with unit_of_work(engine) as s:
        dup = make_child(s, names=[{"given": "Olivia", "family": "Smyth"}], date_of_birth="2017-03-27")
        service.merge_children(
            s, actor=actor(Role.DATA_MANAGER), duplicate_id=dup, into_id=keep, reason="same"
        )
    sign_in(browser, world, "ada")
    page = browser.get(f"/children/{keep}")
    if "csrf_token" in page.text and "purpose" in page.text and "merged-here" not in page.text:
        page = browser.post(
            f"/children/{keep}/purpose", data={"csrf_token": csrf_of(page.text), "purpose": "administration"}
        )
    assert page.status_code == 200, page.text
    assert f'href="/admin/children/{dup}/merged"' in page.text
    assert f'href="/admin/children/{keep}/merge"' in page.text
    merged = browser.get(f"/admin/children/{dup}/merged")
    assert merged.status_code == 200 and "Undo the merge" in merged.text and str(keep) in merged.text
    undone = browser.post(f"/admin/children/{dup}/unmerge", data={"csrf_token": csrf_of(merged.text)})
    assert undone.status_code == 200 and _status(engine, dup) == "active"


def test_a_data_manager_answers_a_subject_access_request_in_the_pages(
    browser: TestClient, world: World, engine: Engine
) -> None:
    child = world.children["olivia"]
    _data_manager(engine, world)
    sign_in(browser, world, "dora")
    page = browser.get(f"/admin/children/{child}/subject-access")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Demoshire County Council" in page.text and "Olivia" in page.text and "Hana Begum" in page.text
    assert "Noah" not in page.text and "Hidden Lane" not in page.text  # nothing of another child
    bundle = browser.get(f"/admin/children/{child}/subject-access?format=json")
    assert bundle.status_code == 200 and bundle.json()["type"] == "collection"
    assert "attachment" in bundle.headers["content-disposition"]
    with Session(engine) as s:
        from sqlmodel import col, select

        from directory.models import AuditEvent

        exports = s.exec(
            select(AuditEvent).where(col(AuditEvent.action) == "child.subject-access.export")
        ).all()
    assert [e.actor_subject for e in exports] == ["dora", "dora"]


def test_a_practitioner_cannot_export_a_record(browser: TestClient, world: World) -> None:
    sign_in(browser, world, "pat")
    assert browser.get(f"/admin/children/{world.children['olivia']}/subject-access").status_code == 403
