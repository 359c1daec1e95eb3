"""/fhir/CarePlan: a TAC's plan, read and searched by patient, shown as the card shows it (issue #18
item 6): an owner in a sensitive service withheld, a shielded child's plan not there, its
lastUpdated moved by each action. Real tokens, production mode, SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from directory.db import unit_of_work
from directory.models import ActionCreate, Role, utcnow
from directory.service import plan
from tests.directory.test_plan import Plan, build
from tests.fixtures.builders import actor
from tests.interop.conftest import system_headers
from tests.interop.test_fhir_api import valid

SCOPES = ("user/CarePlan.rs", "user/Patient.rs")


def _person(state: AuthState, engine: Engine, subject: str, role: Role = Role.PRACTITIONER) -> dict[str, str]:
    return system_headers(state, engine, subject=subject, scopes=SCOPES, role=role)


def _add(engine: Engine, p: Plan, owner: uuid.UUID | str) -> None:
    data = ActionCreate.model_validate(
        {"title": "Book a hearing test", "area": "child.health", "owner": owner, "due_date": date.today()}
    )
    with unit_of_work(engine) as s:
        plan.add_action(
            s, actor=actor(subject="sam", practitioner_id=p.sam), tac_id=p.tac, data=data, now=utcnow()
        )


def test_a_care_plan_shows_the_actions_as_the_card_would(
    api: TestClient, engine: Engine, state: AuthState
) -> None:
    p = build(engine)
    olly = _person(state, engine, "olly")
    before = api.get(f"/fhir/CarePlan/{p.tac}", headers=olly)
    assert before.status_code == 200, before.text
    assert "activity" not in valid(before.json()) and before.json()["status"] == "active"
    for owner in (p.tess, p.nia, "family"):
        _add(engine, p, owner)
    read = api.get(f"/fhir/CarePlan/{p.tac}", headers=olly)
    body = valid(read.json())
    assert body["meta"]["lastUpdated"] > before.json()["meta"]["lastUpdated"]  # each action moves it
    performers = sorted(str(a["detail"].get("performer", [{}])[0].get("display")) for a in body["activity"])
    assert performers == ["None", "Tess Vale", "the family"]  # Nia works in a sensitive service
    assert "Nia" not in read.text and str(p.nia) not in read.text
    assert {a["detail"]["status"] for a in body["activity"]} == {"not-started"}
    assert body["careTeam"] == [{"reference": f"CareTeam/{p.tac}"}] and body["intent"] == "plan"
    found = valid(api.get(f"/fhir/CarePlan?patient=Patient/{p.child}", headers=olly).json())
    assert [e["resource"] for e in found["entry"] if e["search"]["mode"] == "match"] == [body]
    designated = api.get(
        f"/fhir/CarePlan/{p.tac}", headers=_person(state, engine, "dee", Role.DESIGNATED_PRACTITIONER)
    )
    assert "Nia Patel" in designated.text


def test_a_shielded_childs_care_plan_is_not_there(api: TestClient, engine: Engine, state: AuthState) -> None:
    p = build(engine, shielded=True)
    olly = _person(state, engine, "olly")
    hidden = api.get(f"/fhir/CarePlan/{p.tac}", headers=olly)
    unknown = api.get(f"/fhir/CarePlan/{uuid.uuid4()}", headers=olly)
    assert hidden.status_code == unknown.status_code == 404
    found = api.get(f"/fhir/CarePlan?patient=Patient/{p.child}", headers=olly).json()
    assert [e for e in found.get("entry", []) if e["search"]["mode"] == "match"] == []
    shown = api.get(
        f"/fhir/CarePlan/{p.tac}", headers=_person(state, engine, "dee", Role.DESIGNATED_PRACTITIONER)
    )
    assert shown.status_code == 200
