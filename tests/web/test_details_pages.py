"""Change a child's details from the pages: form, check your answers, confirm; a stale version is a
clear message, not an error page; refusals and bad input change nothing."""

from __future__ import annotations

import re
import uuid
from datetime import date

import httpx
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from directory import service
from directory.db import unit_of_work
from directory.models import ChildChange, RelatedPerson, Role
from tests.conftest import count
from tests.fixtures.builders import actor
from tests.web.world import World, csrf_of, sign_in
from tests.web.world import _hidden_inputs as hidden

DOB = {"dob-day": "27", "dob-month": "3", "dob-year": "2017"}


def _with_purpose(client: TestClient, world: World, username: str) -> None:
    sign_in(client, world, username)
    token = csrf_of(client.get("/search").text)
    r = client.post(
        "/search",
        data={"csrf_token": token, "purpose": "direct-care", "given": "Olivia", "family": "Smith", **DOB},
    )
    assert r.status_code == 200, r.text


def _check(client: TestClient, child: str, changes: dict[str, str]) -> httpx.Response:
    """Open the form, change some fields, continue to the check page."""
    form = client.get(f"/children/{child}/details")
    assert form.status_code == 200, form.text
    values = {**hidden(form.text), **_filled(form.text), **changes}
    answer: httpx.Response = client.post(f"/children/{child}/details", data=values)
    return answer


def _filled(html: str) -> dict[str, str]:
    """The text inputs and checked radios of a form as it was filled."""
    out = {
        m.group(1): m.group(2) for m in re.finditer(r'name="([^"]+)" type="text"[^>]*value="([^"]*)"', html)
    }
    out.update(
        {
            m.group(1): m.group(2)
            for m in re.finditer(r'id="[^"]+" name="([^"]+)" type="text"[^>]*value="([^"]*)"', html)
        }
    )
    out.update(
        {
            m.group(1): m.group(2)
            for m in re.finditer(r'name="([^"]+)" type="radio" value="([^"]*)" checked', html)
        }
    )
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', body)
        out[name] = chosen.group(1) if chosen else ""
    return out


