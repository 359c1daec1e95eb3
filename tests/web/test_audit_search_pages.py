"""The audit pages find the child by name and date of birth or NHS number (an audit-purpose search,
itself audited), show plain labels and people's names, and group repeated views; on both databases."""

from __future__ import annotations

import pathlib
import re
import uuid
from html import unescape
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from childindex.web.audit_labels import known, label
from directory.db import unit_of_work
from tests.fixtures.builders import make_child
from tests.web.conftest import ISSUER
from tests.web.world import World, csrf_of, page_client, sign_in

ROOT = pathlib.Path(__file__).resolve().parents[2]
OLIVIA = {"given": "Olivia", "family": "Smith", "dob-day": "27", "dob-month": "3", "dob-year": "2017"}


def shown(html: str) -> str:
    """What the page says (tags gone, entities read)."""
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", html)))


def audit_search(client: TestClient, data: dict[str, Any]) -> Any:
    page = client.get("/audit")
    assert page.status_code == 200, page.text
    return client.post("/audit", data={"csrf_token": csrf_of(page.text), **data})


def test_the_log_of_a_child_found_by_name_and_date_of_birth(
    browser: TestClient, world: World, web_app: FastAPI, engine: Engine
) -> None:
    olivia = world.children["olivia"]
    with page_client(web_app, ISSUER) as pat:
        sign_in(pat, world, "pat")
        token = csrf_of(pat.get(f"/children/{olivia}").text)
        pat.post(f"/children/{olivia}/purpose", data={"csrf_token": token, "purpose": "direct-care"})
        for _ in range(3):
            assert pat.get(f"/children/{olivia}").status_code == 200
    sign_in(browser, world, "aud")
    page = audit_search(browser, OLIVIA)
    assert page.status_code == 200, page.text
    text = shown(page.text)
    assert "What happened to Olivia Smith's record" in text
    assert "Read the child's card (4 times)" in text  # the question's read and three more, one row
    assert "Pat, Practitioner, Test Org" in text
    assert "Recorded an involvement" in text
    assert "child.read" not in text and "involvement.record" not in text
    assert str(olivia) not in page.text  # the record's internal id is never shown
    with engine.connect() as conn:
        searched = conn.execute(
            sa.text("SELECT purpose FROM audit_event WHERE action = 'search' AND actor_subject = 'aud'")
        ).all()
    assert [s[0] for s in searched] == ["audit"]  # the look-up is audited as an audit search


def test_the_log_of_a_child_found_by_nhs_number(browser: TestClient, world: World, engine: Engine) -> None:
    nhs = "9434765919"
    with unit_of_work(engine) as s:
        make_child(
            s,
            names=[{"given": "Nia", "family": "Number"}],
            date_of_birth="2018-04-04",
            identifiers=[{"system": "nhs", "value": nhs}],
        )
    from search.embedded import EmbeddedBackend
    from search.indexer import drain

    backend = EmbeddedBackend(engine)
    drain(engine, backend, wait=True)
    sign_in(browser, world, "aud")
    page = audit_search(browser, {"nhs_number": "943 476 5919"})
    assert page.status_code == 200, page.text
    text = shown(page.text)
    assert "What happened to Nia Number's record" in text and "Added a child" in text
    assert nhs not in page.url.path and "nhs" not in str(page.url.query)


def test_every_problem_in_one_round_and_no_match_said_plainly(browser: TestClient, world: World) -> None:
    sign_in(browser, world, "aud")
    bad = audit_search(browser, {"given": "Olivia", "dob-day": "31", "dob-month": "2", "dob-year": "2017"})
    assert bad.status_code == 400
    assert "Enter the child's family name, or their NHS number" in shown(bad.text)
    assert "The date of birth must be a real date" in bad.text
    wrong = audit_search(browser, {"nhs_number": "12345"})
    assert wrong.status_code == 400 and "Enter the NHS number as 10 digits" in wrong.text
    none = audit_search(
        browser, {"given": "Zed", "family": "Nobody", "dob-day": "1", "dob-month": "1", "dob-year": "2010"}
    )
    assert none.status_code == 200 and "No child matches those details" in none.text


def test_a_practitioner_cannot_use_the_audit_search(browser: TestClient, world: World) -> None:
    sign_in(browser, world, "pat")
    assert browser.get("/audit").status_code == 403
    assert browser.post("/audit", data=OLIVIA).status_code == 403


_WRITES = (
    re.compile(r'\baction\s*=\s*"([a-z][a-z0-9_.\-]*)"'),
    re.compile(r'"action"\s*:\s*"([a-z][a-z0-9_.\-]*)"'),
    re.compile(r'\baudit_change\(\s*\w+\s*,\s*\w+\s*,\s*"([a-z][a-z0-9_.\-]*)"'),
    re.compile(r'\b_audit\(\s*\w+\s*,\s*\w+\s*,\s*"([a-z][a-z0-9_.\-]*)"'),
)
# Actions written from a variable, a table or an f-string (the scan above cannot see them).
_COMPOSED = (
    "grant.suspend",
    "grant.revoke",
    "grant.reinstate",
    "user.disable",
    "match-review.link",
    "match-review.create",
    "tac.actions.read",
    "tac.reviews.read",
    "tac.join.accept",
    "tac.join.decline",
    "tac.invite.accept",
    "tac.invite.decline",
    "refused.web_caf_signal",
    "auth.refused.web_card",
)


def written_actions() -> set[str]:
    """Every audit action the code writes, as far as the source says."""
    found = set(_COMPOSED)
    for root in ("auth", "directory", "childindex", "interop", "search"):
        for path in (ROOT / root).rglob("*.py"):
            source = path.read_text()
            for pattern in _WRITES:
                found |= set(pattern.findall(source))
    return found


def test_every_action_the_code_writes_has_a_label() -> None:
    actions = written_actions()
    assert len(actions) > 100  # the scan finds them (a scan that finds nothing proves nothing)
    missing = sorted(a for a in actions if not known(a))
    assert not missing, f"give these a label in childindex/web/audit_labels.py: {missing}"
    assert label("child.read") == "Read the child's card"
    assert label("refused.web_caf_signal") == "Refused: signal a CAF"


def test_an_unknown_id_in_a_link_is_said_plainly(browser: TestClient, world: World) -> None:
    sign_in(browser, world, "aud")
    page = browser.get(f"/audit?child={uuid.uuid4()}")
    assert page.status_code == 200 and "Nothing in the log matches." in page.text
