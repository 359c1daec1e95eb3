"""The pages of a death and a move out of the area (directory admins), and of an archived record's
card (data managers and auditors): each flow end to end, bad input, CSRF, and every other role
refused as everywhere else (issue #22 items 1 and 3)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from directory import service
from directory.db import unit_of_work
from directory.models import (
    AuditEvent,
    CafSignal,
    Child,
    ChildLifecycle,
    ChildName,
    Involvement,
    Role,
    utcnow,
)
from directory.service.common import add_years
from tests.fixtures.auth_builders import make_grant, make_user
from tests.fixtures.builders import actor
from tests.web.conftest import ISSUER
from tests.web.world import USERS, World, csrf_of, page_client, sign_in

PURPOSE_OF = {
    Role.PRACTITIONER: "direct-care",
    Role.DESIGNATED_PRACTITIONER: "direct-care",
    Role.CHILD_PROTECTION: "safeguarding-concern",
    Role.LOCAL_DELIVERY_TEAM: "caf-coordination",
    Role.DIRECTORY_ADMIN: "administration",
    Role.AUDITOR: "audit",
    Role.DATA_MANAGER: "administration",
    Role.ADOPTION_OFFICER: "administration",
}
EXTRA_USERS = [("dora", Role.DATA_MANAGER), ("ann", Role.ADOPTION_OFFICER)]
ALL_USERS = [(u, r) for u, r, _ in USERS] + EXTRA_USERS


def add_users(engine: Engine, world: World) -> None:
    """A data manager (dora) and an adoption officer (ann), beside the world's users."""
    with unit_of_work(engine) as s:
        for username, role in EXTRA_USERS:
            user = make_user(s, username)
            make_grant(s, username, role=role)
            world.totp[username] = user.totp_secret


def with_purpose(client: TestClient, world: World, username: str, role: Role, child: uuid.UUID) -> None:
    """Sign in and give the purpose this role gives (on the purpose page of a card)."""
    sign_in(client, world, username)
    page = client.get(f"/children/{child}")
    if page.status_code == 200 and 'name="purpose"' in page.text:
        r = client.post(
            f"/children/{child}/purpose", data={"csrf_token": csrf_of(page.text), "purpose": PURPOSE_OF[role]}
        )
        assert r.status_code in (200, 404), r.text


def _child(engine: Engine, child_id: uuid.UUID) -> Child:
    with Session(engine) as s:
        child = s.get(Child, child_id)
        assert child is not None
        return child


def _life(engine: Engine, child_id: uuid.UUID) -> ChildLifecycle | None:
    with Session(engine) as s:
        return s.get(ChildLifecycle, child_id)


def _dates(prefix: str, d: date) -> dict[str, str]:
    return {f"{prefix}-day": str(d.day), f"{prefix}-month": str(d.month), f"{prefix}-year": str(d.year)}


def _signal_caf(engine: Engine, world: World, key: str) -> None:
    with unit_of_work(engine) as s:
        pat = actor(Role.PRACTITIONER, subject="pat", practitioner_id=world.practitioners["pat"])
        service.signal_caf(
            s,
            actor=pat,
            child_id=world.children[key],
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=utcnow(),
        )


def test_an_admin_records_a_death_from_the_card(browser: TestClient, world: World, engine: Engine) -> None:
    olivia = world.children["olivia"]
    _signal_caf(engine, world, "olivia")
    with_purpose(browser, world, "ada", Role.DIRECTORY_ADMIN, olivia)
    card = browser.get(f"/children/{olivia}")
    assert card.status_code == 200 and f'href="/children/{olivia}/death"' in card.text
    assert f'href="/children/{olivia}/moved-away"' in card.text
    assert "Record an adoption" not in card.text  # the adoption team's, not an admin's
    form = browser.get(f"/children/{olivia}/death")
    assert form.status_code == 200 and "Date of death" in form.text
    died = date.today() - timedelta(days=2)
    answers = {**_dates("died", died), "source": "registrar"}
    check = browser.post(f"/children/{olivia}/death", data={"csrf_token": csrf_of(form.text), **answers})
    assert check.status_code == 200, check.text
    assert "Check your answers" in check.text and "The register office" in check.text
    assert _child(engine, olivia).status == "active"  # the check changes nothing
    done = browser.post(
        f"/children/{olivia}/death", data={"csrf_token": csrf_of(check.text), "step": "confirm", **answers}
    )
    assert done.status_code == 200, done.text
    assert "The death is recorded" in done.text and "The record is archived" in done.text
    assert "Health Visiting" in done.text and "The open CAF is closed" in done.text
    assert _child(engine, olivia).status == "archived"
    life = _life(engine, olivia)
    assert life is not None and life.died_on == died
    with Session(engine) as s:
        open_ = s.exec(
            select(Involvement).where(Involvement.child_id == olivia, Involvement.status == "active")
        )
        assert open_.all() == []
        assert service.repo.open_caf(s, olivia) is None
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "child.death")).all()
        assert [json.loads(e.detail or "{}") for e in events] == [
            {"source": "registrar"}
        ]  # a code, never a name or date
    # The admin no longer reads it: an archived record is an unknown id to them.
    assert browser.get(f"/children/{olivia}").status_code == 404


