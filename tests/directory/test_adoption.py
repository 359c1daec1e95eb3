"""Adoption (issue #22 item 4): a new record with the adoptive identity, the birth record sealed.

The 2009 case: searching by the birth surname and date of birth (with and without the birth given
name) finds neither record, and gives no hint, for every role but the adoption team's: through the
app API, FHIR and the pages (tests/web/test_sealed_pages.py). A sealed record answers exactly as an
id that was never used; nothing a role outside the adoption team can read links the two records.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from directory import audit, service
from directory import repository as repo
from directory.db import unit_of_work
from directory.errors import NotFound
from directory.models import AdoptionCreate, AuditEvent, NameIn, Purpose, Role
from directory.service import adoption
from directory.visibility import events_shown
from search.indexer import drain, pending
from tests.directory.test_api import catalogue, new_child
from tests.fixtures.builders import actor, make_child, next_nhs_number

PURPOSE_OF = {
    "directory_admin": "administration",
    "auditor": "audit",
    "data_manager": "administration",
    "adoption_officer": "administration",
}
"""A purpose of use each role may give (auth/purposes.py)."""


def who(role: str = "practitioner", subject: str = "alice", **extra: str) -> dict[str, str]:
    """The development actor header for a role, with a purpose that role may give."""
    fields = {"subject": subject, "role": role, "org": "Cowley School", **extra}
    return {
        "X-Dev-Actor": "; ".join(f"{k}={v}" for k, v in fields.items()),
        "X-Purpose-Of-Use": PURPOSE_OF.get(role, "considering-caf"),
    }


DOB = (date.today() - timedelta(days=365 * 4 + 20)).isoformat()
BIRTH = {"given": "Amelia", "family": "Khan"}
ADOPTIVE = {"given": "Amelia", "family": "Fletcher"}
OUTSIDERS = [r.value for r in Role if r != Role.ADOPTION_OFFICER]


def _index(client: TestClient, engine: Engine) -> None:
    drain(engine, client.app.state.search_backend, wait=True)  # type: ignore[attr-defined]
    assert pending(engine) == 0


def _id(value: object) -> str:
    return str(value).replace("-", "")


def adopt(client: TestClient, engine: Engine, *, carry: list[str] | None = None) -> dict[str, Any]:
    """A birth record (with a carer, an address, a previous name), adopted; the index up to date."""
    ids = catalogue(engine)
    birth_nhs = next_nhs_number()
    birth = new_child(
        client,
        names=[BIRTH, {"given": "Amy", "family": "Khan", "use": "usual"}],
        date_of_birth=DOB,
        identifiers=[{"system": "nhs", "value": birth_nhs}],
    )
    inv = client.post(
        f"/api/v1/children/{birth}/involvements",
        headers=who(practitioner=ids["p0"]),
        json={"service_id": ids["hv"], "role": "health visitor", "level_of_need": 1, "start_date": DOB},
    )
    assert inv.status_code == 201, inv.text
    _index(client, engine)
    # before: the birth identity finds the birth record
    before = client.post("/api/v1/children/search", headers=who(), json={**BIRTH, "birth_date": DOB}).json()[
        "hits"
    ]
    assert [_id(h["child_id"]) for h in before] == [_id(birth)]
    new_nhs = next_nhs_number()
    r = client.post(
        f"/api/v1/children/{birth}/adoption",
        headers=who("adoption_officer", subject="ann"),
        json={
            "names": [ADOPTIVE],
            "nhs_number": new_nhs,
            "address": {"line1": "7 Elm Close", "town": "Oxford", "postcode": "OX4 3DB"},
            "carry_involvements": carry if carry is not None else [],
        },
    )
    assert r.status_code == 201, r.text
    _index(client, engine)
    return {
        "birth": birth,
        "adoptive": str(r.json()["id"]),
        "birth_nhs": birth_nhs,
        "new_nhs": new_nhs,
        "involvement": str(inv.json()["id"]),
        **ids,
    }


def _headers(role: str) -> dict[str, str]:
    return who(role, subject=f"u-{role}")


def _app_search(client: TestClient, role: str, body: dict[str, str]) -> tuple[int, Any]:
    r = client.post("/api/v1/children/search", headers=_headers(role), json=body)
    data = r.json()
    if r.status_code == 200:
        return 200, {"hits": data["hits"], "too_many": data.get("too_many")}
    return r.status_code, data.get("type")


BIRTH_SEARCHES = [
    {"family": "Khan", "birth_date": DOB},
    {"given": "Amelia", "family": "Khan", "birth_date": DOB},
    {"given": "Amelia", "birth_date": DOB},
    {"given": "Amy", "family": "Khan", "birth_date": DOB},
]


def test_the_2009_case_the_birth_identity_finds_nothing_through_the_app_api(
    client: TestClient, engine: Engine
) -> None:
    """Birth surname + date of birth (with or without the birth given name) and the birth NHS number
    find neither record, for every role but the adoption team's; the answer is the one a never-used
    identity gets (no count, no hint)."""
    w = adopt(client, engine)
    for role in OUTSIDERS:
        for body in BIRTH_SEARCHES:
            never = {**body, "family": "Zzyzx"} if "family" in body else {**body, "given": "Zzyzx"}
            assert _app_search(client, role, body) == _app_search(client, role, never), (role, body)
            status, answer = _app_search(client, role, body)
            if status == 200:
                assert answer["hits"] == [], (role, body)
        by_number = _app_search(client, role, {"nhs_number": w["birth_nhs"]})
        assert by_number == _app_search(client, role, {"nhs_number": next_nhs_number()}), role
    # the adoptive record is found by its own identity (by those who may search at all)
    hits = client.post("/api/v1/children/search", headers=who(), json={**ADOPTIVE, "birth_date": DOB}).json()[
        "hits"
    ]
    assert [_id(h["child_id"]) for h in hits] == [_id(w["adoptive"])]
    assert "Khan" not in json.dumps(hits)


def test_the_2009_case_through_fhir_patient_search(client: TestClient, engine: Engine) -> None:
    """FHIR Patient search by the birth identity returns an empty Bundle, as for a never-used one."""
    w = adopt(client, engine)
    queries = [
        {"family": "Khan", "birthdate": DOB},
        {"family": "Khan", "given": "Amelia", "birthdate": DOB},
        {"given": "Amelia", "birthdate": DOB},
        {"name": "Amelia", "birthdate": DOB},
        {"identifier": f"https://fhir.nhs.uk/Id/nhs-number|{w['birth_nhs']}"},
        {"_id": w["birth"]},
    ]
    # (the development header carries each role's usual scopes: of these roles, only a connected
    # system's reach /fhir; every other role is refused there whatever it asks, sealed or not)
    for role in ("system",):
        for params in queries:
            r = client.get("/fhir/Patient", params=params, headers=_headers(role))
            assert r.status_code == 200, (role, params, r.text)
            assert r.json()["total"] == 0 and not r.json().get("entry"), (role, params)
    found = client.get(
        "/fhir/Patient", params={"family": "Fletcher", "birthdate": DOB}, headers=who("system")
    )
    assert [_id(e["resource"]["id"]) for e in found.json()["entry"]] == [_id(w["adoptive"])]


def test_a_sealed_record_answers_exactly_as_an_unknown_id(client: TestClient, engine: Engine) -> None:
    """Card, access log, life cycle, FHIR Patient read, writes: the sealed id and a never-used id get
    the same status and the same body (the id aside), for every role but the adoption team's."""
    w = adopt(client, engine)
    unknown = str(uuid.uuid4())

    def same(method: str, path: str, role: str, body: dict[str, Any] | None = None) -> None:
        a = client.request(method, path.format(w["birth"]), headers=_headers(role), json=body)
        b = client.request(method, path.format(unknown), headers=_headers(role), json=body)
        assert a.status_code == b.status_code, (role, path, a.text, b.text)
        strip = [(w["birth"], "ID"), (_id(w["birth"]), "ID"), (unknown, "ID"), (_id(unknown), "ID")]
        # (each answer names its own request in `instance`)
        ta, tb = (re.sub(r'"instance":"[^"]*"', "", x.text) for x in (a, b))
        for old, new in strip:
            ta, tb = ta.replace(old, new), tb.replace(old, new)
        assert ta == tb, (role, path)

    for role in OUTSIDERS:
        same("GET", "/api/v1/children/{}", role)
        same("GET", "/api/v1/children/{}/access-log", role)
        same("GET", "/api/v1/children/{}/lifecycle", role)
        same("GET", "/api/v1/children/{}/adoption", role)
        same("GET", "/fhir/Patient/{}", role)
        same("POST", "/api/v1/children/{}/shielding", role, {"reason": "x"})
        same("POST", "/api/v1/children/{}/death", role, {"date_of_death": DOB})
    # the adoption team reads it, and the link
    card = client.get(f"/api/v1/children/{w['birth']}", headers=who("adoption_officer", subject="ann"))
    assert card.status_code == 200 and card.json()["status"] == "sealed"
    link = client.get(f"/api/v1/children/{w['adoptive']}/adoption", headers=who("adoption_officer"))
    assert link.status_code == 200
    assert _id(link.json()["sealed_id"]) == _id(w["birth"])
    assert _id(link.json()["adoptive_id"]) == _id(w["adoptive"])


