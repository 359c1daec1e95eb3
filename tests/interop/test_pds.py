"""The PDS-style demographics client against responses shaped like the service's (respx at the boundary).

The bodies in data/ follow the published shape of the NHS Personal Demographics Service FHIR API
(sandbox examples); they are hand-made test data, not captures of real patients.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from interop.pds import PdsClient, PdsConfig, PdsError, demographics_from_pds, differences

DATA = Path(__file__).parent / "data"
BASE = "https://pds.example.nhs.uk/personal-demographics/FHIR/R4"
TOKEN = "https://auth.example.nhs.uk/oauth2/token"


def body(name: str) -> dict[str, Any]:
    """A stored response body."""
    return json.loads((DATA / name).read_text())


@pytest.fixture
def pds() -> PdsClient:
    """A client whose sleeps are recorded instead of waited."""
    client = PdsClient(PdsConfig(BASE, TOKEN, "childindex", "s3cret", retries=2), http=httpx.Client())
    client.sleep = lambda s: client.__dict__.setdefault("slept", []).append(s)  # type: ignore[method-assign]
    return client


def _token(mock: respx.MockRouter, expires: int = 599) -> respx.Route:
    return mock.post(TOKEN).respond(
        200, json={"access_token": "tok-1", "expires_in": expires, "token_type": "Bearer"}
    )


def test_verifies_a_number_and_reads_demographics(pds: PdsClient) -> None:
    with respx.mock(assert_all_called=True) as mock:
        token = _token(mock)
        route = mock.get(f"{BASE}/Patient/9000000009").respond(200, json=body("pds_patient_9000000009.json"))
        result = pds.verify("900 000 0009")
        again = pds.demographics("9000000009")
    assert result.status == "verified" and result.current_nhs_number == "9000000009"
    demo = result.demographics
    assert demo is not None and again == demo
    assert (demo.family, demo.given, demo.birth_date, demo.sex) == (
        "Smith",
        ["Jane", "Anne"],
        date(2018, 10, 22),
        "female",
    )
    assert demo.previous_names == [("Jane", "Jones")]
    assert demo.postcode == "LS1 6AE" and demo.gp_ods_code == "Y12345"
    assert token.call_count == 1  # the token is cached
    request = route.calls[0].request
    assert request.headers["Authorization"] == "Bearer tok-1"
    assert request.headers["Accept"] == "application/fhir+json" and request.headers["X-Request-ID"]
    assert token.calls[0].request.headers["Authorization"].startswith("Basic ")


def test_a_restricted_record_passes_on_no_address_or_gp(pds: PdsClient) -> None:
    with respx.mock() as mock:
        _token(mock)
        mock.get(f"{BASE}/Patient/9000000025").respond(200, json=body("pds_patient_restricted.json"))
        demo = pds.demographics("9000000025")
    assert demo is not None and demo.restricted and demo.postcode is None and demo.gp_ods_code is None


def test_a_superseded_number_names_the_current_one(pds: PdsClient) -> None:
    merged = {**body("pds_patient_9000000009.json")}
    with respx.mock() as mock:
        _token(mock)
        mock.get(f"{BASE}/Patient/9000000017").respond(200, json=merged)
        result = pds.verify("9000000017")
    assert result.status == "superseded" and result.current_nhs_number == "9000000009"


def test_unknown_and_invalid_numbers(pds: PdsClient) -> None:
    assert pds.verify("1234567890").status == "invalid"  # fails the check digit: never sent
    with respx.mock() as mock:
        _token(mock)
        mock.get(f"{BASE}/Patient/9000000033").respond(404, json=body("pds_not_found.json"))
        mock.get(f"{BASE}/Patient/9000000041").respond(400, json=body("pds_invalid_id.json"))
        assert pds.verify("9000000033").status == "not-found"
        with pytest.raises(PdsError) as err:
            pds.demographics("9000000041")
    assert err.value.code == "invalid" and "Resource Id is invalid" in err.value.message


def test_retries_timeouts_and_throttling_then_succeeds(pds: PdsClient) -> None:
    with respx.mock() as mock:
        _token(mock)
        route = mock.get(f"{BASE}/Patient/9000000009").mock(
            side_effect=[
                httpx.ReadTimeout("slow"),
                httpx.Response(429, json=body("pds_throttled.json"), headers={"Retry-After": "3"}),
                httpx.Response(200, json=body("pds_patient_9000000009.json")),
            ]
        )
        demo = pds.demographics("9000000009")
    assert demo is not None and route.call_count == 3
    assert pds.__dict__["slept"] == [0.5, 3.0]  # back-off, then Retry-After


def test_gives_up_after_the_retries(pds: PdsClient) -> None:
    with respx.mock() as mock:
        _token(mock)
        route = mock.get(f"{BASE}/Patient/9000000009").mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(PdsError) as err:
            pds.demographics("9000000009")
        assert route.call_count == 3
        assert err.value.code == "timeout"
        mock.get(f"{BASE}/Patient/9000000025").respond(503)
        with pytest.raises(PdsError) as err:
            pds.demographics("9000000025")
    assert err.value.code == "unavailable" and err.value.status == 503


def test_an_expired_token_is_fetched_again_once(pds: PdsClient) -> None:
    with respx.mock() as mock:
        token = mock.post(TOKEN).mock(
            side_effect=[
                httpx.Response(200, json={"access_token": "old", "expires_in": 600}),
                httpx.Response(200, json={"access_token": "new", "expires_in": 600}),
            ]
        )
        route = mock.get(f"{BASE}/Patient/9000000009").mock(
            side_effect=[
                httpx.Response(
                    401,
                    json={
                        "resourceType": "OperationOutcome",
                        "issue": [
                            {"severity": "error", "code": "forbidden", "diagnostics": "Access token expired"}
                        ],
                    },
                ),
                httpx.Response(200, json=body("pds_patient_9000000009.json")),
            ]
        )
        assert pds.demographics("9000000009") is not None
    assert token.call_count == 2
    assert route.calls[1].request.headers["Authorization"] == "Bearer new"


def test_refused_credentials(pds: PdsClient) -> None:
    with respx.mock() as mock:
        mock.post(TOKEN).respond(401, json={"error": "invalid_client"})
        with pytest.raises(PdsError) as err:
            pds.demographics("9000000009")
    assert err.value.code == "refused"


def test_differences_name_fields_not_values() -> None:
    demo = demographics_from_pds(body("pds_patient_9000000009.json"))
    assert (
        differences(demo, family="Smith", given="Jane", birth_date=date(2018, 10, 22), postcode="LS16AE")
        == []
    )
    assert differences(
        demo, family="Smyth", given="Jane", birth_date=date(2018, 10, 23), postcode="OX4 1AB"
    ) == ["family name", "date of birth", "postcode"]
