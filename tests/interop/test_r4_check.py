"""The conformance suite's checker can fail: what it must catch (tests/interop/r4_check.py), and the
generated test's table reports what is advertised but not exercised."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

from interop.capability import capability_statement
from tests.interop.conformance_searches import CASES
from tests.interop.r4_check import (
    Answer,
    Recorder,
    bundle_problems,
    header_problems,
    last_updated_problems,
    r4_problems,
)
from tests.interop.test_conformance import ADVERTISED, advertised

BASE = "http://s.example/fhir"
PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "meta": {"versionId": "2", "lastUpdated": "2026-12-05T09:30:00.5Z"},
    "name": [{"family": "Smith", "given": ["Olivia"]}],
    "birthDate": "2018-12-07",
}


def _searchset(*entries: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(entries),
        "link": [{"relation": "self", "url": f"{BASE}/Patient"}],
        "entry": list(entries),
        **extra,
    }


def _match(res: dict[str, Any], full: str | None = None) -> dict[str, Any]:
    return {"fullUrl": full or f"{BASE}/Patient/{res['id']}", "resource": res, "search": {"mode": "match"}}


def test_a_valid_resource_and_searchset_pass() -> None:
    assert r4_problems(PATIENT) == []
    assert r4_problems(_searchset(_match(PATIENT))) == []


def test_what_r4_forbids_in_a_resource_is_found() -> None:
    cases = {
        'Superfluous entry "colour"': {**PATIENT, "colour": "blue"},  # not an R4 element
        "does not match expected format": {**PATIENT, "birthDate": "2018-13-01"},
        "Wrong type": {**PATIENT, "active": "yes"},
        "is empty": {**PATIENT, "name": [{"family": "", "given": ["Olivia"]}]},  # ele-1
        "is not an R4 id": {**PATIENT, "id": "has spaces"},
        "Patient.gender: 'F' is not in its R4 required value set": {**PATIENT, "gender": "F"},
        "telecom[0].use: 'office'": {
            **PATIENT,
            "telecom": [{"system": "phone", "value": "1", "use": "office"}],
        },
        "is not an R4 resource type": {"resourceType": "SubscriptionStatus", "status": "active"},  # R4B only
        "missing": {"resourceType": "Flag", "code": {"text": "x"}, "subject": {"reference": "Patient/p1"}},
    }
    for expected, body in cases.items():
        problems = r4_problems(body)
        assert any(expected in p for p in problems), (expected, problems)
    nested = _searchset(_match({**PATIENT, "colour": "blue"}))  # inside a Bundle too
    assert any("entry[0].resource" in p and "colour" in p for p in r4_problems(nested))
    coded = _searchset({**_match({**PATIENT, "gender": "F"}), "search": {"mode": "matched"}})
    said = r4_problems(coded)
    assert sum("required value set" in p for p in said) == 2, said  # each once, not per level


def test_the_bundle_invariants_are_checked() -> None:
    twice = _searchset(_match(PATIENT), _match(PATIENT))
    cases: dict[str, dict[str, Any]] = {
        "bdl-1": {"resourceType": "Bundle", "type": "batch-response", "total": 0},
        "no self link": {**_searchset(_match(PATIENT)), "link": [{"relation": "next", "url": BASE}]},
        "bdl-2": {"resourceType": "Bundle", "type": "collection", "entry": [_match(PATIENT)]},
        "bdl-3": _searchset({**_match(PATIENT), "request": {"method": "GET", "url": "Patient/p1"}}),
        "bdl-4": {"resourceType": "Bundle", "type": "transaction-response", "entry": [{"resource": PATIENT}]},
        "bdl-5": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"fullUrl": f"{BASE}/Patient/p1"}],
        },
        "bdl-7": twice,
        "bdl-8": _searchset(_match(PATIENT, f"{BASE}/Patient/p1/_history/2")),
        "does not name": _searchset(_match(PATIENT, f"{BASE}/Patient/p2")),
        "absolute fullUrl": _searchset(_match(PATIENT, "Patient/p1")),
        "bdl-11": {"resourceType": "Bundle", "type": "document", "entry": [{"resource": PATIENT}]},
        "bdl-12": {"resourceType": "Bundle", "type": "message", "entry": [{"resource": PATIENT}]},
    }
    for expected, body in cases.items():
        problems = r4_problems(body)
        assert any(expected in p for p in problems), (expected, problems)
    history = copy.deepcopy(twice)  # a history Bundle may hold one resource twice (two versions)
    history["type"] = "history"
    for e in history["entry"]:
        e.pop("search")
        e["request"] = {"method": "PUT", "url": "Patient/p1"}
        e["response"] = {"status": "200"}
    assert bundle_problems(history) == []


def test_the_headers_of_a_read_and_a_create_are_checked() -> None:
    good = {"etag": 'W/"2"', "last-modified": "Sat, 05 Dec 2026 09:30:00 GMT"}
    assert (
        header_problems(Answer("GET", f"{BASE}/Patient/p1", 200, "application/fhir+json", PATIENT, good))
        == []
    )
    stale = {**good, "etag": 'W/"1"', "last-modified": "Sat, 05 Dec 2026 09:29:59 GMT"}
    said = header_problems(Answer("GET", f"{BASE}/Patient/p1", 200, "application/fhir+json", PATIENT, stale))
    assert len(said) == 2, said
    created = Answer("POST", f"{BASE}/Patient", 201, "application/fhir+json", PATIENT, good)
    assert any("Location" in p for p in header_problems(created))


def test_the_recorder_reports_a_server_error_and_a_body_that_is_not_fhir() -> None:
    recorder = Recorder()
    for status, ctype, body in ((500, "application/json", {"detail": "boom"}), (200, "text/html", None)):
        response = SimpleNamespace(
            headers={"content-type": ctype},
            content=b"x",
            json=lambda body=body: body,
            request=SimpleNamespace(method="GET"),
            url=f"{BASE}/Patient/p1",
            status_code=status,
        )
        recorder.hook(response)
    problems = recorder.problems(BASE)
    assert any("a server error" in p for p in problems) and any("no FHIR body" in p for p in problems)
    assert recorder.answers == []


def test_an_operation_advertised_without_a_case_is_reported() -> None:
    """What the generated test does when, say, Bulk Data $export is advertised before its case exists."""
    statement = capability_statement(base=BASE, issuer="http://s.example")
    statement["rest"][0]["operation"] = [
        {"name": "purge", "definition": "http://example.org/OperationDefinition/purge"}
    ]
    assert [a for a in advertised(statement) if a not in CASES] == [("system", "$purge")]
    assert all(a in CASES for a in ADVERTISED)


def test_a_stored_resource_without_last_updated_is_reported() -> None:
    """Issue #19: meta.lastUpdated on every resource."""
    bare = {**PATIENT, "meta": {"versionId": "2"}}
    assert last_updated_problems(_searchset(_match(bare))) == ["Patient/p1 has no meta.lastUpdated"]
    assert last_updated_problems(PATIENT) == []
    assert last_updated_problems({"resourceType": "Flag", "id": "caf-1"}) == [
        "Flag/caf-1 has no meta.lastUpdated"
    ]