def test_nothing_outside_the_adoption_team_links_the_two_records(client: TestClient, engine: Engine) -> None:
    """Not the adoptive record's card, not its FHIR Patient, not the index, not the audit log as
    auditors and admins read it (pages, access log, FHIR AuditEvent)."""
    w = adopt(client, engine)
    birth, adoptive = w["birth"], w["adoptive"]
    for role in ("designated_practitioner", "practitioner", "directory_admin"):
        card = client.get(f"/api/v1/children/{adoptive}", headers=_headers(role))
        assert card.status_code == 200, card.text
        text = card.text
        assert "Khan" not in text and "Amy" not in text and w["birth_nhs"] not in text
        assert _id(birth) not in text.replace("-", "") and "07700 900777" not in text
        patient = client.get(f"/fhir/Patient/{adoptive}", headers=_headers(role)).text
        assert "Khan" not in patient and _id(birth) not in patient.replace("-", "")
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT child_id, fields FROM search_record")).all()
    assert _id(birth) not in {_id(c) for c, _ in stored}
    assert all("Khan" not in f for _, f in stored)
    with Session(engine) as s:
        for reader in (Role.AUDITOR, Role.DIRECTORY_ADMIN, Role.DESIGNATED_PRACTITIONER, None):
            events = repo.audit_events(s, limit=10_000, role=reader)
            assert events, reader
            for e in events:
                assert _id(birth) not in (e.target_id or "").replace("-", ""), (reader, e.action)
                assert _id(birth) not in (e.detail or "").replace("-", ""), (reader, e.action)
            seen = {e.seq for e in events}
            about = s.execute(
                sa.text("SELECT seq FROM audit_subject WHERE child_id = :c"),
                {"c": uuid.UUID(birth) if engine.dialect.name == "postgresql" else uuid.UUID(birth).hex},
            ).scalars()
            assert not seen & set(about), reader
        assert audit.who_looked(s, child_id=uuid.UUID(birth), role=Role.AUDITOR) == []
        assert audit.who_looked(s, child_id=uuid.UUID(birth), role=Role.ADOPTION_OFFICER)
        # the adoptive record's own history: its creation, nothing about the seal
        actions = [e.action for e in audit.who_looked(s, child_id=uuid.UUID(adoptive), role=Role.AUDITOR)]
        assert "child.seal" not in actions and "child.create" in actions
    log = client.get(f"/api/v1/children/{adoptive}/access-log", headers=who("auditor", subject="aud"))
    assert log.status_code == 200 and _id(birth) not in log.text.replace("-", "")
    # FHIR AuditEvent (search: service.access_log, then who_looked; read by number: events_shown)
    with Session(engine) as s:
        auditor = actor(Role.AUDITOR, purpose=Purpose.AUDIT)
        with pytest.raises(NotFound, match="No child record has that id"):
            service.access_log(s, actor=auditor, child_id=uuid.UUID(birth))
        sealed_seq = s.execute(
            sa.text("SELECT seq FROM audit_event WHERE action = 'child.seal'")
        ).scalar_one()
        by_number = select(AuditEvent).where(AuditEvent.seq == sealed_seq)
        assert s.exec(by_number.where(events_shown(s, Role.AUDITOR))).first() is None
        assert s.exec(by_number.where(events_shown(s, Role.ADOPTION_OFFICER))).first() is not None
    # the link itself: the adoption team only
    for role in OUTSIDERS:
        r = client.get(f"/api/v1/children/{adoptive}/adoption", headers=_headers(role))
        assert r.status_code in (403, 404), role


