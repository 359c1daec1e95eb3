"""FHIR after an adoption and an archive, with real access tokens for each kind of caller (issue #22):
the birth identity finds nothing by Patient search, and a sealed or archived Patient reads exactly as
an id that was never used."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from auth.deps import AuthState
from directory.db import unit_of_work
from directory.models import AdoptionCreate, ArchiveReason, Child, NameIn, Purpose, Role, utcnow
from directory.service import adoption, lifecycle
from tests.fixtures.builders import actor, make_child
from tests.interop.conftest import World, system_headers

CALLERS = [
    (Role.SYSTEM, None, "direct-care"),
    (Role.PRACTITIONER, ("user/Patient.rs",), "direct-care"),
    (Role.DESIGNATED_PRACTITIONER, ("user/Patient.rs",), "direct-care"),
    (Role.CHILD_PROTECTION, ("user/Patient.rs",), "safeguarding-concern"),
    (Role.LOCAL_DELIVERY_TEAM, ("user/Patient.rs",), "direct-care"),
]


def _headers(
    state: AuthState, engine: Engine, role: Role, scopes: tuple[str, ...] | None, purpose: str
) -> dict[str, str]:
    if scopes is None:
        return system_headers(state, engine, subject=f"who-{role.value}", role=role, purpose=purpose)
    return system_headers(
        state, engine, subject=f"who-{role.value}", role=role, purpose=purpose, scopes=scopes
    )


def _same(api: TestClient, h: dict[str, str], hidden: uuid.UUID) -> None:
    a = api.get(f"/fhir/Patient/{hidden}", headers=h)
    unknown = uuid.uuid4()
    b = api.get(f"/fhir/Patient/{unknown}", headers=h)
    assert a.status_code == b.status_code == 404, a.text
    ta = a.text.replace(str(hidden), "ID").replace(hidden.hex, "ID")
    tb = b.text.replace(str(unknown), "ID").replace(unknown.hex, "ID")
    assert re.sub(r"[0-9a-f]{32}", "", ta) == re.sub(r"[0-9a-f]{32}", "", tb)


def test_the_birth_identity_finds_nothing_and_a_sealed_patient_reads_as_unknown(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h0 = system_headers(state, engine)
    dob = api.get(f"/fhir/Patient/{world.child}", headers=h0).json()["birthDate"]
    officer = actor(Role.ADOPTION_OFFICER, subject="ann", purpose=Purpose.ADMINISTRATION)
    with Session(engine, expire_on_commit=False) as s:
        new = adoption.adopt(
            s,
            actor=officer,
            child_id=world.child,
            data=AdoptionCreate(names=[NameIn(given="Olivia", family="Harper")]),
            today=date.today(),
        )
        s.commit()
    for role, scopes, purpose in CALLERS:
        h = _headers(state, engine, role, scopes, purpose)
        for query in (
            f"family=Smith&birthdate={dob}",
            f"family=Smith&given=Olivia&birthdate={dob}",
            f"given=Olivia&birthdate={dob}",
            f"name=Olivia&birthdate={dob}",
            f"family=Jones&birthdate={dob}",  # the birth record's previous name
            f"identifier=https://fhir.nhs.uk/Id/nhs-number|{world.nhs}",
            f"_id={world.child}",
        ):
            r = api.get(f"/fhir/Patient?{query}", headers=h)
            assert r.status_code == 200, (role, query, r.text)
            assert r.json()["total"] == 0, (role, query)
        _same(api, h, world.child)
        # the new record, by its own identity
        found = api.get(f"/fhir/Patient?family=Harper&birthdate={dob}", headers=h).json()
        assert [e["resource"]["id"] for e in found.get("entry", [])] in ([new.id.hex], [str(new.id)]), role


def test_an_archived_patient_reads_as_unknown_and_is_not_found(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    born = date.today() - timedelta(days=365 * 8)
    with unit_of_work(engine) as s:
        child = make_child(
            s, names=[{"given": "Ezekiel", "family": "Marlowe"}], date_of_birth=born.isoformat()
        )
        record = s.get(Child, child)
        assert record is not None
        lifecycle.archive(
            s, actor=actor(Role.DIRECTORY_ADMIN), child=record, reason=ArchiveReason.DIED, now=utcnow()
        )
    for role, scopes, purpose in CALLERS:
        h = _headers(state, engine, role, scopes, purpose)
        _same(api, h, child)
        r = api.get(f"/fhir/Patient?family=Marlowe&birthdate={born.isoformat()}", headers=h)
        assert r.status_code == 200 and r.json()["total"] == 0, role
        r = api.get(f"/fhir/Patient?_id={child}", headers=h)
        assert r.json()["total"] == 0, role
