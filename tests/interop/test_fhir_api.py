"""The /fhir surface over HTTP: read, search, includes, paging, scopes, rules, audit, writes, Bundles."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from fhir.resources.R4B import get_fhir_model_class
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from directory.models import Role
from interop import systems as S
from tests.conftest import count
from tests.interop.conftest import FHIR, World, system_headers


def valid(body: dict[str, Any]) -> dict[str, Any]:
    """Validate a response body (and every resource in a Bundle) with the R4B models."""
    get_fhir_model_class(body["resourceType"]).model_validate(body)
    return body


def outcome(r: Any, status: int, code: str) -> str:
    """Assert an OperationOutcome with this status and issue code; return the diagnostics."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(FHIR)
    body = valid(r.json())
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code, body
    return str(body["issue"][0]["diagnostics"])


def types(bundle: dict[str, Any]) -> list[str]:
    """The resource types in a Bundle, in order."""
    return [e["resource"]["resourceType"] for e in bundle.get("entry", [])]


def audit_actions(engine: Engine) -> list[str]:
    """Every audit action, oldest first."""
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT action FROM audit_event ORDER BY seq")).scalars())


def test_metadata_is_a_truthful_public_capability_statement(api: TestClient) -> None:
    r = api.get("/fhir/metadata")
    assert r.status_code == 200 and r.headers["content-type"].startswith(FHIR)
    cs = valid(r.json())
    assert cs["fhirVersion"] == "4.0.1"
    rest = cs["rest"][0]
    by_type = {x["type"]: x for x in rest["resource"]}
    assert {i["code"] for i in by_type["EpisodeOfCare"]["interaction"]} == {
        "read",
        "search-type",
        "create",
        "update",
        "vread",
        "history-instance",
        "history-type",  # for reads in bulk (directory.export)
    }
    assert {i["code"] for i in by_type["Patient"]["interaction"]} == {
        "read",
        "search-type",
        "update",  # connected systems change a child's details (issue #22)
        "vread",
        "history-instance",
        "history-type",
    }
    assert by_type["Patient"]["versioning"] == "versioned-update"
    assert "EpisodeOfCare:patient" in by_type["Patient"]["searchRevInclude"]
    assert {p["name"] for p in by_type["Patient"]["searchParam"]} >= {"identifier", "birthdate", "family"}
    uris = {e["url"]: e["valueUri"] for e in rest["security"]["extension"][0]["extension"]}
    assert uris["token"] == "http://testserver/oauth/token"
    # only what is implemented: every declared interaction answers (not 404/405)
    for kind, res in by_type.items():
        for interaction in res["interaction"]:
            if interaction["code"] == "search-type":
                assert api.get(f"/fhir/{kind}").status_code == 401, kind
            if interaction["code"] == "read":
                assert api.get(f"/fhir/{kind}/x").status_code == 401, kind


def test_read_patient_is_audited_and_validates(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = system_headers(state, engine)
    r = api.get(f"/fhir/Patient/{world.child}", headers=h)
    assert r.status_code == 200, r.text
    patient = valid(r.json())
    assert r.headers["etag"] == 'W/"1"'
    # Last-Modified (an HTTP date, to the second) is meta.lastUpdated.
    modified = parsedate_to_datetime(r.headers["last-modified"])
    updated = datetime.fromisoformat(patient["meta"]["lastUpdated"])
    assert modified == updated.replace(microsecond=0)
    assert {"system": S.NHS_NUMBER, "value": world.nhs} in patient["identifier"]
    assert any(n["use"] == "old" and n["family"] == "Jones" for n in patient["name"])
    assert patient["address"][0]["postalCode"] == "OX4 1AB"
    assert audit_actions(engine)[-1] == "child.read"


def test_whole_picture_in_one_call_hides_the_sensitive_involvement(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = system_headers(state, engine)
    q = (
        f"/fhir/Patient?identifier={S.NHS_NUMBER}|{world.nhs}&_revinclude=EpisodeOfCare:patient"
        "&_revinclude=Flag:patient&_revinclude=CareTeam:patient&_revinclude=RelatedPerson:patient"
        "&_include=Patient:general-practitioner"
    )
    r = api.get(q, headers=h)
    assert r.status_code == 200, r.text
    bundle = valid(r.json())
    assert bundle["total"] == 1
    assert sorted(types(bundle)) == [
        "EpisodeOfCare",
        "Flag",
        "Flag",
        "Organization",
        "Patient",
        "RelatedPerson",
    ]
    episodes = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "EpisodeOfCare"]
    assert [e["id"] for e in episodes] == [str(world.involvement)]  # the sexual-health one is not shown
    flags = {
        e["resource"]["code"]["coding"][0]["code"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Flag"
    }
    assert flags == {"caf-signalled", "lead-professional-in-place"}
    assert [e["search"]["mode"] for e in bundle["entry"]][0] == "match"
    # one audit event for the search, naming the child
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT e.action, e.detail, s.child_id FROM audit_event e JOIN audit_subject s "
                "ON s.seq = e.seq ORDER BY e.seq DESC LIMIT 1"
            )
        ).one()
    assert row.action == "fhir.search" and json.loads(row.detail)["resource"] == "Patient"
    assert str(row.child_id).replace("-", "") == world.child.hex