def test_involvements_are_carried_over_only_when_chosen(client: TestClient, engine: Engine) -> None:
    """Nothing is carried over by default; a chosen involvement is recorded afresh on the new record."""
    w = adopt(client, engine)
    card = client.get(f"/api/v1/children/{w['adoptive']}", headers=who("designated_practitioner"))
    assert card.json()["involvements"] == []
    assert card.json()["related_people"] == [] and card.json()["identifiers"] == [
        {"system": "nhs", "value": w["new_nhs"]}
    ]
    assert [n["family"] for n in card.json()["names"]] == ["Fletcher"]
    # the birth record keeps its involvement, sealed with it
    sealed = client.get(f"/api/v1/children/{w['birth']}", headers=who("adoption_officer"))
    assert [i["id"] for i in sealed.json()["involvements"]] == [w["involvement"]]


def test_a_chosen_involvement_is_carried_over(client: TestClient, engine: Engine) -> None:
    ids = catalogue(engine)
    birth = new_child(client, names=[BIRTH], date_of_birth=DOB)
    inv = client.post(
        f"/api/v1/children/{birth}/involvements",
        headers=who(practitioner=ids["p0"]),
        json={"service_id": ids["hv"], "role": "health visitor", "level_of_need": 1, "start_date": DOB},
    ).json()["id"]
    stranger = str(uuid.uuid4())
    bad = client.post(
        f"/api/v1/children/{birth}/adoption",
        headers=who("adoption_officer"),
        json={"names": [ADOPTIVE], "carry_involvements": [stranger]},
    )
    assert bad.status_code == 422, bad.text
    with engine.connect() as conn:  # nothing was written
        assert conn.execute(sa.text("SELECT count(*) FROM adoption_link")).scalar_one() == 0
    r = client.post(
        f"/api/v1/children/{birth}/adoption",
        headers=who("adoption_officer"),
        json={"names": [ADOPTIVE], "carry_involvements": [inv]},
    )
    assert r.status_code == 201, r.text
    card = client.get(f"/api/v1/children/{r.json()['id']}", headers=who("designated_practitioner")).json()
    assert len(card["involvements"]) == 1 and card["involvements"][0]["id"] != inv
    assert card["involvements"][0]["start_date"] == date.today().isoformat()


