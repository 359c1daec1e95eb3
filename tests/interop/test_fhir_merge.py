"""FHIR after a merge: a Patient read of the duplicate says it was replaced by the record kept."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from directory import service
from directory.db import unit_of_work
from directory.models import Role
from tests.fixtures.builders import actor, make_child
from tests.interop.conftest import World, system_headers


def test_patient_read_of_a_merged_record_links_to_the_record_kept(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    with unit_of_work(engine) as s:
        keep = make_child(s)
        service.merge_children(
            s, actor=actor(Role.DATA_MANAGER), duplicate_id=world.child, into_id=keep, reason="same child"
        )
    headers = system_headers(state, engine)
    r = api.get(f"/fhir/Patient/{world.child}", headers=headers)
    assert r.status_code == 200, r.text
    patient = r.json()
    assert patient["link"] == [{"other": {"reference": f"Patient/{keep}"}, "type": "replaced-by"}]
    assert patient["active"] is False and not patient.get("identifier")  # they moved to the kept record
    # The duplicate's NHS number now finds the kept record.
    found = api.get(
        f"/fhir/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{world.nhs}", headers=headers
    )
    assert found.status_code == 200, found.text
    ids = [
        e["resource"]["id"]
        for e in found.json().get("entry", [])
        if e["resource"]["resourceType"] == "Patient"
    ]
    assert ids == [str(keep)]