def test_a_death_with_bad_answers_gets_one_round_of_errors_and_changes_nothing(
    browser: TestClient, world: World, engine: Engine
) -> None:
    olivia = world.children["olivia"]
    with_purpose(browser, world, "ada", Role.DIRECTORY_ADMIN, olivia)
    token = csrf_of(browser.get(f"/children/{olivia}/death").text)
    for answers, messages in (
        ({**_dates("died", date.today() + timedelta(days=3))}, ["in the future", "Select who told you"]),
        ({**_dates("died", date(2016, 1, 1)), "source": "family"}, ["before the date of birth"]),
        (
            {"died-day": "31", "died-month": "2", "died-year": "2024", "source": "x"},
            ["real date", "Select who"],
        ),
        ({"died-day": "3"}, ["must include a month and a year", "Select who"]),
        ({}, ["Enter the date of death", "Select who"]),
    ):
        r = browser.post(
            f"/children/{olivia}/death", data={"csrf_token": token, "step": "confirm", **answers}
        )
        assert r.status_code == 400, (answers, r.text)
        for message in messages:
            assert message in r.text, (answers, message)
        assert "There is a problem" in r.text
    assert _child(engine, olivia).status == "active" and _life(engine, olivia) is None


def test_an_admin_records_a_move_out_of_the_area(browser: TestClient, world: World, engine: Engine) -> None:
    amara = world.children["amara"]
    with_purpose(browser, world, "ada", Role.DIRECTORY_ADMIN, amara)
    form = browser.get(f"/children/{amara}/moved-away")
    assert form.status_code == 200
    token = csrf_of(form.text)
    moved = date.today() - timedelta(days=10)
    answers = {"authority": "Borsetshire County Council", **_dates("moved", moved)}
    # Bad input first: one round, every problem, nothing changed.
    bad = browser.post(
        f"/children/{amara}/moved-away",
        data={
            "csrf_token": token,
            "step": "confirm",
            "authority": " ",
            **_dates("moved", date.today() + timedelta(days=60)),
        },
    )
    assert bad.status_code == 400
    assert "Enter the local authority" in bad.text and "at most a month ahead" in bad.text
    assert _life(engine, amara) is None
    check = browser.post(f"/children/{amara}/moved-away", data={"csrf_token": token, **answers})
    assert check.status_code == 200 and "Borsetshire County Council" in check.text
    archive_on = moved + timedelta(days=90)
    assert archive_on.strftime("%-d %B %Y") in check.text
    assert _life(engine, amara) is None
    back = browser.post(
        f"/children/{amara}/moved-away", data={"csrf_token": token, "step": "change", **answers}
    )
    assert back.status_code == 200 and 'value="Borsetshire County Council"' in back.text
    done = browser.post(
        f"/children/{amara}/moved-away", data={"csrf_token": token, "step": "confirm", **answers}
    )
    assert done.status_code == 200, done.text
    assert "The move is recorded" in done.text and archive_on.strftime("%-d %B %Y") in done.text
    life = _life(engine, amara)
    assert life is not None and life.moved_to == "Borsetshire County Council" and life.moved_on == moved
    assert _child(engine, amara).status == "active"
    card = browser.get(f"/children/{amara}")
    assert "Moving out of the area" in card.text and "Borsetshire" in card.text


