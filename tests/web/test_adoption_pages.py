"""Recording an adoption in the pages (the adoption team), and the sealed birth record afterwards: the
team's card of it, and for every other role every page that names it answered exactly as an unknown
id (the bodies compared), with nothing on any page linking the two records (issue #22 item 4)."""

from __future__ import annotations

import uuid
from datetime import date

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from directory.models import AdoptionCreate, AdoptionLink, Child, Involvement, NameIn, Purpose, Role
from directory.service import adoption
from tests.fixtures.builders import actor
from tests.web.conftest import ISSUER
from tests.web.test_record_pages import ALL_USERS, _without_ids, add_users, with_purpose
from tests.web.world import World, csrf_of, page_client

DOB = {"dob-day": "27", "dob-month": "3", "dob-year": "2017"}  # Olivia Smith's


def _status(engine: Engine, child_id: uuid.UUID) -> str:
    with Session(engine) as s:
        child = s.get(Child, child_id)
        assert child is not None
        return child.status


def _links(engine: Engine) -> list[AdoptionLink]:
    with Session(engine) as s:
        return list(s.exec(select(AdoptionLink)).all())


def _involvements(engine: Engine, child_id: uuid.UUID) -> list[Involvement]:
    with Session(engine) as s:
        return list(s.exec(select(Involvement).where(Involvement.child_id == child_id)).all())


def test_the_adoption_team_records_an_adoption_from_the_card(
    browser: TestClient, world: World, engine: Engine
) -> None:
    add_users(engine, world)
    olivia = world.children["olivia"]
    with_purpose(browser, world, "ann", Role.ADOPTION_OFFICER, world.children["amara"])
    # The adoption officer finds the child with the search page, as anyone does.
    token = csrf_of(browser.get("/search").text)
    found = browser.post(
        "/search", data={"csrf_token": token, "purpose": "administration", "family": "Smith", **DOB}
    )
    assert found.status_code == 200 and f"/children/{olivia}" in found.text, found.text
    card = browser.get(f"/children/{olivia}")
    assert card.status_code == 200 and f'href="/children/{olivia}/adoption"' in card.text
    assert "Record a death" not in card.text
    form = browser.get(f"/children/{olivia}/adoption")
    assert form.status_code == 200, form.text
    assert "Health Visiting" in form.text and "Cowley SEN support" in form.text
    assert " checked" not in form.text.split('id="carry"')[1].split("</fieldset>")[0]  # none by default
    carry = [i for i in _involvements(engine, olivia) if i.role == "SENCO"]
    answers = {"given": "Olivia", "family": "Harper", "carry": str(carry[0].id)}
    check = browser.post(f"/children/{olivia}/adoption", data={"csrf_token": csrf_of(form.text), **answers})
    assert check.status_code == 200, check.text
    assert "Check your answers" in check.text and "Olivia Harper" in check.text
    assert "Cowley SEN support" in check.text and "Health Visiting" not in check.text
    assert _status(engine, olivia) == "active" and _links(engine) == []
    done = browser.post(
        f"/children/{olivia}/adoption", data={"csrf_token": csrf_of(check.text), "step": "confirm", **answers}
    )
    assert done.status_code == 200, done.text
    assert "The adoption is recorded" in done.text
    (link,) = _links(engine)
    assert link.sealed_id == olivia and f'href="/children/{link.adoptive_id}"' in done.text
    assert _status(engine, olivia) == "sealed"
    assert [i.role for i in _involvements(engine, link.adoptive_id)] == ["SENCO"]  # only the one chosen
    # The sealed card, for the team: the banner first, and the link to the adoptive record.
    sealed = browser.get(f"/children/{olivia}")
    assert sealed.status_code == 200, sealed.text
    body = sealed.text.split('id="main-content"')[-1]
    assert body.index("Sealed: adoption") < body.index("<h1")
    assert f'href="/children/{link.adoptive_id}"' in sealed.text
    for action in ("/details", "/death", "/adoption", "caf-signal", "involvement-new", "consent-new"):
        assert f"{olivia}{action}" not in sealed.text, action
    adoptive = browser.get(f"/children/{link.adoptive_id}")
    assert adoptive.status_code == 200 and f'href="/children/{olivia}"' in adoptive.text


