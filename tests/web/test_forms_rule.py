"""One rule for every form (issue #20): every problem in one round, in plain words, never a validator's text.

Walks every page form (each POST route under /) with an empty and a nonsense submission, as a
practitioner and as a directory admin, and checks the involvement form's defaults and single round.
"""

from __future__ import annotations

import html
import re
import uuid
from datetime import date
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from auth.policy import all_routes
from childindex.web.forms import plain_message
from childindex.web.session import is_page
from directory.models import Involvement
from tests.web.world import World, csrf_of, sign_in

RAW = re.compile(
    r"Input should|value is not a valid|field required|Value error|validation error|"
    r"type=\w|pydantic|uuid_parsing|int_parsing|should be a valid|Traceback",
    re.IGNORECASE,
)
SKIP = {"/signout", "/search"}  # sign-out ends the session; search is helper A's (checked there)


def _errors_in(page: str) -> tuple[list[str], list[str]]:
    """The messages in the error summary, and those beside the fields."""
    summary = re.findall(r'<li><a href="#[^"]*">([^<]*)</a></li>', page)
    beside = re.findall(
        r'class="govuk-error-message"><span class="govuk-visually-hidden">Error:</span> ([^<]*)</p>', page
    )
    return [html.unescape(s) for s in summary], [html.unescape(s) for s in beside]


def _paths(app: FastAPI, ids: dict[str, str]) -> list[str]:
    out = []
    for route in all_routes(app):
        if "POST" not in (getattr(route, "methods", None) or ()) or not is_page(route.path):
            continue
        if route.path in SKIP:
            continue
        path = route.path
        for name in re.findall(r"{(\w+)}", path):
            path = path.replace(f"{{{name}}}", ids.get(name, str(uuid.uuid4())))
        out.append(path)
    return out


def _filled(page: str, value: str) -> dict[str, str]:
    names = set(re.findall(r'name="([^"]+)"', page)) - {"csrf_token", "caf_id", "item"}
    return {n: value for n in names}


NONSENSE = ("zz<>'\"99999999999999999999", "x" * 3000, "-1", "2024-02-31")


@pytest.mark.parametrize("username", ["pat", "ada", "dee"])
def test_no_form_lets_validator_text_through(
    browser: TestClient, world: World, web_app: FastAPI, username: str
) -> None:
    sign_in(browser, world, username)
    olivia = str(world.children["olivia"])
    page = browser.get(f"/children/{olivia}")
    if 'name="purpose"' in page.text:
        code = "direct-care" if username != "ada" else "administration"
        browser.post(f"/children/{olivia}/purpose", data={"csrf_token": csrf_of(page.text), "purpose": code})
    token = csrf_of(browser.get(f"/children/{olivia}").text)
    walked = 0
    for path in _paths(web_app, {"child_id": olivia}):
        form_page = browser.get(path)
        ok = form_page.status_code == 200
        sent: list[dict[str, str]] = [{}]
        sent += [_filled(form_page.text, v) for v in NONSENSE] if ok else []
        for data in sent:
            answer = browser.post(path, data={"csrf_token": token, **data})
            assert answer.status_code < 500, (path, answer.status_code)
            said = html.unescape(re.sub(r"<[^>]+>", " ", answer.text))  # what the page says
            assert not RAW.search(said), (path, RAW.search(said), data)
            summary, beside = _errors_in(answer.text)
            assert set(beside) <= set(summary), (path, beside, summary)  # every problem listed at once
            walked += 1
    assert walked > 40


