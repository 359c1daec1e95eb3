"""The pages after an adoption (issue #22 item 4): the 2009 case through the search page, a sealed
record's page answered as an unknown one, and the audit pages showing nothing about it."""

from __future__ import annotations

import re
import uuid
from datetime import date

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from directory.models import AdoptionCreate, NameIn, Purpose, Role
from directory.service import adoption
from search.embedded import EmbeddedBackend
from search.indexer import drain
from tests.fixtures.builders import actor
from tests.web.conftest import ISSUER
from tests.web.world import USERS, World, csrf_of, page_client, sign_in

BIRTH_DOB = {"dob-day": "27", "dob-month": "3", "dob-year": "2017"}  # Olivia Smith's


def _adopt(engine: Engine, world: World) -> tuple[str, str]:
    """Olivia Smith adopted as Olivia Harper; the index up to date."""
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
    backend = EmbeddedBackend(engine)
    backend.ensure_ready()
    drain(engine, backend, wait=True)
    return str(world.children["olivia"]), str(new.id)


def _results(client: TestClient, **fields: str) -> tuple[int, str]:
    """The results page, with what differs between any two searches taken out: the CSRF token and
    request ids, and the names searched for (echoed in the form)."""
    token = csrf_of(client.get("/search").text)
    r = client.post("/search", data={"csrf_token": token, "purpose": "considering-caf", **fields})
    page = re.sub(r'value="[^"]{20,}"|[0-9a-f]{32}', "", r.text)
    for key in ("given", "family"):
        if key in fields:
            page = page.replace(fields[key], "NAME")
    return r.status_code, page


def test_the_2009_case_through_the_search_page(engine: Engine, world: World, web_app: FastAPI) -> None:
    sealed, adoptive = _adopt(engine, world)
    for username, role, _ in USERS:
        with page_client(web_app, ISSUER) as client:
            sign_in(client, world, username)
            if role == Role.AUDITOR:
                assert client.get("/search").status_code == 403
                continue
            for fields in (
                {"family": "Smith", **BIRTH_DOB},
                {"given": "Olivia", "family": "Smith", **BIRTH_DOB},
                {"given": "Olivia", **BIRTH_DOB},
            ):
                status, page = _results(client, **fields)
                never = (
                    {**fields, "family": "Qwertyson"} if "family" in fields else {**fields, "given": "Qwerty"}
                )
                assert (status, page) == _results(client, **never), (username, fields)
                assert sealed.replace("-", "") not in page.replace("-", "")
                assert adoptive.replace("-", "") not in page.replace("-", "") and "Harper" not in page
            a = client.get(f"/children/{sealed}")
            b = client.get(f"/children/{uuid.uuid4()}")
            assert a.status_code == b.status_code, username


def test_the_audit_pages_show_nothing_about_a_sealed_record(
    engine: Engine, world: World, web_app: FastAPI
) -> None:
    sealed, adoptive = _adopt(engine, world)
    with page_client(web_app, ISSUER) as client:
        sign_in(client, world, "aud")
        about = client.get(f"/audit?child={sealed}")
        never = client.get(f"/audit?child={uuid.uuid4()}")
        assert about.status_code == never.status_code == 200
        assert "Recorded an involvement" not in about.text and "Sealed the record" not in about.text
        everything = client.get("/audit?action=child").text + client.get("/audit?user=ann").text
        assert "Sealed the record" not in everything and sealed not in everything
        assert "Added a child" in client.get(f"/audit?child={adoptive}").text