def test_csrf_on_the_death_and_move_forms(browser: TestClient, world: World, engine: Engine) -> None:
    olivia = world.children["olivia"]
    with_purpose(browser, world, "ada", Role.DIRECTORY_ADMIN, olivia)
    died = {**_dates("died", date.today()), "source": "family", "step": "confirm"}
    moved = {"authority": "Elsewhere", **_dates("moved", date.today()), "step": "confirm"}
    for path, answers in (("death", died), ("moved-away", moved)):
        for token in ({}, {"csrf_token": "forged"}):
            r = browser.post(f"/children/{olivia}/{path}", data={**token, **answers})
            assert r.status_code == 400 and "This form has expired" in r.text
    assert _child(engine, olivia).status == "active" and _life(engine, olivia) is None


@pytest.mark.parametrize("path", ["death", "moved-away"])
def test_every_other_role_is_refused_as_anywhere_else(
    path: str, engine: Engine, world: World, web_app: FastAPI
) -> None:
    """Not offered on their card, and the pages answer each other role with the usual refusal page
    (the same as for a page of the admins they cannot open, such as the access grants)."""
    add_users(engine, world)
    olivia = world.children["olivia"]
    for username, role in ALL_USERS:
        if role == Role.DIRECTORY_ADMIN:
            continue
        with page_client(web_app, ISSUER) as client:
            with_purpose(client, world, username, role, olivia)
            card = client.get(f"/children/{olivia}")
            assert f"/children/{olivia}/{path}" not in card.text, username
            got = client.get(f"/children/{olivia}/{path}")
            posted = client.post(
                f"/children/{olivia}/{path}",
                data={
                    "csrf_token": csrf_of(client.get("/").text)
                    if "csrf_token" in client.get("/").text
                    else ""
                },
            )
            assert got.status_code == posted.status_code == 403, (
                username,
                got.status_code,
                posted.status_code,
            )
            assert "You cannot do this" in got.text and "You cannot do this" in posted.text
    assert _child(engine, olivia).status == "active" and _life(engine, olivia) is None


def _archive(engine: Engine, world: World, key: str) -> uuid.UUID:
    with unit_of_work(engine) as s:
        from directory.models import DeathRecord
        from directory.service import lifecycle

        lifecycle.record_death(
            s,
            actor=actor(Role.DIRECTORY_ADMIN, subject="seed"),
            child_id=world.children[key],
            data=DeathRecord(date_of_death=date.today() - timedelta(days=1)),
            today=date.today(),
        )
    return world.children[key]


def _without_ids(html: str, *ids: uuid.UUID) -> str:
    """A page with what differs between any two requests taken out: the ids asked for, CSRF tokens."""
    for i in ids:
        html = html.replace(str(i), "ID").replace(i.hex, "ID")
    return re.sub(r'value="[^"]{20,}"|[0-9a-f]{32}', "", html)


def test_an_archived_record_for_data_managers_and_auditors_only(
    engine: Engine, world: World, web_app: FastAPI
) -> None:
    add_users(engine, world)
    olivia = _archive(engine, world, "olivia")
    unknown = uuid.uuid4()
    for username, role in ALL_USERS:
        with page_client(web_app, ISSUER) as client:
            with_purpose(client, world, username, role, world.children["amara"])
            card = client.get(f"/children/{olivia}")
            if role in (Role.DATA_MANAGER, Role.AUDITOR):
                assert card.status_code == 200, (username, card.text)
                assert "Archived" in card.text and "the child died" in card.text
                purge = add_years(date.today(), 6)  # PURGE_AFTER_YEARS after the archive (today)
                assert f"purged on {purge.strftime('%-d %B %Y')}" in card.text
                assert "Olivia" in card.text
                # read only: no action of any kind
                for action in (
                    "/details",
                    "/death",
                    "/moved-away",
                    "/adoption",
                    "caf-signal",
                    "involvement-new",
                    "consent-new",
                    "/shield",
                    "/merge",
                ):
                    assert (
                        f"{olivia}{action}" not in card.text and action not in card.text.split("Archived")[1]
                    ), (
                        username,
                        action,
                    )
                assert f'action="/children/{olivia}' not in card.text, username  # no form of any kind
            else:
                never = client.get(f"/children/{unknown}")
                assert (card.status_code, _without_ids(card.text, olivia)) == (
                    never.status_code,
                    _without_ids(never.text, unknown),
                ), username
    with Session(engine) as s:
        reads = s.exec(
            select(AuditEvent).where(
                AuditEvent.action == "child.read", col(AuditEvent.target_id).in_([str(olivia), olivia.hex])
            )
        ).all()
        assert {e.actor_role for e in reads} == {"data_manager", "auditor"}  # the others read nothing


