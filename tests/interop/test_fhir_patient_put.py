"""PUT /fhir/Patient/{id} for connected systems (If-Match, 412), and Patient/_history and vread from the
record's versions; what a shielded record withholds stays withheld in every version."""

from __future__ import annotations

import json
import uuid
from copy import deepcopy
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from directory.db import unit_of_work
from directory.models import Role
from tests.conftest import count
from tests.fixtures.builders import make_child
from tests.interop.conftest import FHIR, TRUST_SCOPES, World, system_headers
from tests.interop.test_fhir_api import outcome, valid

PATIENT_WRITE = (*TRUST_SCOPES, "system/Patient.rus")


def _feed(state: AuthState, engine: Engine) -> dict[str, str]:
    return {**system_headers(state, engine, subject="pds-feed", scopes=PATIENT_WRITE), "Content-Type": FHIR}


def _read(api: TestClient, h: dict[str, str], child: uuid.UUID) -> dict[str, Any]:
    r = api.get(f"/fhir/Patient/{child}", headers=h)
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == f'W/"{r.json()["meta"]["versionId"]}"'
    return r.json()  # type: ignore[no-any-return]


def _unchanged(engine: Engine) -> tuple[int, ...]:
    with engine.connect() as c:
        sql = "SELECT count(*) FROM audit_event WHERE action = 'child.details.change'"
        changes = int(c.execute(sa.text(sql)).scalar_one())
    return (count(engine, "child_version"), count(engine, "outbox"), count(engine, "child_name"), changes)


def test_a_system_changes_a_child_with_put_and_if_match(
    api: TestClient, state: AuthState, engine: Engine, world: World
) -> None:
    h = _feed(state, engine)
    p = _read(api, h, world.child)
    version = int(p["meta"]["versionId"])
    p["name"] = [{"use": "official", "family": "Taylor", "given": ["Olivia"]}]
    p["gender"] = "other"
    p["address"] = [{"use": "home", "line": ["12 Iffley Road"], "city": "Oxford", "postalCode": "OX4 1EA"}]
    r = api.put(f"/fhir/Patient/{world.child}", headers={**h, "If-Match": f'W/"{version}"'}, json=p)
    assert r.status_code == 200, r.text
    body = valid(r.json())
    assert body["meta"]["versionId"] == str(version + 1) and r.headers["etag"] == f'W/"{version + 1}"'
    assert r.headers["location"].endswith(f"/fhir/Patient/{world.child}/_history/{version + 1}")
    names = [(n["use"], n["family"]) for n in body["name"]]
    assert names[0] == ("official", "Taylor") and ("old", "Smith") in names
    assert body["gender"] == "other" and body["address"][0]["postalCode"] == "OX4 1EA"
    with engine.connect() as c:
        detail = c.execute(
            sa.text("SELECT detail FROM audit_event WHERE action = 'child.details.change'")
        ).scalar_one()
    assert json.loads(detail) == {"changed": "name, sex, address", "source": "fhir"}
    # the same PUT again changes nothing: same version
    again = api.put(f"/fhir/Patient/{world.child}", headers={**h, "If-Match": f'W/"{version + 1}"'}, json=p)
    assert again.status_code == 200 and again.json()["meta"]["versionId"] == str(version + 1)


def test_stale_if_match_is_412_and_bad_input_400_and_nothing_changes(
    api: TestClient, state: AuthState, engine: Engine, world: World
) -> None:
    h = _feed(state, engine)
    p = _read(api, h, world.child)
    before = _unchanged(engine)
    stale = deepcopy(p)
    stale["gender"] = "male"
    outcome(
        api.put(f"/fhir/Patient/{world.child}", headers={**h, "If-Match": 'W/"99"'}, json=stale),
        412,
        "conflict",
    )
    for field, value in (
        ("birthDate", "2020-02-30"),
        ("birthDate", (date.today() + timedelta(days=5)).isoformat()),
        ("address", [{"line": ["1 Road"], "postalCode": "NOT A PC"}]),
        ("gender", "robot"),
    ):
        bad = {**deepcopy(p), "gender": "male", field: value}
        r = api.put(
            f"/fhir/Patient/{world.child}",
            headers={**h, "If-Match": f'W/"{p["meta"]["versionId"]}"'},
            json=bad,
        )
        assert r.status_code in (400, 422), (field, r.text)
        assert r.json()["resourceType"] == "OperationOutcome"
    assert _unchanged(engine) == before
    assert _read(api, h, world.child)["meta"]["versionId"] == p["meta"]["versionId"]