def test_sensitive_involvement_is_read_only_by_those_the_card_allows(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    system = system_headers(state, engine)
    outcome(api.get(f"/fhir/EpisodeOfCare/{world.sensitive_involvement}", headers=system), 404, "not-found")
    designated = system_headers(
        state, engine, subject="dp", role=Role.DESIGNATED_PRACTITIONER, scopes=("user/EpisodeOfCare.rs",)
    )
    r = api.get(f"/fhir/EpisodeOfCare/{world.sensitive_involvement}", headers=designated)
    assert r.status_code == 200, r.text
    assert valid(r.json())["meta"]["security"][0]["code"] == "R"


def test_shielded_child_shows_no_address_and_no_involvements(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = system_headers(state, engine)
    r = api.get(f"/fhir/Patient?identifier={world.shielded_nhs}&_revinclude=EpisodeOfCare:patient", headers=h)
    bundle = valid(r.json())
    assert types(bundle) == ["Patient"]
    patient = bundle["entry"][0]["resource"]
    assert "address" not in patient
    assert any(e["url"] == S.EXT_ASK for e in patient["extension"])
    # nor can the address be found by searching on it
    r = api.get("/fhir/Patient?family=Khan&address-postalcode=OX4 1AB", headers=h)
    assert valid(r.json())["total"] == 0
    designated = system_headers(
        state, engine, subject="dp", role=Role.DESIGNATED_PRACTITIONER, scopes=("user/Patient.rs",)
    )
    r = api.get(f"/fhir/Patient/{world.shielded_child}", headers=designated)
    assert r.json()["address"][0]["postalCode"] == "OX4 1AB"


def test_birthdate_prefixes_family_and_paging(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = system_headers(state, engine)
    dob = api.get(f"/fhir/Patient/{world.child}", headers=h).json()["birthDate"]
    year = dob[:4]
    assert api.get(f"/fhir/Patient?family=smi&birthdate={dob}", headers=h).json()["total"] == 1
    assert api.get(f"/fhir/Patient?family=SMITH&birthdate=eq{year}", headers=h).json()["total"] == 1
    assert (
        api.get(f"/fhir/Patient?family=smith&birthdate=eq{year}&given=amira", headers=h).json()["total"] == 0
    )
    assert (
        api.get(f"/fhir/Patient?family=jones&birthdate={year}", headers=h).json()["total"] == 1
    )  # previous name
    assert api.get(f"/fhir/Patient?family:exact=Smit&birthdate={dob}", headers=h).json()["total"] == 0
    after = (date.fromisoformat(dob) + timedelta(days=1)).isoformat()
    assert (
        api.get(
            f"/fhir/Patient?family=smith&birthdate=eq{year}&birthdate=lt{after}&birthdate=ge{dob}", headers=h
        ).json()["total"]
        >= 1
    )
    assert (
        api.get(f"/fhir/Patient?family=smith&birthdate=eq{year}&birthdate=gt{dob}", headers=h).json()["total"]
        == 0
    )
    # a shielded child (Amira Khan) is found by demographics only with its family name (docs/lifecycle.md:
    # a given name and a date of birth are what a birth family knows of an adopted child)
    assert api.get(f"/fhir/Patient?name=amira&birthdate={year}", headers=h).json()["total"] == 0
    page1 = valid(api.get(f"/fhir/Patient?name=olivia,khan&birthdate={year}&_count=1", headers=h).json())
    assert page1["total"] == 2 and len(page1["entry"]) == 1
    links = {x["relation"]: x["url"] for x in page1["link"]}
    assert "next" in links and "previous" not in links
    page2 = api.get(links["next"].replace("http://testserver", ""), headers=h).json()
    assert page2["entry"][0]["resource"]["id"] != page1["entry"][0]["resource"]["id"]
    assert "previous" in {x["relation"] for x in page2["link"]}
    count_only = api.get(f"/fhir/Patient?name=olivia,khan&birthdate={year}&_summary=count", headers=h).json()
    assert count_only["total"] == 2 and "entry" not in count_only
    subset = api.post(
        "/fhir/Patient/_search", headers=h, data={"_id": str(world.child), "_elements": "gender"}
    )
    resource = subset.json()["entry"][0]["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "gender"}
    assert resource["meta"]["tag"][0]["code"] == "SUBSETTED"


def test_search_refusals(api: TestClient, engine: Engine, state: AuthState, world: World) -> None:
    h = system_headers(state, engine)
    outcome(api.get("/fhir/Patient?gender=female", headers=h), 400, "too-costly")
    outcome(api.get("/fhir/Patient?family=smith&birthdate=ge2010", headers=h), 400, "too-costly")
    outcome(api.get("/fhir/EpisodeOfCare?status=active", headers=h), 400, "too-costly")
    strict = {**h, "Prefer": "handling=strict"}
    assert "handling=strict" in outcome(
        api.get(f"/fhir/Patient?_id={world.child}&colour=red", headers=strict), 400, "not-supported"
    )
    outcome(
        api.get(f"/fhir/Patient?_id={world.child}&family:phonetic=x", headers=strict), 400, "not-supported"
    )
    outcome(api.get(f"/fhir/Patient?_id={world.child}&gender=woman", headers=h), 400, "code-invalid")
    outcome(api.get("/fhir/Patient?family=x&birthdate=2019-13-01", headers=h), 400, "invalid")
    outcome(api.get(f"/fhir/Patient?identifier={S.NHS_NUMBER}|1234567890", headers=h), 400, "invalid")
    outcome(
        api.get(f"/fhir/Patient?_id={world.child}&_revinclude=Observation:patient", headers=strict),
        400,
        "not-supported",
    )
    outcome(api.get(f"/fhir/Patient?_id={world.child}&_format=xml", headers=h), 406, "not-supported")
    # Unknown parameters are ignored by default (R4; fhirpy's `_totalMethod`), as with handling=lenient:
    # reported in the Bundle and left out of its self link.
    for prefer in ({}, {"Prefer": "handling=lenient"}):
        r = api.get(f"/fhir/Patient?_id={world.child}&colour=red&_totalMethod=count", headers={**h, **prefer})
        bundle = valid(r.json())
        assert bundle["total"] == 1 and bundle["entry"][-1]["search"]["mode"] == "outcome", prefer
        self_link = {x["relation"]: x["url"] for x in bundle["link"]}["self"]
        assert "colour" not in self_link and "_totalMethod" not in self_link
    # An unknown parameter never widens a search past its minimum criteria: the rest must still meet them.
    outcome(api.get("/fhir/Patient?gender=female&identifer=x", headers=h), 400, "too-costly")
    outcome(api.get("/fhir/Patient/not-a-uuid", headers=h), 404, "not-found")
    outcome(api.get("/fhir/Observation", headers=h), 404, "not-found")
    no_purpose = system_headers(state, engine, subject="np", purpose=None)
    outcome(api.get(f"/fhir/Patient?_id={world.child}", headers=no_purpose), 400, "invalid")


def test_scopes_decide_what_a_client_may_read_and_write(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    outcome(api.get(f"/fhir/Patient/{world.child}"), 401, "login")
    patient_only = system_headers(state, engine, subject="po", scopes=("system/Patient.rs",))
    assert api.get(f"/fhir/Patient/{world.child}", headers=patient_only).status_code == 200
    outcome(api.get(f"/fhir/EpisodeOfCare?patient={world.child}", headers=patient_only), 403, "forbidden")
    outcome(
        api.get(f"/fhir/Patient?_id={world.child}&_revinclude=EpisodeOfCare:patient", headers=patient_only),
        403,
        "forbidden",
    )
    read_only = system_headers(state, engine, subject="ro", scopes=("system/EpisodeOfCare.rs",))
    outcome(
        api.post("/fhir/EpisodeOfCare", headers={**read_only, "Content-Type": FHIR}, json=_episode(world)),
        403,
        "forbidden",
    )
    auditor = system_headers(
        state, engine, subject="aud", role=Role.AUDITOR, scopes=("user/AuditEvent.rs",), purpose="audit"
    )
    outcome(api.get(f"/fhir/Patient/{world.child}", headers=auditor), 403, "forbidden")
    r = api.get(f"/fhir/AuditEvent?patient=Patient/{world.child}", headers=auditor)
    assert r.status_code == 200, r.text
    events = valid(r.json())
    assert events["total"] >= 1 and types(events)[0] == "AuditEvent"
    assert audit_actions(engine)[-1] == "child.access-log.read"
    outcome(api.get(f"/fhir/AuditEvent?patient=Patient/{world.child}", headers=read_only), 403, "forbidden")


def _episode(world: World, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "EpisodeOfCare",
        "extension": [
            {
                "url": S.EXT_HEALTHCARE_SERVICE,
                "valueReference": {"reference": f"HealthcareService/{world.school_nursing}"},
            },
            {"url": S.EXT_INVOLVEMENT_ROLE, "valueString": "school nurse"},
            {"url": S.EXT_LEVEL_OF_NEED, "valueCoding": {"system": S.LEVEL_OF_NEED, "code": "2"}},
        ],
        "status": "active",
        "patient": {"reference": f"Patient/{world.child}"},
        "period": {"start": (date.today() - timedelta(days=3)).isoformat()},
        "careManager": {"reference": f"Practitioner/{world.hv}"},
    }
    body.update(overrides)
    return body


def test_create_update_if_match_and_history(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = {**system_headers(state, engine), "Content-Type": FHIR}
    r = api.post("/fhir/EpisodeOfCare", headers=h, json=_episode(world))
    assert r.status_code == 201, r.text
    created = valid(r.json())
    rid = created["id"]
    assert r.headers["location"].endswith(f"/fhir/EpisodeOfCare/{rid}/_history/1")
    assert r.headers["etag"] == 'W/"1"'
    assert api.get(f"/fhir/EpisodeOfCare/{rid}", headers=h).json()["careManager"]["reference"] == (
        f"Practitioner/{world.hv}"
    )
    # a second active involvement with the same service is a conflict
    outcome(api.post("/fhir/EpisodeOfCare", headers=h, json=_episode(world)), 409, "conflict")
    # conditional create finds the existing one
    cond = api.post(
        "/fhir/EpisodeOfCare",
        headers={**h, "If-None-Exist": f"patient={world.child}&_id={rid}"},
        json=_episode(world),
    )
    assert cond.status_code == 200 and cond.json()["id"] == rid
    # update: raise the level, with the version read
    changed = {
        **created,
        "extension": [
            e
            if e["url"] != S.EXT_LEVEL_OF_NEED
            else {**e, "valueCoding": {"system": S.LEVEL_OF_NEED, "code": "3"}}
            for e in created["extension"]
        ],
    }
    r = api.put(f"/fhir/EpisodeOfCare/{rid}", headers={**h, "If-Match": 'W/"1"'}, json=changed)
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == 'W/"2"'
    # a stale If-Match is refused with 412 and nothing changes
    ended = {
        **changed,
        "status": "finished",
        "period": {**changed["period"], "end": date.today().isoformat()},
    }
    outcome(
        api.put(f"/fhir/EpisodeOfCare/{rid}", headers={**h, "If-Match": 'W/"1"'}, json=ended), 412, "conflict"
    )
    assert api.get(f"/fhir/EpisodeOfCare/{rid}", headers=h).json()["status"] == "active"
    r = api.put(f"/fhir/EpisodeOfCare/{rid}", headers={**h, "If-Match": 'W/"2"'}, json=ended)
    assert r.status_code == 200 and r.json()["status"] == "finished"
    outcome(
        api.put(
            f"/fhir/EpisodeOfCare/{rid}",
            headers=h,
            json={**ended, "patient": {"reference": f"Patient/{world.shielded_child}"}},
        ),
        422,
        "business-rule",
    )
    history = valid(api.get(f"/fhir/EpisodeOfCare/{rid}/_history", headers=h).json())
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["3", "2", "1"]
    assert [e["resource"]["status"] for e in history["entry"]] == ["finished", "active", "active"]
    v1 = api.get(f"/fhir/EpisodeOfCare/{rid}/_history/1", headers=h)
    assert v1.status_code == 200 and v1.headers["etag"] == 'W/"1"'
    outcome(api.get(f"/fhir/EpisodeOfCare/{rid}/_history/9", headers=h), 404, "not-found")
    # the finished one is found by status and date
    found = api.get(
        f"/fhir/EpisodeOfCare?patient=Patient/{world.child}&status=finished"
        f"&date=ge{date.today().isoformat()}&_include=EpisodeOfCare:care-manager",
        headers=h,
    ).json()
    assert found["total"] == 1 and sorted(types(found)) == ["EpisodeOfCare", "Practitioner"]


def test_bad_bodies_get_clear_outcomes(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = {**system_headers(state, engine), "Content-Type": FHIR}
    outcome(api.post("/fhir/EpisodeOfCare", headers=h, content=b"{not json"), 400, "structure")
    outcome(api.post("/fhir/EpisodeOfCare", headers=h, content=b"[1, 2]"), 400, "structure")
    outcome(api.post("/fhir/EpisodeOfCare", headers=h, json={"resourceType": "Patient"}), 400, "invalid")
    outcome(
        api.post("/fhir/EpisodeOfCare", headers=h, json=_episode(world, status="paused")), 400, "code-invalid"
    )
    outcome(
        api.post("/fhir/EpisodeOfCare", headers=h, json=_episode(world, period={"start": "soon"})),
        400,
        "invalid",
    )
    outcome(api.post("/fhir/EpisodeOfCare", headers=h, json=_episode(world, colour="red")), 400, "invalid")
    outcome(
        api.post("/fhir/EpisodeOfCare", headers={**h, "Content-Type": "text/plain"}, content=b"x"),
        415,
        "not-supported",
    )
    outcome(
        api.post(
            "/fhir/EpisodeOfCare",
            headers=h,
            json=_episode(world, patient={"reference": "Patient/00000000-0000-0000-0000-000000000000"}),
        ),
        404,
        "not-found",
    )


def _entry(
    resource: dict[str, Any], full_url: str | None = None, method: str = "POST", url: str = "EpisodeOfCare"
) -> dict[str, Any]:
    entry: dict[str, Any] = {"resource": resource, "request": {"method": method, "url": url}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def test_transaction_is_all_or_nothing(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = {**system_headers(state, engine), "Content-Type": FHIR}
    role = {
        "resourceType": "PractitionerRole",
        "practitioner": {"display": "Nia Patel"},
        "organization": {"reference": f"Organization/{world.trust}"},
        "code": [{"text": "school nurse"}],
        "telecom": [{"system": "phone", "value": "07700 900555"}],
    }
    good = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            _entry(_episode(world, careManager={"reference": "urn:uuid:nia"})),
            _entry(role, "urn:uuid:nia", url="PractitionerRole"),
        ],
    }
    before = count(engine, "involvement"), count(engine, "practitioner")
    bad = json.loads(json.dumps(good))
    bad["entry"].append(
        _entry(_episode(world, patient={"reference": "Patient/00000000-0000-0000-0000-000000000000"}))
    )
    r = api.post("/fhir", headers=h, json=bad)
    assert outcome(r, 404, "not-found").startswith("Entry 2:")
    assert (count(engine, "involvement"), count(engine, "practitioner")) == before  # nothing changed
    r = api.post("/fhir", headers=h, json=good)
    assert r.status_code == 200, r.text
    response = valid(r.json())
    assert response["type"] == "transaction-response"
    assert [e["response"]["status"] for e in response["entry"]] == ["201 Created", "201 Created"]
    nia = response["entry"][1]["resource"]["id"]
    assert response["entry"][0]["resource"]["careManager"]["reference"] == f"Practitioner/{nia}"
    assert (count(engine, "involvement"), count(engine, "practitioner")) == (before[0] + 1, before[1] + 1)


def test_batch_entries_succeed_or_fail_on_their_own(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = {**system_headers(state, engine), "Content-Type": FHIR}
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            _entry(_episode(world)),
            _entry(_episode(world, status="nonsense")),
            {"request": {"method": "GET", "url": f"Patient/{world.child}"}},
            {"request": {"method": "DELETE", "url": f"EpisodeOfCare/{world.involvement}"}},
        ],
    }
    r = api.post("/fhir", headers=h, json=batch)
    assert r.status_code == 200, r.text
    body = valid(r.json())
    assert [e["response"]["status"] for e in body["entry"]] == ["201 Created", "400", "200", "400"]
    assert body["entry"][1]["response"]["outcome"]["issue"][0]["code"] == "code-invalid"


def test_huge_and_malformed_bundles_are_refused(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = {**system_headers(state, engine), "Content-Type": FHIR}
    huge = {"resourceType": "Bundle", "type": "transaction", "entry": [_entry(_episode(world))] * 21}
    assert "at most 20" in outcome(api.post("/fhir", headers=h, json=huge), 413, "too-costly")
    outcome(
        api.post("/fhir", headers=h, json={"resourceType": "Bundle", "type": "collection"}), 400, "invalid"
    )
    outcome(api.post("/fhir", headers=h, json={"resourceType": "Patient"}), 400, "invalid")
    assert count(engine, "involvement") == 3


def test_match_returns_scores_and_grades(
    api: TestClient, engine: Engine, state: AuthState, world: World, app: Any
) -> None:
    from search.indexer import drain

    drain(engine, app.state.search_backend, wait=True)
    h = {**system_headers(state, engine), "Content-Type": FHIR}
    dob = api.get(f"/fhir/Patient/{world.child}", headers=h).json()["birthDate"]
    params = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "resource",
                "resource": {
                    "resourceType": "Patient",
                    "name": [{"family": "Smith", "given": ["Olivia"]}],
                    "birthDate": dob,
                    "gender": "female",
                    "address": [{"postalCode": "OX4 1AB"}],
                },
            },
            {"name": "count", "valueInteger": 5},
        ],
    }
    r = api.post("/fhir/Patient/$match", headers=h, json=params)
    assert r.status_code == 200, r.text
    bundle = valid(r.json())
    top = bundle["entry"][0]
    assert top["resource"]["id"] == str(world.child)
    assert 0 < top["search"]["score"] <= 1
    assert top["search"]["extension"][0] == {"url": S.MATCH_GRADE, "valueCode": "certain"}
    assert audit_actions(engine)[-1] == "search"
    thin = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": {"resourceType": "Patient", "gender": "female"}}],
    }
    outcome(api.post("/fhir/Patient/$match", headers=h, json=thin), 400, "invalid")
    assert {x["relation"]: x["url"] for x in bundle["link"]}["self"].endswith("/fhir/Patient/$match")
    # Its parameters are typed: a count of 0 or as text, onlyCertainMatches as text: 400 naming it.
    resource = params["parameter"][0]
    for bad in (
        {"name": "count", "valueInteger": 0},
        {"name": "count", "valueString": "5"},
        {"name": "onlyCertainMatches", "valueString": "true"},
    ):
        said = outcome(
            api.post("/fhir/Patient/$match", headers=h, json={**params, "parameter": [resource, bad]}),
            400,
            "invalid",
        )
        assert bad["name"] in said, said
    # A criteria error names the element in FHIRPath, not a field of the code.
    no_date = {"resourceType": "Patient", "name": [{"family": "Smith", "given": ["Olivia"]}]}
    r = api.post(
        "/fhir/Patient/$match",
        headers=h,
        json={"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": no_date}]},
    )
    outcome(r, 400, "invalid")
    assert r.json()["issue"][0]["expression"] == ["Patient.birthDate"]


def test_a_shielded_childs_former_name_finds_nothing_over_fhir(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    """Patient?family= by a former name leads nobody who may not see a shielded record to it, and the
    Patient shows them its current official name alone."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO child_name (id, child_id, given, family, use, until) "
                "VALUES (:id, :child, 'Amira', 'Birchall', 'previous', :until)"
            ),
            {"id": uuid.uuid4().hex, "child": world.shielded_child.hex, "until": date(2020, 1, 1)},
        )
    designated = system_headers(
        state, engine, subject="dp", role=Role.DESIGNATED_PRACTITIONER, scopes=("user/Patient.rs",)
    )
    seen = api.get(f"/fhir/Patient/{world.shielded_child}", headers=designated).json()
    assert {n["family"] for n in seen["name"]} == {"Khan", "Birchall"}
    dob = seen["birthDate"]
    h = system_headers(state, engine)
    assert valid(api.get(f"/fhir/Patient?family=Birchall&birthdate={dob}", headers=h).json())["total"] == 0
    found = valid(api.get(f"/fhir/Patient?family=Khan&birthdate={dob}", headers=h).json())
    assert found["total"] == 1
    assert [n["family"] for n in found["entry"][0]["resource"]["name"]] == ["Khan"]
    by_dp = api.get(f"/fhir/Patient?family=Birchall&birthdate={dob}", headers=designated).json()
    assert by_dp["total"] == 1


def test_json_only_answers_406_to_a_client_that_accepts_no_json(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = system_headers(state, engine)
    url = f"/fhir/Patient/{world.child}"
    outcome(api.get(url, headers={**h, "Accept": "application/fhir+xml"}), 406, "not-supported")
    outcome(api.get(url + "?_format=xml", headers=h), 406, "not-supported")
    outcome(api.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"}), 406, "not-supported")
    outcome(
        api.get(url, headers={**h, "Accept": "application/fhir+json;q=0, text/html"}), 406, "not-supported"
    )
    for accept in (
        "application/fhir+json",
        "application/json",
        "*/*",
        "application/fhir+xml;q=0.9, */*;q=0.1",
    ):
        assert api.get(url, headers={**h, "Accept": accept}).status_code == 200, accept
    assert api.get(url + "?_format=json", headers=h).status_code == 200


def test_history_and_transaction_answers_carry_their_links(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    h = system_headers(state, engine)
    history = valid(api.get(f"/fhir/Patient/{world.child}/_history", headers=h).json())
    assert {x["relation"]: x["url"] for x in history["link"]}["self"].endswith(
        f"/fhir/Patient/{world.child}/_history"
    )
    read = {"request": {"method": "GET", "url": f"Patient/{world.child}"}}
    r = api.post("/fhir", headers=h, json={"resourceType": "Bundle", "type": "transaction", "entry": [read]})
    assert r.status_code == 200, r.text
    (entry,) = r.json()["entry"]
    assert entry["fullUrl"].endswith(f"/fhir/Patient/{world.child}")
    assert entry["response"]["etag"] == 'W/"1"' and entry["response"]["lastModified"]
    # An entry's error names its entry once.
    bad = {"request": {"method": "DELETE", "url": f"Patient/{world.child}"}}
    said = outcome(
        api.post("/fhir", headers=h, json={"resourceType": "Bundle", "type": "transaction", "entry": [bad]}),
        400,
        "not-supported",
    )
    assert said.count("Entry 0") == 1, said
