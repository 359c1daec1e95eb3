"""The bulk import's FHIR NDJSON reader reads what /fhir writes: identifiers by interop's own
systems (the UPN as a UPN), the unborn child's expected delivery date, parental responsibility."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from childindex.importing import import_files
from directory.db import unit_of_work
from directory.identifiers import upn_check_letter
from interop import systems as S
from tests.directory.seed_fixtures import ACTOR, sqlite_engine
from tests.fixtures.builders import make_child, next_nhs_number
from tests.interop.conftest import system_headers


def _rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def test_a_patient_as_fhir_writes_it_imports_with_its_upn_and_edd(
    api: TestClient, engine: Engine, state: AuthState, tmp_path: Path
) -> None:
    nhs, upn_body = next_nhs_number(), "990200121234"
    upn = upn_check_letter(upn_body) + upn_body
    edd = date.today() + timedelta(days=60)
    with unit_of_work(engine) as s:
        pupil = make_child(
            s,
            identifiers=[
                {"system": "nhs", "value": nhs},
                {"system": "upn", "value": upn},
                {"system": "local:mosaic", "value": "M-2001"},
            ],
        )
        unborn = make_child(
            s,
            names=[{"given": "Baby", "family": "Ward"}],
            date_of_birth=None,
            expected_delivery_date=edd.isoformat(),
            sex="unknown",
            identifiers=[{"system": "local:mosaic", "value": "M-2002"}],
        )
    h = system_headers(state, engine)
    patients = []
    for child in (pupil, unborn):
        r = api.get(f"/fhir/Patient/{child}", headers=h)
        assert r.status_code == 200, r.text
        patients.append(r.json())
    assert {"system": S.UPN, "value": upn} in patients[0]["identifier"]
    assert any(e["url"] == S.EXT_EXPECTED_DELIVERY for e in patients[1]["extension"])
    r = api.get(f"/fhir/RelatedPerson?patient={pupil}", headers=h)
    assert r.status_code == 200, r.text
    people = [e["resource"] for e in r.json()["entry"]]
    assert [p["resourceType"] for p in people] == ["RelatedPerson"]

    patient_file, people_file = tmp_path / "Patient.ndjson", tmp_path / "RelatedPerson.ndjson"
    patient_file.write_text("\n".join(json.dumps(p) for p in patients) + "\n", encoding="utf-8")
    people_file.write_text("\n".join(json.dumps(p) for p in people) + "\n", encoding="utf-8")
    target = sqlite_engine(tmp_path, "elsewhere.db")
    result = import_files(target, [patient_file, people_file], fmt="fhir", actor=ACTOR)

    assert result.rejected == [] and result.created == 2 and result.related_people == 1
    assert sorted(_rows(target, "SELECT system, value FROM child_identifier")) == sorted(
        [("local:mosaic", "M-2001"), ("local:mosaic", "M-2002"), ("nhs", nhs), ("upn", upn)]
    )
    assert _rows(
        target, "SELECT expected_delivery_date FROM child WHERE expected_delivery_date IS NOT NULL"
    ) == [(edd.isoformat(),)]
    assert _rows(target, "SELECT relationship, parental_responsibility FROM related_person") == [
        ("mother", 1)
    ]
