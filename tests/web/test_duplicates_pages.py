"""The probable duplicates page: who may run and read it, what it lists (ids, grades, links to the
merge page), and a pair with a shielded child listed to the record keepers, tagged, so that it is
merged (the 2009 case: a feed's unshielded copy of a shielded child)."""

from __future__ import annotations

import json
import uuid
from datetime import date

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from childindex.duplicates import latest_run
from directory import service
from directory.db import unit_of_work
from directory.models import AuditEvent, Child, ChildChange, Role
from directory.service.merge import merge_children
from search.duplicates import DuplicatesRunner
from search.embedded import EmbeddedBackend
from search.indexer import drain
from tests.fixtures.auth_builders import make_grant, make_user
from tests.fixtures.builders import actor, make_child
from tests.web.world import World, csrf_of, sign_in


def _plant(engine: Engine, world: World) -> dict[str, uuid.UUID]:
    """Two records of one child (a second feed's copy, without the NHS number), and an unshielded
    copy of the shielded Noah: the 2009 case."""
    with Session(engine, expire_on_commit=False) as s:
        ids = {
            "amara-copy": make_child(
                s,
                names=[{"given": "Amara", "family": "Smith"}],
                date_of_birth="2019-11-11",
                identifiers=[],
                address={"line1": "4 North Road", "town": "Oxford", "postcode": "OX2 6AA"},
            ),
            "noah-copy": make_child(
                s,
                names=[{"given": "Noah", "family": "Jones"}],
                date_of_birth="2016-05-02",
                sex="male",
                identifiers=[],
                address={"line1": "9 Hidden Lane", "town": "Oxford", "postcode": "OX4 2ZZ"},
            ),
        }
        s.commit()
    drain(engine, EmbeddedBackend(engine), wait=True)
    return ids


def _add_user(engine: Engine, world: World, username: str, role: Role) -> None:
    with unit_of_work(engine) as s:
        user = make_user(s, username)
        make_grant(s, username, role=role)
        world.totp[username] = user.totp_secret