def test_an_archived_record_is_not_changed_through_the_pages(
    browser: TestClient, engine: Engine, world: World
) -> None:
    add_users(engine, world)
    olivia = _archive(engine, world, "olivia")
    with_purpose(browser, world, "dora", Role.DATA_MANAGER, world.children["amara"])
    page = browser.get(f"/children/{olivia}/details")
    assert page.status_code == 409 and "not active" in page.text, page.text
    token = csrf_of(browser.get("/search").text)
    change = browser.post(
        f"/children/{olivia}/details",
        data={
            "csrf_token": token,
            "step": "confirm",
            "given": "Olivia",
            "family": "Changed",
            "sex": "female",
        },
    )
    assert change.status_code == 422 and "not active" in change.text
    with Session(engine) as s:
        names = s.exec(select(ChildName).where(ChildName.child_id == olivia)).all()
        assert {n.family for n in names} == {"Smith"}


def test_two_admins_recording_the_same_death_at_once_record_it_once(
    engine: Engine, world: World, web_app: FastAPI
) -> None:
    """Both confirm at the same moment: one death, one archive; the other is told the record is gone."""
    import threading

    with unit_of_work(engine) as s:
        user = make_user(s, "adam")
        make_grant(s, "adam", role=Role.DIRECTORY_ADMIN)
        world.totp["adam"] = user.totp_secret
    olivia = world.children["olivia"]
    answers = {**_dates("died", date.today()), "source": "health", "step": "confirm"}
    clients, tokens = [], []
    for username in ("ada", "adam"):
        client = page_client(web_app, ISSUER).__enter__()
        with_purpose(client, world, username, Role.DIRECTORY_ADMIN, olivia)
        tokens.append(csrf_of(client.get(f"/children/{olivia}/death").text))
        clients.append(client)
    start = threading.Barrier(2)
    answered: list[int] = []

    def confirm(i: int) -> None:
        start.wait()
        r = clients[i].post(f"/children/{olivia}/death", data={"csrf_token": tokens[i], **answers})
        answered.append(r.status_code)

    threads = [threading.Thread(target=confirm, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for client in clients:
        client.__exit__(None, None, None)
    assert sorted(answered) == [200, 404], answered
    with Session(engine) as s:
        assert len(s.exec(select(AuditEvent).where(AuditEvent.action == "child.death")).all()) == 1
        assert len(s.exec(select(AuditEvent).where(AuditEvent.action == "child.archive")).all()) == 1


def test_an_auditor_opens_an_archived_record_by_its_id(
    engine: Engine, world: World, web_app: FastAPI
) -> None:
    """Auditors cannot search, and no search finds an archived record: they open it by its id."""
    add_users(engine, world)
    olivia = _archive(engine, world, "olivia")
    for username, role in ALL_USERS:
        with page_client(web_app, ISSUER) as client:
            with_purpose(client, world, username, role, world.children["amara"])
            form = client.get("/records")
            if role not in (Role.DATA_MANAGER, Role.AUDITOR, Role.ADOPTION_OFFICER):
                assert form.status_code == 403 and "Open a record by its id" not in client.get("/").text
                continue
            assert form.status_code == 200 and 'href="/records"' in form.text, username
            bad = client.get("/records?id=not-an-id")
            assert bad.status_code == 400 and "Enter the record" in bad.text
            card = client.get(f"/records?id={olivia}")
            if role == Role.ADOPTION_OFFICER:  # an archived record is not theirs: an unknown id
                assert card.status_code == 404 and "No child record has that id." in card.text
            else:
                assert card.status_code == 200 and "Archived" in card.text and "Olivia" in card.text
