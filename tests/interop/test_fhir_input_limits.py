"""FHIR search parameters, numbers and dates that once answered 5xx (issue #16, finding 8)."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from interop import systems as S
from tests.conftest import count
from tests.interop.conftest import FHIR, World, system_headers

SCOPES = ("system/*.cruds", "directory.search")


@pytest.fixture
def trust(state: AuthState, engine: Engine) -> dict[str, str]:
    return system_headers(state, engine, scopes=SCOPES)


def diagnostics(r: object) -> str:
    body = r.json()  # type: ignore[attr-defined]
    assert body["resourceType"] == "OperationOutcome", body
    return str(body["issue"][0]["diagnostics"])


def test_a_60000_character_family_name_is_refused(
    api: TestClient, world: World, trust: dict[str, str]
) -> None:
    """Was: 503 (the database gave up on the pattern); the app API caps names at 100 too."""
    r = api.get("/fhir/Patient", params={"family": "a" * 60_000, "birthdate": "2015"}, headers=trust)
    assert r.status_code == 400, r.text
    assert "The address is too long" in diagnostics(r)
    r = api.get("/fhir/Patient", params={"family": "a" * 3_000, "birthdate": "2015"}, headers=trust)
    assert r.status_code == 400 and "longer than 2048 characters" in diagnostics(r)
    long_name = api.get("/fhir/Patient", params={"family": "a" * 101, "birthdate": "2015"}, headers=trust)
    assert long_name.status_code == 400 and "longer than 100 characters" in diagnostics(long_name)
    many = [("family", "smith")] * 51
    too_many = api.get("/fhir/Patient", params=many, headers=trust)
    assert too_many.status_code == 400 and "at most 50 parameters" in diagnostics(too_many)


@pytest.mark.parametrize(
    ("name", "value"),
    [("_count", "\u00b2"), ("_count", "9" * 5000), ("_offset", "9" * 30), ("_offset", "100001")],
    ids=["superscript two", "5,000 digits", "30 digits", "past the last page"],
)
def test_paging_numbers_are_short_ascii_numbers(
    api: TestClient, world: World, trust: dict[str, str], name: str, value: str
) -> None:
    """Was: 500 (int('²'), int() past 4,300 digits, an OFFSET too big for the database)."""
    r = api.get("/fhir/Organization", params={name: value}, headers=trust)
    assert r.status_code == 400 and r.headers["content-type"].startswith(FHIR), r.text


@pytest.mark.parametrize("value", ["gt9999-12-31", "lt0001-01-01", "1899-12-31", "2200"])
def test_search_dates_outside_the_range_are_refused(
    api: TestClient, world: World, trust: dict[str, str], value: str
) -> None:
    """Was: 500 (OverflowError: the day after 9999-12-31) for date prefixes at the ends of time."""
    r = api.get(
        "/fhir/EpisodeOfCare", params={"patient": f"Patient/{world.child}", "date": value}, headers=trust
    )
    assert r.status_code == 400, r.text
    assert "between 1900-01-01 and 2199-12-31" in diagnostics(r)


def test_a_search_by_an_id_that_is_not_ours_is_empty_not_404(
    api: TestClient, world: World, trust: dict[str, str]
) -> None:
    """A search never answers 404 (the OpenAPI document says so): an id we cannot hold matches nothing."""
    for kind in ("Organization", "Patient", "EpisodeOfCare"):
        r = api.get(f"/fhir/{kind}", params={"_id": "not-an-id"}, headers=trust)
        assert r.status_code == 200 and r.json()["total"] == 0, (kind, r.text)


def test_match_with_a_malformed_parameters_body_is_400(
    api: TestClient, world: World, trust: dict[str, str]
) -> None:
    """Was: 500 (AttributeError: 'list' object has no attribute 'get')."""
    body = {"resourceType": "Parameters", "parameter": [["resource"]]}
    r = api.post("/fhir/Patient/$match", json=body, headers={**trust, "Content-Type": FHIR})
    assert r.status_code == 400, r.text
    patient = {"resourceType": "Patient", "name": [{"family": "Smith"}], "birthDate": "9999-12-31"}
    dated = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient}]}
    r = api.post("/fhir/Patient/$match", json=dated, headers={**trust, "Content-Type": FHIR})
    assert r.status_code == 400 and "between 1900-01-01 and 2199-12-31" in diagnostics(r)


def test_body_dates_outside_the_range_are_refused(
    api: TestClient, engine: Engine, world: World, trust: dict[str, str]
) -> None:
    """Was: 500 (OverflowError while storing it) for a consent given at 0001-01-01T00:00:00+14:00,
    before the first year Python holds once in UTC; an episode starting 9999-12-31 was taken."""
    before = count(engine, "consent")
    consent = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": S.CONSENT_SCOPE_HL7, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": S.CONSENT_SCOPE, "code": "caf"}]}],
        "patient": {"reference": f"Patient/{world.child}"},
        "dateTime": "0001-01-01T00:00:00+14:00",
        "performer": [
            {
                "display": "Jane Brook",
                "extension": [{"url": S.EXT_CONSENT_GIVER, "valueCode": "parent_carer"}],
            }
        ],
    }
    r = api.post("/fhir/Consent", json=consent, headers={**trust, "Content-Type": FHIR})
    assert r.status_code == 400 and "between 1900-01-01 and 2199-12-31" in diagnostics(r)
    assert count(engine, "consent") == before
    episode = {
        "resourceType": "EpisodeOfCare",
        "status": "active",
        "patient": {"reference": f"Patient/{world.child}"},
        "period": {"start": "9999-12-31"},
        "extension": [
            {
                "url": S.EXT_HEALTHCARE_SERVICE,
                "valueReference": {"reference": f"HealthcareService/{world.hv_service}"},
            }
        ],
    }
    r = api.post("/fhir/EpisodeOfCare", json=episode, headers={**trust, "Content-Type": FHIR})
    assert r.status_code == 400 and "between 1900-01-01 and 2199-12-31" in diagnostics(r)


def test_versions_are_short_ascii_numbers(api: TestClient, world: World, trust: dict[str, str]) -> None:
    """If-Match with more digits than a version can have, and a vread of '²', are not server errors."""
    r = api.put(
        f"/fhir/EpisodeOfCare/{world.involvement}",
        json={"resourceType": "EpisodeOfCare"},
        headers={**trust, "Content-Type": FHIR, "If-Match": 'W/"' + "9" * 30 + '"'},
    )
    assert r.status_code == 400 and "If-Match" in diagnostics(r)
    vread = api.get(f"/fhir/EpisodeOfCare/{world.involvement}/_history/\u00b2", headers=trust)
    assert vread.status_code == 404
    assert api.get(f"/fhir/EpisodeOfCare/{uuid.uuid4()}/_history/1", headers=trust).status_code == 404


def test_a_reference_without_a_type_is_400(api: TestClient, world: World, trust: dict[str, str]) -> None:
    """Found by schemathesis: was 500 (IndexError) for a reference with no '/' in it."""
    role = {
        "resourceType": "PractitionerRole",
        "active": False,
        "organization": {"reference": "Access refused"},
        "practitioner": {"display": "Sam Carter"},
    }
    r = api.post("/fhir/PractitionerRole", json=role, headers={**trust, "Content-Type": FHIR})
    assert r.status_code == 400 and "must point at a Organization" in diagnostics(r), r.text


@pytest.mark.parametrize("endpoint", [{}, False, 7, ["https://x"]], ids=["object", "false", "number", "list"])
def test_a_value_of_the_wrong_json_type_is_400(
    api: TestClient, world: World, trust: dict[str, str], endpoint: object
) -> None:
    """Found by schemathesis: was 500 (TypeError or AttributeError out of fhir.resources' url
    validator) for a Subscription whose channel.endpoint is not a string."""
    sub = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "CAF changes",
        "criteria": "Flag?code=caf",
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": FHIR},
    }
    r = api.post("/fhir/Subscription", json=sub, headers={**trust, "Content-Type": FHIR})
    assert r.status_code == 400 and "not valid FHIR" in diagnostics(r), r.text


@pytest.mark.parametrize("field", ["endpoint", "secret"])
def test_a_subscription_value_longer_than_its_column_is_400(
    api: TestClient, engine: Engine, world: World, trust: dict[str, str], field: str
) -> None:
    """Was: 500 on PostgreSQL (value too long for type character varying) for an endpoint over 500
    characters or a signing secret over 200; SQLite stored them."""
    endpoint = "https://trust.example/hook/" + ("a" * 600 if field == "endpoint" else "x")
    sub: dict[str, object] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "CAF changes",
        "criteria": "Flag?code=caf-signalled",
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": FHIR},
    }
    if field == "secret":
        sub["extension"] = [{"url": S.EXT_SIGNING_SECRET, "valueString": "s" * 300}]
    r = api.post("/fhir/Subscription", json=sub, headers={**trust, "Content-Type": FHIR})
    assert r.status_code == 400 and "at most 500 characters" in diagnostics(r), r.text
    assert count(engine, "subscription") == 0