def test_the_involvement_form_opens_with_my_service_me_and_today(
    browser: TestClient, world: World, engine: Engine
) -> None:
    sign_in(browser, world, "pat")  # Pat Okafor, SENCO, Cowley Primary School
    amara = world.children["amara"]
    card = browser.get(f"/children/{amara}")
    browser.post(
        f"/children/{amara}/purpose", data={"csrf_token": csrf_of(card.text), "purpose": "direct-care"}
    )
    form = browser.get(f"/children/{amara}/involvement-new").text
    assert re.search(r'value="[^"]+" checked>\s*<label[^>]*>Cowley SEN support \(your organisation\)', form)
    assert re.search(r'value="me" checked>\s*<label[^>]*>You: Pat Okafor, SENCO, Cowley Primary School', form)
    assert "Sam Carter, class teacher, Cowley Primary School" in form  # names carry role and organisation
    assert 'name="role" type="text" value="SENCO"' in form or 'value="SENCO"' in form
    # submitted as it opens: one click
    fields = dict(re.findall(r'name="([^"]+)"[^>]*value="([^"]*)"[^>]*checked', form))
    fields |= {k: v for k, v in re.findall(r'name="([^"]+)" type="text"[^>]*value="([^"]*)"', form)}
    fields |= dict(
        re.findall(r'id="[^"]*" name="([^"]+)" type="text" inputmode="numeric" value="([^"]*)"', form)
    )
    done = browser.post(f"/children/{amara}/involvement-new", data={"csrf_token": csrf_of(form), **fields})
    assert done.status_code == 200 and "The involvement is recorded." in done.text
    with Session(engine) as s:
        rows = s.exec(select(Involvement).where(Involvement.child_id == amara)).all()
        mine = [r for r in rows if r.practitioner_id == world.practitioners["pat"]]
        assert len(mine) == 1 and mine[0].role == "SENCO" and mine[0].level_of_need == 2


def test_the_involvement_form_reports_every_problem_in_one_round(browser: TestClient, world: World) -> None:
    sign_in(browser, world, "pat")
    amara = world.children["amara"]
    card = browser.get(f"/children/{amara}")
    browser.post(
        f"/children/{amara}/purpose", data={"csrf_token": csrf_of(card.text), "purpose": "direct-care"}
    )
    token = csrf_of(browser.get(f"/children/{amara}/involvement-new").text)
    bad = {
        "service_id": "other",
        "practitioner": "other",
        "level_of_need": "seven",
        "start-day": "31",
        "start-month": "2",
        "start-year": "2024",
    }
    answer = browser.post(f"/children/{amara}/involvement-new", data={"csrf_token": token, **bad})
    assert answer.status_code == 400
    summary, _ = _errors_in(answer.text)
    assert set(summary) == {
        "Choose the service",
        "Choose the practitioner who is working with the child",
        "Enter your role with the child",
        "Choose the level of need",
        "The start date must be a real date",
    }, summary


@pytest.mark.parametrize(
    ("err", "chosen", "said"),
    [
        ({"type": "int_parsing", "msg": "Input should be a valid integer"}, True, "Choose the level of need"),
        (
            {"type": "int_parsing", "msg": "Input should be a valid integer"},
            False,
            "Enter the level of need as a whole number, like 2",
        ),
        (
            {"type": "string_too_long", "msg": "x", "ctx": {"max_length": 80}},
            False,
            "The level of need must be 80 characters or fewer",
        ),
        (
            {"type": "value_error", "msg": "Value error, dates must fall between 1900-01-01 and 2100-12-31"},
            False,
            "The level of need must fall between 1900-01-01 and 2100-12-31",
        ),
        (
            {"type": "value_error", "msg": "Value error, Input should be odd"},
            False,
            "Check the level of need: it is not in a form we can use",
        ),
        (
            {"type": "something_new", "msg": "Input should be a valid frobnicator"},
            False,
            "Check the level of need: it is not in a form we can use",
        ),
    ],
)
def test_plain_message(err: dict[str, Any], chosen: bool, said: str) -> None:
    assert plain_message(err, "the level of need", chosen=chosen) == said


def test_ending_an_involvement_opens_with_today(browser: TestClient, world: World, engine: Engine) -> None:
    sign_in(browser, world, "pat")
    olivia = world.children["olivia"]
    card = browser.get(f"/children/{olivia}")
    browser.post(
        f"/children/{olivia}/purpose", data={"csrf_token": csrf_of(card.text), "purpose": "direct-care"}
    )
    with Session(engine) as s:
        item = s.exec(select(Involvement).where(Involvement.child_id == olivia)).first()
        assert item is not None
    form = browser.get(f"/children/{olivia}/involvement-end?item={item.id}").text
    today = date.today()
    for part, value in (("day", today.day), ("month", today.month), ("year", today.year)):
        assert f'name="end-{part}" type="text" inputmode="numeric" value="{value}"' in form
    sent_back = browser.post(
        f"/children/{olivia}/involvement-end",
        data={"csrf_token": csrf_of(form), "item": str(item.id), "end-day": "", "reason": "x" * 600},
    )
    summary, _ = _errors_in(sent_back.text)  # not today's date again over what was sent: the problems
    assert set(summary) == {"Enter the end date", "The reason must be 500 characters or fewer"}, summary