def test_bad_adoption_answers_get_one_round_of_errors_and_change_nothing(
    browser: TestClient, world: World, engine: Engine
) -> None:
    add_users(engine, world)
    olivia = world.children["olivia"]
    with_purpose(browser, world, "ann", Role.ADOPTION_OFFICER, olivia)
    token = csrf_of(browser.get(f"/children/{olivia}/adoption").text)
    amara_inv = _involvements(engine, world.children["amara"])[0]
    bad = {
        "step": "confirm",
        "given": "",
        "family": " ",
        "nhs_number": "1234567890",
        "dob-day": "1",
        "dob-month": "1",
        "dob-year": str(date.today().year + 1),
        "postcode": "NOT A CODE",
        "carry": str(amara_inv.id),  # another child's involvement
    }
    r = browser.post(f"/children/{olivia}/adoption", data={"csrf_token": token, **bad})
    assert r.status_code == 400, r.text
    for message in (
        "adoptive given name",
        "adoptive family name",
        "real NHS number",
        "Enter the first line of the address",
        "real UK postcode",
        "Choose only involvements of this record",
    ):
        assert message in r.text, message
    assert "There is a problem" in r.text and 'id="dob-error"' in r.text
    assert _status(engine, olivia) == "active" and _links(engine) == []
    # A forged form changes nothing either.
    ok = {"step": "confirm", "given": "Olivia", "family": "Harper"}
    for forged in ({}, {"csrf_token": "forged"}):
        r = browser.post(f"/children/{olivia}/adoption", data={**forged, **ok})
        assert r.status_code == 400 and "This form has expired" in r.text
    assert _status(engine, olivia) == "active" and _links(engine) == []


def test_no_other_role_may_record_an_adoption(engine: Engine, world: World, web_app: FastAPI) -> None:
    add_users(engine, world)
    olivia = world.children["olivia"]
    for username, role in ALL_USERS:
        if role == Role.ADOPTION_OFFICER:
            continue
        with page_client(web_app, ISSUER) as client:
            with_purpose(client, world, username, role, olivia)
            assert f"/children/{olivia}/adoption" not in client.get(f"/children/{olivia}").text
            got = client.get(f"/children/{olivia}/adoption")
            posted = client.post(f"/children/{olivia}/adoption", data={"given": "A", "family": "B"})
            assert got.status_code == posted.status_code == 403, username
            assert "You cannot do this" in got.text
    assert _status(engine, olivia) == "active" and _links(engine) == []


def _adopt(engine: Engine, world: World) -> tuple[uuid.UUID, uuid.UUID]:
    officer = actor(Role.ADOPTION_OFFICER, subject="ann", purpose=Purpose.ADMINISTRATION)
    with Session(engine, expire_on_commit=False) as s:
        new = adoption.adopt(
            s,
            actor=officer,
            child_id=world.children["olivia"],
            data=AdoptionCreate(names=[NameIn(given="Olivia", family="Harper")]),
            today=date.today(),
        )
        s.commit()
    return world.children["olivia"], new.id


PAGES = [
    "/children/{id}",
    "/children/{id}/details",
    "/children/{id}/history",
    "/children/{id}/access-log",
    "/children/{id}/death",
    "/children/{id}/moved-away",
    "/children/{id}/adoption",
    "/children/{id}/caf-signal",
    "/children/{id}/involvement-new",
    "/children/{id}/consent-new",
    "/children/{id}/shield",
    "/admin/children/{id}/subject-access",
    "/admin/children/{id}/merged",
    "/admin/children/{id}/merge",
    "/admin/children/{other}/merge?duplicate={id}",
    "/audit?child={id}",
]


def test_for_every_other_role_the_sealed_record_is_an_unknown_id_on_every_page(
    engine: Engine, world: World, web_app: FastAPI
) -> None:
    add_users(engine, world)
    sealed, adoptive = _adopt(engine, world)
    other = world.children["amara"]
    for username, role in ALL_USERS:
        if role == Role.ADOPTION_OFFICER:
            continue
        with page_client(web_app, ISSUER) as client:
            with_purpose(client, world, username, role, other)
            for page in PAGES:
                unknown = uuid.uuid4()
                a = client.get(page.format(id=sealed, other=other))
                b = client.get(page.format(id=unknown, other=other))
                assert a.status_code == b.status_code, (username, page, a.status_code, b.status_code)
                assert _without_ids(a.text, sealed) == _without_ids(b.text, unknown), (username, page)
                assert adoptive.hex not in a.text.replace("-", ""), (username, page)
            # The adoptive record's card (where they may read it) does not lead to the birth record.
            card = client.get(f"/children/{adoptive}")
            assert sealed.hex not in card.text.replace("-", ""), username
            assert "Sealed" not in card.text and "adoption" not in card.text.lower(), username