@pytest.mark.parametrize("role", [r for r in OUTSIDERS])
def test_only_the_adoption_team_records_an_adoption(client: TestClient, engine: Engine, role: str) -> None:
    birth = new_child(client, names=[BIRTH], date_of_birth=DOB)
    r = client.post(
        f"/api/v1/children/{birth}/adoption",
        headers=who(role),
        json={"names": [ADOPTIVE]},
    )
    assert r.status_code == 403, r.text
    assert (
        client.get(f"/api/v1/children/{birth}", headers=who("directory_admin")).json()["status"] == "active"
    )


def test_eight_adoptions_of_one_record_at_once_make_one(engine: Engine) -> None:
    """The same adoption sent eight times at once: one new record and one link; the others are told
    the birth record does not exist (it is sealed by then), and nothing is half-written."""
    with unit_of_work(engine) as s:
        birth = make_child(s, names=[BIRTH], date_of_birth=DOB)
    officer = actor(Role.ADOPTION_OFFICER, subject="ann", purpose=Purpose.ADMINISTRATION)
    barrier = threading.Barrier(8)

    def attempt(_: int) -> str:
        barrier.wait()
        try:
            with unit_of_work(engine) as s:
                adoption.adopt(
                    s,
                    actor=officer,
                    child_id=birth,
                    data=AdoptionCreate(names=[NameIn(**ADOPTIVE)]),
                    today=date.today(),
                )
            return "made"
        except NotFound:
            return "gone"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    assert outcomes.count("made") == 1 and outcomes.count("gone") == 7, outcomes
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM adoption_link")).scalar_one() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM child")).scalar_one() == 2
        assert conn.execute(sa.text("SELECT count(*) FROM child WHERE status = 'sealed'")).scalar_one() == 1
