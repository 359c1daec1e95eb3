"""The admin pages hold grants to the same rules as the API: localities, a second admin, bounded dates."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from auth.models import AccessGrant
from directory.db import unit_of_work
from directory.models import Role, utcnow
from tests.fixtures.auth_builders import make_grant, make_user
from tests.web.conftest import ISSUER
from tests.web.world import World, csrf_of, page_client, sign_in

ADMIN_SCOPES = ("directory.search", "directory.write", "grants.admin", "audit.read")


def post_form(
    client: TestClient, path: str, data: dict[str, str], form_page: str | None = None
) -> httpx.Response:
    """GET the form page for its CSRF token, then POST it."""
    page = client.get(form_page or path)
    assert page.status_code == 200, page.text
    return client.post(path, data={"csrf_token": csrf_of(page.text), **data})


def add_admin(engine: Engine, world: World, username: str, localities: list[str] | None = None) -> None:
    """Another directory admin who can sign in to the pages."""
    with unit_of_work(engine) as s:
        user = make_user(s, username)
        make_grant(s, username, role=Role.DIRECTORY_ADMIN, scopes=ADMIN_SCOPES, localities=localities)
        world.totp[username] = user.totp_secret


def grant_of(engine: Engine, subject: str) -> AccessGrant:
    """The subject's (only) grant."""
    with Session(engine) as s:
        return s.exec(select(AccessGrant).where(AccessGrant.subject == subject)).one()


def test_a_system_client_grant_needs_a_second_admin_in_the_pages(
    browser: TestClient, world: World, web_app: FastAPI, engine: Engine
) -> None:
    sign_in(browser, world, "ada")
    created = post_form(
        browser,
        "/admin/grants/new",
        {
            "subject": "trust-epr",
            "subject_kind": "client",
            "role": "system",
            "scopes": "directory.search",
            "responsible": "pat",
            "reason": "health trust EPR",
            "until-day": "1",
            "until-month": "1",
            "until-year": str(utcnow().year + 1),
        },
    )
    assert created.status_code == 200, created.text
    assert "waiting for a second administrator" in created.text
    assert grant_of(engine, "trust-epr").status == "pending"
    grant_path = str(created.url.path)
    mine = browser.post(
        f"{grant_path}/approve", data={"csrf_token": csrf_of(created.text), "approve-reason": "ok"}
    )
    assert mine.status_code == 409 and "second administrator" in mine.text
    assert grant_of(engine, "trust-epr").status == "pending"
    add_admin(engine, world, "ben")
    with page_client(web_app, ISSUER) as other:
        sign_in(other, world, "ben")
        page = other.get(grant_path)
        assert page.status_code == 200 and "Approve" in page.text
        done = other.post(
            f"{grant_path}/approve", data={"csrf_token": csrf_of(page.text), "approve-reason": "DPIA seen"}
        )
        assert done.status_code == 200 and "The grant is approved" in done.text
    grant = grant_of(engine, "trust-epr")
    assert grant.status == "active" and grant.approved_by == "ben"


def test_a_locality_admin_cannot_suspend_a_county_wide_admin_in_the_pages(
    browser: TestClient, world: World, engine: Engine
) -> None:
    add_admin(engine, world, "lea", localities=["CITY"])
    sign_in(browser, world, "lea")
    ada = grant_of(engine, "ada")
    path = f"/admin/grants/{ada.id}"
    r = post_form(browser, f"{path}/suspend", {"suspend-reason": "because"}, form_page=path)
    assert r.status_code == 409 and "whole authority" in r.text
    assert grant_of(engine, "ada").status == "active"


def test_renewing_to_the_year_9999_in_the_pages_is_refused_with_a_message(
    browser: TestClient, world: World, engine: Engine
) -> None:
    sign_in(browser, world, "ada")
    pat = grant_of(engine, "pat")
    path = f"/admin/grants/{pat.id}"
    for year in ("9999", "2099"):
        r = post_form(
            browser,
            f"{path}/renew",
            {"until-day": "31", "until-month": "12", "until-year": year, "renew-reason": "forever"},
            form_page=path,
        )
        assert r.status_code in (400, 409, 422), r.text
        assert re.search(r"1095 days|between 2000 and 2199", r.text), r.text
    assert grant_of(engine, "pat").valid_until == pat.valid_until


def test_the_admin_who_registered_a_client_in_the_pages_cannot_approve_its_grant(
    browser: TestClient, world: World, web_app: FastAPI, engine: Engine
) -> None:
    sign_in(browser, world, "ada")
    registered = post_form(
        browser,
        "/admin/clients/new",
        {
            "client_id": "lab-system",
            "name": "Lab",
            "auth_method": "client_secret_basic",
            "scopes": "directory.search",
        },
    )
    assert "lab-system is registered" in registered.text
    add_admin(engine, world, "ben")
    with page_client(web_app, ISSUER) as other:
        sign_in(other, world, "ben")
        created = post_form(
            other,
            "/admin/grants/new",
            {
                "subject": "lab-system",
                "subject_kind": "client",
                "role": "system",
                "scopes": "directory.search",
                "responsible": "pat",
                "reason": "lab results",
                "until-day": "1",
                "until-month": "1",
                "until-year": str(utcnow().year + 1),
            },
        )
        assert "waiting for a second administrator" in created.text
    page = browser.get(str(created.url.path))
    mine = browser.post(
        f"{created.url.path}/approve", data={"csrf_token": csrf_of(page.text), "approve-reason": "ok"}
    )
    assert mine.status_code == 409 and "You registered this client" in mine.text
    assert grant_of(engine, "lab-system").status == "pending"


def test_the_grant_form_reports_every_problem_in_one_round(
    browser: TestClient, world: World, engine: Engine
) -> None:
    sign_in(browser, world, "ada")
    next_year = utcnow().year + 1
    refused = post_form(
        browser,
        "/admin/grants/new",
        {
            "subject": "pat",
            "role": "practitioner",
            "training-day": "1",
            "training-month": "1",
            "training-year": str(next_year),  # in the future
            "vetting-day": "1",
            "vetting-month": "1",
            "vetting-year": "2019",  # older than the vetting validity
            "until-day": "31",
            "until-month": "2",
            "until-year": str(next_year),  # not a real date
        },
    )
    assert refused.status_code == 400, refused.text
    summary = refused.text.split("govuk-error-summary__list")[1].split("</ul>")[0]
    for field in ("training", "vetting", "until", "reason"):
        assert f'href="#{field}' in summary, (field, summary)
    assert "Input should" not in refused.text and "value is not" not in refused.text
    with Session(engine) as s:  # nothing written
        assert len(s.exec(select(AccessGrant).where(AccessGrant.subject == "pat")).all()) == 1
