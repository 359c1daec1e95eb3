"""FHIR NDJSON import: one declaration of identifier systems (interop/systems.py) for /fhir and the
import; a system the directory does not know is kept exactly as sent and reads back unchanged from
/fhir; a Patient's shield is kept."""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from childindex.feeds import reconcile_files
from childindex.importing import import_files
from directory.importer import Rejection
from directory.importer.precedence import Precedence
from directory.models import Actor, Role
from interop import systems as S
from interop.mapping.patient import patient_in
from interop.ndjson import read_ndjson
from search.embedded import EmbeddedBackend
from tests.directory.test_importer import nhs
from tests.interop.conftest import World, system_headers

ADMIN = Actor(subject="cli:test", role=Role.DIRECTORY_ADMIN, client_id="childindex-cli")
TODAY = date(2026, 11, 23)
HOSPITAL = "https://hospital.example.org/fhir/Id/mrn"
URN = "urn:oid:2.16.840.1.113883.2.1.4.1"


def patient(
    pid: str, *identifiers: tuple[str, str], shield: str | None = None, family: str = "Okafor"
) -> str:
    res: dict[str, object] = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": s, "value": v} for s, v in identifiers],
        "name": [{"use": "official", "family": family, "given": ["Chidi"]}],
        "gender": "male",
        "birthDate": "2016-05-04",
        "address": [{"line": ["7 Rose Hill"], "city": "Oxford", "postalCode": "OX4 1AB"}],
    }
    if shield == "extension":
        res["extension"] = [{"url": S.EXT_SHIELDED, "valueBoolean": True}]
    elif shield == "label":
        res["meta"] = {"security": [{"system": S.V3_CONFIDENTIALITY, "code": "R"}]}
    return json.dumps(res)


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "Patient.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_import_and_fhir_writes_read_identifier_systems_the_same_way() -> None:
    # ours by their declared URIs, others kept exactly as sent, no URI refused: one rule
    assert S.received_identifier_system(S.NHS_NUMBER) == "nhs"
    assert S.received_identifier_system(S.UPN) == "upn"
    assert S.received_identifier_system(S.LOCAL_PREFIX + "mosaic") == "local:mosaic"
    assert S.received_identifier_system(HOSPITAL) == HOSPITAL
    assert S.received_identifier_system(URN) == URN
    assert S.received_identifier_system("mosaic") is None
    assert S.fhir_identifier_system(HOSPITAL) == HOSPITAL


def test_an_unknown_system_is_kept_as_sent_and_a_bad_one_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        patient("a", (S.NHS_NUMBER, nhs(41)), (HOSPITAL, "MRN-00017"), (URN, "X1")),
        patient("b", ("not a uri", "1")),
    )
    rows = list(read_ndjson(path, today=TODAY))
    assert rows[0].identifiers == [("nhs", nhs(41)), (HOSPITAL, "MRN-00017"), (URN, "X1")]  # type: ignore[union-attr]
    assert isinstance(rows[1], Rejection) and rows[1].field == "identifier.system"
    assert "not a uri" not in rows[1].reason


@pytest.mark.parametrize("shield", ["extension", "label"])
def test_a_patients_shield_is_kept(engine: Engine, tmp_path: Path, shield: str) -> None:
    path = write(tmp_path, patient("a", (HOSPITAL, f"MRN-{shield}"), shield=shield))
    result = import_files(engine, [path], fmt="fhir", actor=ADMIN, today=TODAY)
    assert result.created == 1
    with engine.connect() as conn:
        shielded, reason = conn.execute(sa.text("SELECT shielded, shielded_reason FROM child")).one()
    assert shielded and reason


def test_a_foreign_identifier_round_trips_through_fhir_unchanged(
    api: TestClient, engine: Engine, state: AuthState, world: World, tmp_path: Path
) -> None:
    path = write(tmp_path, patient("a", (HOSPITAL, "MRN-00017"), (URN, "X1"), family="Roundtrip"))
    backend = EmbeddedBackend(engine)
    backend.ensure_ready()
    result = reconcile_files(
        engine,
        [path],
        fmt="fhir",
        source="fhir",
        backend=backend,
        precedence=Precedence(),
        actor=ADMIN,
        today=TODAY,
    )
    assert result.created == 1, result.lines
    with engine.connect() as conn:
        child = uuid.UUID(
            str(
                conn.execute(
                    sa.text("SELECT child_id FROM child_identifier WHERE value = 'MRN-00017'")
                ).scalar_one()
            )
        )
    r = api.get(f"/fhir/Patient/{child}", headers=system_headers(state, engine))
    assert r.status_code == 200, r.text
    assert {"system": HOSPITAL, "value": "MRN-00017"} in r.json()["identifier"]
    assert {"system": URN, "value": "X1"} in r.json()["identifier"]
    # read back and imported again: the same record, nothing changes
    again = tmp_path / "again.ndjson"
    again.write_text(json.dumps({**r.json(), "id": "again"}) + "\n", encoding="utf-8")
    second = reconcile_files(
        engine,
        [again],
        fmt="fhir",
        source="fhir",
        backend=backend,
        precedence=Precedence(),
        actor=ADMIN,
        today=TODAY,
    )
    assert (second.created, second.unchanged, second.held, len(second.rejected)) == (0, 1, 0, 0), second.lines


@pytest.mark.parametrize("shield", [None, "extension", "label"])
@pytest.mark.parametrize("use", ["official", "old", "maiden", "nickname"])
def test_the_import_and_fhir_writes_read_shields_and_name_uses_the_same_way(
    tmp_path: Path, shield: str | None, use: str
) -> None:
    res = json.loads(patient(str(uuid.uuid4()), (HOSPITAL, "MRN-1"), shield=shield))
    res["name"].append({"use": use, "family": "Adeyemi", "given": ["Chidi"], "period": {"end": "2020-01-01"}})
    (row,) = read_ndjson(write(tmp_path, json.dumps(res)), today=TODAY)
    assert not isinstance(row, Rejection), row
    read = patient_in(res)
    assert row.shielded is read.shielded is (shield is not None)
    imported = {(n.family, n.use) for n in row.data.names}
    assert imported == {(n["family"], n["use"]) for n in read.names}
