"""One minimum-criteria rule for every search of children: the app's search, FHIR `Patient?` and
`$match` accept and refuse the same criteria (search.criteria.minimum_met), and each finds the child
when it accepts."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from interop import systems as S
from tests.interop.conftest import FHIR, World, system_headers

SCOPES = ("system/Patient.rs", "directory.search")

# (criteria, accepted): the world's child is Olivia Smith of OX4 1AB
CASES: list[tuple[dict[str, str], bool]] = [
    ({"family": "Smith", "given": "Olivia", "birthdate": "<dob>"}, True),
    ({"family": "Smith", "given": "Olivia", "postcode": "OX4 1AB"}, True),
    ({"family": "Smith", "postcode": "ox41ab"}, True),
    ({"given": "Olivia", "postcode": "OX4 1AB"}, True),
    ({"family": "Smith", "birthdate": "<dob>"}, True),
    ({"nhs": "<nhs>"}, True),
    ({"family": "Smith", "given": "Olivia", "postcode": "OX4"}, False),
    ({"family": "Smith", "given": "Olivia", "postcode": "OX4 1"}, False),
    ({"family": "Smith", "given": "Olivia"}, False),
    ({"postcode": "OX4 1AB"}, False),
    ({"birthdate": "<dob>"}, False),
    ({"birthdate": "<dob>", "postcode": "OX4 1AB"}, False),
]


def _fill(criteria: dict[str, str], dob: str, nhs: str) -> dict[str, str]:
    return {k: v.replace("<dob>", dob).replace("<nhs>", nhs) for k, v in criteria.items()}


def _fhir_search(api: TestClient, h: dict[str, str], c: dict[str, str]) -> tuple[bool, set[str]]:
    names = {"family": "family", "given": "given", "birthdate": "birthdate", "postcode": "address-postalcode"}
    params = {names[k]: v for k, v in c.items() if k in names}
    if "nhs" in c:
        params["identifier"] = f"{S.NHS_NUMBER}|{c['nhs']}"
    r = api.get("/fhir/Patient", headers=h, params=params)
    if r.status_code != 200:
        assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome", r.text
        return False, set()
    return True, {e["resource"]["id"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"}


def _match(api: TestClient, h: dict[str, str], c: dict[str, str]) -> tuple[bool, set[str]]:
    patient: dict[str, Any] = {"resourceType": "Patient"}
    name = {k: v for k, v in (("family", c.get("family")), ("given", c.get("given"))) if v}
    if name:
        patient["name"] = [{**name, "given": [name["given"]]} if "given" in name else name]
    if "birthdate" in c:
        patient["birthDate"] = c["birthdate"]
    if "postcode" in c:
        patient["address"] = [{"postalCode": c["postcode"]}]
    if "nhs" in c:
        patient["identifier"] = [{"system": S.NHS_NUMBER, "value": c["nhs"]}]
    body = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient}]}
    r = api.post("/fhir/Patient/$match", headers={**h, "Content-Type": FHIR}, json=body)
    if r.status_code != 200:
        assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome", r.text
        return False, set()
    return True, {e["resource"]["id"] for e in r.json().get("entry", [])}


def _app_search(api: TestClient, h: dict[str, str], c: dict[str, str]) -> tuple[bool, set[str]]:
    names = {
        "family": "family",
        "given": "given",
        "birthdate": "birth_date",
        "postcode": "postcode",
        "nhs": "nhs_number",
    }
    r = api.post("/api/v1/children/search", headers=h, json={names[k]: v for k, v in c.items()})
    if r.status_code != 200:
        assert r.status_code in (400, 422) and r.headers["content-type"].startswith(
            "application/problem+json"
        ), r.text
        return False, set()
    return True, {hit["child_id"].replace("-", "") for hit in r.json()["hits"]}


@pytest.mark.parametrize(
    ("criteria", "accepted"), CASES, ids=[" ".join(sorted(c)) + f" {a}" for c, a in CASES]
)
def test_every_surface_accepts_and_refuses_the_same_criteria(
    api: TestClient,
    engine: Engine,
    state: AuthState,
    world: World,
    app: Any,
    criteria: dict[str, str],
    accepted: bool,
) -> None:
    from search.indexer import drain

    drain(engine, app.state.search_backend, wait=True)
    h = system_headers(state, engine, scopes=SCOPES)
    dob = api.get(f"/fhir/Patient/{world.child}", headers=h).json()["birthDate"]
    c = _fill(criteria, dob, world.nhs)
    answers = {
        "Patient?": _fhir_search(api, h, c),
        "$match": _match(api, h, c),
        "app search": _app_search(api, h, c),
    }
    assert {surface: ok for surface, (ok, _) in answers.items()} == dict.fromkeys(answers, accepted)
    if accepted:  # and each finds the child
        for surface, (_, found) in answers.items():
            assert {f.replace("-", "") for f in found} >= {world.child.hex}, surface