def _run(browser: TestClient, web_app: FastAPI) -> None:
    page = browser.get("/admin/duplicates")
    assert page.status_code == 200, page.text
    ran = browser.post("/admin/duplicates", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert ran.status_code == 303, ran.text
    web_app.state.duplicates_runner.wait(60)


def _events(engine: Engine, action: str) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def test_a_data_manager_runs_the_report_and_reviews_pairs_by_id(
    browser: TestClient, world: World, web_app: FastAPI, engine: Engine
) -> None:
    planted = _plant(engine, world)
    _add_user(engine, world, "dora", Role.DATA_MANAGER)
    sign_in(browser, world, "dora")
    _run(browser, web_app)
    page = browser.get("/admin/duplicates")
    assert page.status_code == 200, page.text
    first, second = sorted([str(world.children["amara"]), str(planted["amara-copy"])])
    assert f"/admin/children/{first}/merge?duplicate={second}" in page.text
    assert "Amara" not in page.text and "OX2" not in page.text  # ids, grades and field names only
    # The shielded child's pair is listed to the data manager, tagged, by ids only.
    noah_first, noah_second = sorted([str(world.children["noah"]), str(planted["noah-copy"])])
    assert f"/admin/children/{noah_first}/merge?duplicate={noah_second}" in page.text
    rows = page.text.split("<tbody")[1].split("</tr>")
    (noah_row,) = [r for r in rows if noah_first in r]
    (amara_row,) = [r for r in rows if first in r]
    assert ">shielded</strong>" in noah_row and ">shielded</strong>" not in amara_row
    assert "Noah" not in page.text and "Jones" not in page.text and "Hidden Lane" not in page.text
    assert "2 pairs listed" in page.text
    run = _events(engine, "duplicates.report")
    assert len(run) == 1 and run[0].actor_subject == "dora"
    detail = json.loads(run[0].detail or "{}")
    assert detail["listed"] == 2
    assert "Amara" not in json.dumps(detail) and "Smith" not in json.dumps(detail)
    assert _events(engine, "duplicates.report.read")


def test_a_directory_admin_may_run_it_and_merge_the_shielded_pair(
    browser: TestClient, world: World, web_app: FastAPI, engine: Engine
) -> None:
    planted = _plant(engine, world)
    sign_in(browser, world, "ada")
    _run(browser, web_app)
    page = browser.get("/admin/duplicates")
    assert str(planted["amara-copy"]) in page.text
    assert str(planted["noah-copy"]) in page.text and str(world.children["noah"]) in page.text
    # Merged from the page's link: the record kept is shielded, the copy a pointer to it.
    noah, copy = world.children["noah"], planted["noah-copy"]
    merge = browser.get(f"/admin/children/{noah}/merge?duplicate={copy}")
    assert merge.status_code == 200, merge.text
    done = browser.post(
        f"/admin/children/{noah}/merge",
        data={"csrf_token": csrf_of(merge.text), "duplicate": str(copy), "reason": "a feed's copy"},
    )
    assert done.status_code == 200, done.text
    with Session(engine) as s:
        kept, gone = s.get(Child, noah), s.get(Child, copy)
        assert kept is not None and kept.shielded and gone is not None and gone.status == "merged"
    report = web_app.state.duplicates_runner.latest
    shielded = [p for p in report.pairs if p.shielded]
    assert {uuid.UUID(x) for p in shielded for x in (p.first, p.second)} == {
        world.children["noah"],
        planted["noah-copy"],
    }


def test_the_merge_page_shows_the_shielded_side_as_its_card_shows_it_to_a_data_manager(
    browser: TestClient, world: World, engine: Engine
) -> None:
    """Current official name only: not the previous name, the address, the school or the services."""
    planted = _plant(engine, world)
    with unit_of_work(engine) as s:
        service.change_child(
            s,
            actor=actor(Role.DIRECTORY_ADMIN),
            child_id=world.children["noah"],
            change=ChildChange.model_validate({"official_name": {"given": "Noah", "family": "Okoro"}}),
            today=date.today(),
            source="app",
        )
    _add_user(engine, world, "dora", Role.DATA_MANAGER)
    sign_in(browser, world, "dora")
    noah, copy = world.children["noah"], planted["noah-copy"]
    page = browser.get(f"/admin/children/{copy}/merge?duplicate={noah}")
    assert page.status_code == 200, page.text
    shielded_side = page.text.split("Okoro")[1] if "Okoro" in page.text else ""
    assert "Okoro" in page.text and "withheld (shielded)" in page.text
    assert "Hidden Lane" not in shielded_side and "Targeted Youth" not in page.text
    # the copy (unshielded) shows its own address; "Jones" is the copy's name, never the shielded
    # record's previous one: it appears exactly as often as the copy's own card shows it
    copy_only = browser.get(f"/admin/children/{copy}/merge?duplicate={world.children['amara']}")
    assert page.text.count("Jones") == copy_only.text.count("Jones")


def test_practitioners_auditors_and_designated_practitioners_are_refused(
    browser: TestClient, world: World, engine: Engine
) -> None:
    for username in ("pat", "dee", "aud", "lena"):
        with TestClient(browser.app, base_url=str(browser.base_url), raise_server_exceptions=False) as c:
            sign_in(c, world, username)
            assert c.get("/admin/duplicates").status_code == 403, username
            assert c.post("/admin/duplicates", data={}).status_code == 403, username
    assert not _events(engine, "duplicates.report")


def test_running_without_the_forms_token_starts_nothing(
    browser: TestClient, world: World, web_app: FastAPI, engine: Engine
) -> None:
    sign_in(browser, world, "ada")
    r = browser.post("/admin/duplicates", data={"csrf_token": "forged"}, follow_redirects=False)
    assert r.status_code == 400
    runner = getattr(web_app.state, "duplicates_runner", None)
    assert runner is None or (runner.latest is None and not runner.running)
    assert not _events(engine, "duplicates.report")


def test_the_report_is_kept_and_a_pair_decided_to_be_two_children_is_not_listed_again(
    browser: TestClient, world: World, web_app: FastAPI, engine: Engine
) -> None:
    planted = _plant(engine, world)
    sign_in(browser, world, "ada")
    _run(browser, web_app)
    first, second = sorted([str(world.children["amara"]), str(planted["amara-copy"])])
    # Another node (or this one after a restart) has no report in memory: it lists the kept one.
    web_app.state.duplicates_runner = DuplicatesRunner()
    page = browser.get("/admin/duplicates")
    assert f"/admin/children/{first}/merge?duplicate={second}" in page.text
    assert "2 pairs listed" in page.text  # (and the shielded pair, tagged)
    token = csrf_of(page.text)
    # Refused, changing nothing: without the form's token; a pair the report does not list.
    for data in (
        {"csrf_token": "forged", "first": first, "second": second},
        {"csrf_token": token, "first": first, "second": str(uuid.uuid4())},
        {"csrf_token": token, "first": "not-an-id", "second": second},
    ):
        browser.post("/admin/duplicates/not-duplicates", data=data, follow_redirects=False)
        assert not _events(engine, "duplicates.not_duplicates"), data
    assert "2 pairs listed" in browser.get("/admin/duplicates").text
    r = browser.post(
        "/admin/duplicates/not-duplicates",
        data={"csrf_token": token, "first": second, "second": first},  # (either order)
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = browser.get("/admin/duplicates")
    assert f"duplicate={second}" not in page.text and "1 pair listed" in page.text
    (decided,) = _events(engine, "duplicates.not_duplicates")
    assert decided.actor_subject == "ada" and "Amara" not in (decided.detail or "")
    # A later run leaves the pair out.
    _run(browser, web_app)
    assert f"duplicate={second}" not in browser.get("/admin/duplicates").text


def test_a_pair_leaves_the_list_once_merged(
    browser: TestClient, world: World, web_app: FastAPI, engine: Engine
) -> None:
    planted = _plant(engine, world)
    sign_in(browser, world, "ada")
    _run(browser, web_app)
    with unit_of_work(engine) as s:
        merge_children(
            s,
            actor=actor(Role.DIRECTORY_ADMIN),
            duplicate_id=planted["amara-copy"],
            into_id=world.children["amara"],
        )
    page = browser.get("/admin/duplicates")
    assert str(planted["amara-copy"]) not in page.text and "1 pair listed" in page.text


def test_a_run_that_finishes_while_the_page_reads_it_is_read_afresh(engine: Engine) -> None:
    """The page reads the latest run (still running), and then the latest finished one in the same
    transaction; on PostgreSQL the run may finish in between, and must not come back from the session
    as it was (no finishing time: the page answered 500)."""
    from childindex.web.duplicates import _latest_done
    from directory.models import DuplicateRun, utcnow

    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time and a transaction keeps its snapshot: no such race")
    with unit_of_work(engine) as s:
        s.add(DuplicateRun(started_by="ada", total=1))
    with Session(engine) as page:
        running = latest_run(page)
        assert running is not None and running.finished_at is None
        with unit_of_work(engine) as s:  # the run finishes, in another transaction
            run = s.get(DuplicateRun, running.id)
            assert run is not None
            run.state, run.finished_at = "done", utcnow()
            s.add(run)
        done = page.exec(_latest_done()).first()
        assert done is not None and done.finished_at is not None
