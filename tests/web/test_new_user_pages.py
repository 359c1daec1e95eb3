"""The new user journey (account, enrolment link, practitioner record, grant) and its rules."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pyotp
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from auth import grant_admin
from auth.models import AccessGrant, LocalUser
from auth.users import MIN_PASSWORD
from directory.errors import Conflict
from directory.models import AuditEvent, Practitioner
from tests.web.conftest import ISSUER
from tests.web.world import World, csrf_of, page_client, sign_in

NEW_PASSWORD = "correct horse battery staple"
RAW = (
    "Input should",
    "value is not a valid",
    "directory_admin",
    "designated_practitioner",
    "grants.admin",
    "system/Patient.rs",
)


def _day(prefix: str, day: date) -> dict[str, str]:
    return {f"{prefix}-day": str(day.day), f"{prefix}-month": str(day.month), f"{prefix}-year": str(day.year)}


def answers(world: World, **changes: Any) -> dict[str, Any]:
    """A complete, valid set of answers: Sam Carter (already in the directory) as a practitioner."""
    today = date.today()
    data: dict[str, Any] = {
        "name": "Sam Carter",
        "username": "sam.carter",
        "email": "",
        "link": "existing",
        "practitioner": str(world.practitioners["sam"]),
        "role": "practitioner",
        "reason": "New class teacher at Cowley Primary School",
        **_day("training", today - timedelta(days=10)),
        **_day("vetting", today - timedelta(days=200)),
        **_day("until", today + timedelta(days=300)),
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def submit(client: TestClient, data: dict[str, Any], path: str = "/admin/users/new") -> Any:
    page = client.get("/admin/users/new")
    assert page.status_code == 200, page.text
    return client.post(path, data={"csrf_token": csrf_of(page.text), **data})


def no_raw_text(html: str) -> None:
    """No validator text, role code or scope in what the page shows (form values may hold codes)."""
    shown = re.sub(r"<[^>]*>", " ", html)
    for raw in RAW:
        assert raw not in shown, raw


def users(engine: Engine, username: str) -> list[LocalUser]:
    with Session(engine) as s:
        return list(s.exec(select(LocalUser).where(LocalUser.username == username)).all())


def grants(engine: Engine, subject: str) -> list[AccessGrant]:
    with Session(engine) as s:
        return list(s.exec(select(AccessGrant).where(AccessGrant.subject == subject)).all())


def test_the_journey_checks_answers_then_the_new_person_enrols_and_signs_in(
    browser: TestClient, world: World, web_app: FastAPI, engine: Engine
) -> None:
    sign_in(browser, world, "ada")
    form = browser.get("/admin/users/new")
    assert (
        "Directory administrator" in form.text
        and "Sam Carter, class teacher - Cowley Primary School" in form.text
    )
    assert "Pat Okafor" not in form.text  # already linked to pat's sign-in
    no_raw_text(form.text)
    check = submit(browser, answers(world))
    assert check.status_code == 200, check.text
    assert "Check your answers" in check.text and "Practitioner" in check.text
    no_raw_text(check.text)
    assert users(engine, "sam.carter") == [] and grants(engine, "sam.carter") == []  # nothing written yet

    done = browser.post(
        "/admin/users/new/confirm", data={"csrf_token": csrf_of(check.text), **answers(world)}
    )
    assert done.status_code == 200, done.text
    assert "Sam Carter has been added" in done.text
    link = re.search(r'id="enrol-link" href="([^"]+)"', done.text)
    assert link, done.text
    (user,) = users(engine, "sam.carter")
    assert user.practitioner_id == world.practitioners["sam"]
    (grant,) = grants(engine, "sam.carter")
    assert (
        grant.role == "practitioner"
        and grant.status == "active"
        and grant.organisation == "Cowley Primary School"
    )
    with Session(engine) as s:
        actions = {
            e.action for e in s.exec(select(AuditEvent).where(AuditEvent.actor_subject == "ada")).all()
        }
    assert {"user.create", "grant.create"} <= actions

    with page_client(web_app, ISSUER) as newcomer:
        path = link.group(1).removeprefix(ISSUER)
        page = newcomer.get(path)
        assert page.status_code == 200 and "Set up your sign-in" in page.text
        key = re.search(r'id="totp-key">([A-Z2-7 ]+)<', page.text)
        assert key
        secret = key.group(1).replace(" ", "")
        wrong = newcomer.post(path, data={"password": "short", "password-again": "other", "code": "12"})
        assert wrong.status_code == 400
        assert f"at least {MIN_PASSWORD} characters" in wrong.text and "6-digit code" in wrong.text
        code = pyotp.TOTP(secret).now()
        ok = newcomer.post(
            path, data={"password": NEW_PASSWORD, "password-again": NEW_PASSWORD, "code": code}
        )
        assert ok.status_code == 200 and "Your account is ready" in ok.text, ok.text
        again = newcomer.get(path)
        assert again.status_code == 404 and "already used" in again.text  # the link works once
        world.totp["sam.carter"] = secret
        world._used["sam.carter"] = 1  # the code just used is spent
        sign_in(newcomer, world, "sam.carter", password=NEW_PASSWORD)
        search = newcomer.get("/search")
        assert search.status_code == 200 and "Find a child" in search.text


def test_every_problem_is_listed_in_one_round(browser: TestClient, world: World, engine: Engine) -> None:
    sign_in(browser, world, "ada")
    empty = submit(browser, {})
    assert empty.status_code == 400
    for message in (
        "Enter their full name",
        "Enter the username they will sign in with",
        "Choose whether to link them to a practitioner record",
        "Choose what they will do",
        "Enter the training date",
        "Enter the vetting date",
        "Enter the date access ends",
        "Enter why they need access",
    ):
        assert message in empty.text, message
    no_raw_text(empty.text)


def test_a_future_training_date_and_old_vetting_are_refused_with_the_rest(
    browser: TestClient, world: World, engine: Engine
) -> None:
    sign_in(browser, world, "ada")
    today = date.today()
    bad = submit(
        browser,
        answers(
            world,
            username="pat",  # taken
            email="not an address",
            **_day("training", today + timedelta(days=3)),
            **_day("vetting", date(today.year - 7, 1, 10)),  # older than the 3 years allowed
        ),
    )
    assert bad.status_code == 400
    assert "is in the future" in bad.text
    assert "vetting (DBS) check" in bad.text and "older than 1095 days" in bad.text
    assert "There is already an account named pat" in bad.text
    assert "Enter an email address like name@example.org" in bad.text
    no_raw_text(bad.text)
    # and a forged confirm (skipping the check page) is held to the same rules
    forged = submit(
        browser, answers(world, **_day("training", today + timedelta(days=3))), "/admin/users/new/confirm"
    )
    assert forged.status_code == 400 and "is in the future" in forged.text
    assert users(engine, "sam.carter") == [] and grants(engine, "sam.carter") == []


def test_a_new_practitioner_record_account_and_grant_are_written_together_or_not_at_all(
    browser: TestClient, world: World, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_in(browser, world, "ada")
    with Session(engine) as s:
        org = (
            s.exec(select(Practitioner).where(Practitioner.id == world.practitioners["sam"]))
            .one()
            .organisation_id
        )
        before = len(s.exec(select(Practitioner)).all())
    data = answers(
        world, username="jo.new", name="Jo Newcomer", link="new", org=str(org), job="teaching assistant"
    )
    check = submit(browser, data)
    assert (
        check.status_code == 200 and "Jo Newcomer, teaching assistant - Cowley Primary School" in check.text
    )

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise Conflict("The grant was refused at the last step.", field="role")

    monkeypatch.setattr(grant_admin, "create_grant", refuse)
    failed = browser.post("/admin/users/new/confirm", data={"csrf_token": csrf_of(check.text), **data})
    assert failed.status_code == 409 and "refused at the last step" in failed.text
    assert users(engine, "jo.new") == []
    with Session(engine) as s:
        assert len(s.exec(select(Practitioner)).all()) == before  # the new record went with the rest
    monkeypatch.undo()
    done = browser.post("/admin/users/new/confirm", data={"csrf_token": csrf_of(check.text), **data})
    assert done.status_code == 200, done.text
    (user,) = users(engine, "jo.new")
    with Session(engine) as s:
        made = s.get(Practitioner, user.practitioner_id)
        assert made is not None and made.name == "Jo Newcomer" and made.role == "teaching assistant"
    assert len(grants(engine, "jo.new")) == 1


def test_granting_to_an_unknown_username_is_refused_with_a_way_to_create_it(
    browser: TestClient, world: World, engine: Engine
) -> None:
    sign_in(browser, world, "ada")
    today = date.today()
    page = browser.get("/admin/grants/new")
    no_raw_text(page.text)  # roles and scopes in words, not codes
    assert "Find children and read their cards" in page.text
    refused = browser.post(
        "/admin/grants/new",
        data={
            "csrf_token": csrf_of(page.text),
            "subject": "ghost",
            "subject_kind": "user",
            "role": "practitioner",
            "reason": "new starter",
            **_day("training", today - timedelta(days=1)),
            **_day("vetting", today - timedelta(days=1)),
            **_day("until", today + timedelta(days=30)),
        },
    )
    assert refused.status_code == 409
    assert "There is no account named ghost" in refused.text and 'href="/admin/users/new"' in refused.text
    assert grants(engine, "ghost") == []


def test_an_altered_or_unknown_enrolment_link_is_refused(browser: TestClient) -> None:
    assert browser.get("/enrol/not-a-token").status_code == 404
    assert browser.post("/enrol/not-a-token", data={"password": NEW_PASSWORD}).status_code == 404