def test_only_connected_systems_with_the_scope_may_put(
    api: TestClient, state: AuthState, engine: Engine, world: World
) -> None:
    reader = {**system_headers(state, engine, subject="reader"), "Content-Type": FHIR}
    p = _read(api, reader, world.child)
    r = api.put(f"/fhir/Patient/{world.child}", headers=reader, json=p)
    assert r.status_code == 403 and "Patient.u" in r.text
    person = {
        **system_headers(state, engine, subject="pat", role=Role.PRACTITIONER, scopes=("user/Patient.rus",)),
        "Content-Type": FHIR,
    }
    assert api.put(f"/fhir/Patient/{world.child}", headers=person, json=p).status_code == 403


def test_an_unborn_child_is_born_over_fhir(
    api: TestClient, state: AuthState, engine: Engine, world: World
) -> None:
    with unit_of_work(engine) as s:
        unborn = make_child(
            s, date_of_birth=None, expected_delivery_date=(date.today() + timedelta(days=20)).isoformat()
        )
    h = _feed(state, engine)
    p = _read(api, h, unborn)
    p["birthDate"] = date.today().isoformat()
    r = api.put(f"/fhir/Patient/{unborn}", headers=h, json=p)
    assert r.status_code == 200, r.text
    assert r.json()["birthDate"] == date.today().isoformat() and r.json()["id"] == str(unborn)


def test_history_and_vread(api: TestClient, state: AuthState, engine: Engine, world: World) -> None:
    h = _feed(state, engine)
    p = _read(api, h, world.child)
    first = int(p["meta"]["versionId"])
    p["name"] = [{"use": "official", "family": "Taylor", "given": ["Olivia"]}]
    assert api.put(f"/fhir/Patient/{world.child}", headers=h, json=p).status_code == 200
    r = api.get(f"/fhir/Patient/{world.child}/_history", headers=h)
    assert r.status_code == 200, r.text
    bundle = valid(r.json())
    versions = [int(e["resource"]["meta"]["versionId"]) for e in bundle["entry"]]
    assert versions[0] == first + 1 and versions == sorted(versions, reverse=True) and versions[-1] == 1
    assert bundle["entry"][-1]["request"]["method"] == "POST"
    old = api.get(f"/fhir/Patient/{world.child}/_history/{first}", headers=h)
    assert old.status_code == 200 and old.headers["etag"] == f'W/"{first}"'
    assert old.json()["name"][0]["family"] == "Smith"
    new = api.get(f"/fhir/Patient/{world.child}/_history/{first + 1}", headers=h)
    assert new.json()["name"][0]["family"] == "Taylor"
    outcome(api.get(f"/fhir/Patient/{world.child}/_history/999", headers=h), 404, "not-found")
    outcome(api.get(f"/fhir/Patient/{world.child}/_history/x1", headers=h), 404, "not-found")


def test_a_shielded_childs_history_withholds_its_whereabouts(
    api: TestClient, state: AuthState, engine: Engine, world: World
) -> None:
    h = _feed(state, engine)
    p = _read(api, h, world.shielded_child)
    assert "address" not in p  # the system may not see where the child lives
    p["gender"] = "other"
    r = api.put(f"/fhir/Patient/{world.shielded_child}", headers=h, json=p)
    assert r.status_code == 200, r.text
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT line1 FROM child_address WHERE until IS NULL")).scalars().all()
    history = api.get(f"/fhir/Patient/{world.shielded_child}/_history", headers=h)
    assert history.status_code == 200
    for line in rows:
        assert line not in history.text
    assert all("address" not in e["resource"] for e in history.json()["entry"])