def test_change_check_and_confirm(browser: TestClient, world: World, engine: Engine) -> None:
    olivia = str(world.children["olivia"])
    _with_purpose(browser, world, "hana")  # Hana's health visiting works with Olivia
    card = browser.get(f"/children/{olivia}")
    assert f'href="/children/{olivia}/details"' in card.text
    check = _check(
        browser, olivia, {"family": "Jones", "line1": "7 New Street", "postcode": "ox2 6ae", "town": ""}
    )
    assert check.status_code == 200, check.text
    assert (
        "Check your changes" in check.text and "Olivia Jones" in check.text and "7 New Street" in check.text
    )
    versions = count(engine, "child_version")
    done = browser.post(
        f"/children/{olivia}/details", data={**hidden(check.text), "step": "confirm"}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == f"/children/{olivia}"
    after = browser.get(f"/children/{olivia}")
    assert "Olivia Jones" in after.text and "The record is changed: name, address" in after.text
    assert count(engine, "child_version") == versions + 1
    with engine.connect() as c:
        row = c.execute(
            sa.text("SELECT detail FROM audit_event WHERE action = 'child.details.change'")
        ).scalar_one()
    assert "web" in row and "Jones" not in row


def test_a_stale_version_shows_a_clear_message(browser: TestClient, world: World, engine: Engine) -> None:
    olivia = world.children["olivia"]
    _with_purpose(browser, world, "hana")
    check = _check(browser, str(olivia), {"family": "Brown"})
    with unit_of_work(engine) as s:  # someone else changes the record meanwhile
        service.change_child(
            s,
            actor=actor(Role.DIRECTORY_ADMIN, subject="ada"),
            child_id=olivia,
            change=ChildChange(sex="other"),
            today=date.today(),
            source="test",
        )
    r = browser.post(f"/children/{olivia}/details", data={**hidden(check.text), "step": "confirm"})
    assert r.status_code == 409
    assert "Someone changed this record after you opened the form" in r.text and "Change details" in r.text
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM child_name WHERE family = 'Brown'")).scalar_one() == 0


def test_bad_input_and_refusals_change_nothing(browser: TestClient, world: World, engine: Engine) -> None:
    olivia, noah = str(world.children["olivia"]), str(world.children["noah"])
    _with_purpose(browser, world, "hana")
    bad = _check(browser, olivia, {"postcode": "NOT A CODE", "line1": "1 Road"})
    assert bad.status_code == 400 and "Enter a real UK postcode" in bad.text
    bad = _check(browser, olivia, {"dob-day": "30", "dob-month": "2", "dob-year": "2020"})
    assert bad.status_code == 400 and "must be a real date" in bad.text
    before = count(engine, "child_version")
    # Noah is shielded and Hana's service is not involved with him: refused, without his address
    check = _check(browser, noah, {"sex": "other"})
    assert check.status_code == 200 and "Hidden Lane" not in check.text and 'name="line1"' not in check.text
    r = browser.post(f"/children/{noah}/details", data={**hidden(check.text), "step": "confirm"})
    assert r.status_code == 403 and "Your change was not made" in r.text and "Hidden Lane" not in r.text
    no_csrf = browser.post(f"/children/{olivia}/details", data={"step": "confirm", "family": "X"})
    assert no_csrf.status_code == 400
    assert count(engine, "child_version") == before


def test_a_designated_practitioner_involved_moves_a_shielded_child(
    browser: TestClient, world: World, engine: Engine
) -> None:
    noah = str(world.children["noah"])
    _with_purpose(browser, world, "dee")  # Dee's youth work is involved with Noah, and Dee may see shields
    check = _check(browser, noah, {"line1": "1 Safe Place", "postcode": "OX4 1AA"})
    assert check.status_code == 200 and "1 Safe Place" in check.text
    done = browser.post(
        f"/children/{noah}/details", data={**hidden(check.text), "step": "confirm"}, follow_redirects=False
    )
    assert done.status_code == 303
    with engine.connect() as c:
        assert (
            c.execute(
                sa.text("SELECT count(*) FROM child_address WHERE line1 = '1 Safe Place' AND until IS NULL")
            ).scalar_one()
            == 1
        )


def test_parents_and_carers_are_added_ended_and_given_responsibility(
    browser: TestClient, world: World, engine: Engine
) -> None:
    olivia = str(world.children["olivia"])
    _with_purpose(browser, world, "hana")
    form = browser.get(f"/children/{olivia}/details").text
    jane = re.search(r'name="pr_([0-9a-f-]+)" type="radio" value="yes" checked', form)
    assert jane and "Jane Smith (mother)" in form
    check = _check(
        browser,
        olivia,
        {f"pr_{jane[1]}": "no", "carer_name": "Tom Smith", "carer_relationship": "father", "carer_pr": "yes"},
    )
    assert (
        "Jane Smith: no longer has it" in check.text
        and "Tom Smith (father), with parental responsibility" in check.text
    )
    done = browser.post(
        f"/children/{olivia}/details", data={**hidden(check.text), "step": "confirm"}, follow_redirects=False
    )
    assert done.status_code == 303
    with Session(engine) as s:
        jane_row = s.get(RelatedPerson, uuid.UUID(jane[1]))
        tom = s.exec(select(RelatedPerson).where(RelatedPerson.name == "Tom Smith")).one()
        assert jane_row is not None and not jane_row.parental_responsibility
        assert tom.parental_responsibility and tom.child_id == uuid.UUID(olivia)
    check = _check(browser, olivia, {f"end_{jane[1]}": "yes"})
    assert "No longer around the child" in check.text
    browser.post(f"/children/{olivia}/details", data={**hidden(check.text), "step": "confirm"})
    card = browser.get(f"/children/{olivia}").text
    assert "Jane Smith" not in card and "Tom Smith" in card


def test_the_history_page_lists_the_versions(browser: TestClient, world: World, engine: Engine) -> None:
    olivia, noah = str(world.children["olivia"]), str(world.children["noah"])
    _with_purpose(browser, world, "hana")
    check = _check(browser, olivia, {"family": "Jones"})
    browser.post(f"/children/{olivia}/details", data={**hidden(check.text), "step": "confirm"})
    assert f'href="/children/{olivia}/history"' in browser.get(f"/children/{olivia}").text
    page = browser.get(f"/children/{olivia}/history")
    assert page.status_code == 200 and "Changes to this record" in page.text
    assert page.text.index(">name<") < page.text.index(">created<")  # newest first
    assert "Jones" not in page.text  # field names, never values
    shielded = browser.get(f"/children/{noah}/history")  # Noah's record is shielded from Hana
    assert shielded.status_code == 200 and "Hidden Lane" not in shielded.text
