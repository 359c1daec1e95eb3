"""No 5xx from input (issue #16, finding 8): what the input guard refuses before any route reads
it, on every surface and in each surface's own error format, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from auth.models import SubjectKind
from childindex.settings import Settings
from directory.db import unit_of_work
from directory.models import Role
from tests.conftest import count
from tests.fixtures.auth_builders import make_grant, token_for
from tests.fixtures.builders import make_child

FHIR = "application/fhir+json"
PROBLEM = "application/problem+json"
SYSTEM_SCOPES = ("system/*.cruds", "directory.search")


@pytest.fixture
def prod_settings() -> Settings:
    """Production settings: only access tokens get in."""
    return Settings(
        environment="production",
        database_url="sqlite://",
        issuer="http://testserver",
        secret_key="test-secret-key",
        indexer_interval_seconds=0,
        search_rate_per_minute=10_000,
    )


@pytest.fixture
def practitioner(engine: Engine, state: AuthState) -> dict[str, str]:
    """Headers of a practitioner with a grant and a token."""
    with unit_of_work(engine) as s:
        make_grant(s, "pat")
    return {"Authorization": f"Bearer {token_for(state, 'pat')}", "X-Purpose-Of-Use": "considering-caf"}


@pytest.fixture
def system(engine: Engine, state: AuthState) -> dict[str, str]:
    """Headers of a connected system allowed every FHIR interaction."""
    with unit_of_work(engine) as s:
        make_grant(s, "trust", kind=SubjectKind.CLIENT, role=Role.SYSTEM, scopes=SYSTEM_SCOPES)
    token = token_for(state, "trust", kind=SubjectKind.CLIENT, role=Role.SYSTEM, scopes=SYSTEM_SCOPES)
    return {"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": "direct-care"}


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def outcome(r: object) -> str:
    """The diagnostics of an OperationOutcome response."""
    body = r.json()  # type: ignore[attr-defined]
    assert body["resourceType"] == "OperationOutcome", body
    return str(body["issue"][0]["diagnostics"])


# --------------------------------------------------------------------------- JSON depth


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/fhir/EpisodeOfCare", b'{"resourceType":"EpisodeOfCare","x":' + nested(100_000) + b"}"),
        ("/fhir/Patient/$match", b'{"resourceType":"Parameters","parameter":' + nested(5_000) + b"}"),
        ("/fhir/Patient/$match", b'{"resourceType":"Parameters","parameter":' + nested(900) + b"}"),
        (
            "/fhir",
            b'{"resourceType":"Bundle","type":"batch","entry":[{"resource":'
            + b'{"a":' * 900
            + b"1"
            + b"}" * 902,
        ),
    ],
    ids=["EpisodeOfCare 100,000 deep", "$match 5,000 deep", "$match 900 deep", "Bundle entry 900 deep"],
)
def test_a_deeply_nested_fhir_body_is_a_400_outcome_not_a_500(
    api: TestClient, system: dict[str, str], path: str, body: bytes
) -> None:
    """Was: RecursionError in json.loads (or, under 1,000 deep, in the code reading the result) -> 500."""
    r = api.post(path, content=body, headers={**system, "Content-Type": FHIR})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith(FHIR)
    assert "nests arrays and objects more than 64 deep" in outcome(r)


def test_a_deeply_nested_app_api_body_is_a_clear_problem(
    api: TestClient, engine: Engine, practitioner: dict[str, str]
) -> None:
    """Was: 400 'There was an error parsing the body' after the parser gave up (or 500 elsewhere)."""
    for path in ("/api/v1/children/search", "/api/v1/children"):
        r = api.post(
            path,
            content=b'{"names":' + nested(5_000) + b"}",
            headers={**practitioner, "Content-Type": "application/json"},
        )
        assert r.status_code == 400 and r.headers["content-type"].startswith(PROBLEM), r.text
        assert r.json()["type"].endswith("/too-deep")
    assert count(engine, "child") == 0


def test_ordinary_fhir_nesting_passes_the_guard(api: TestClient, system: dict[str, str]) -> None:
    """A realistic resource (a dozen levels, brackets inside strings) is read as usual."""
    deep_text = "[" * 500  # brackets inside a string do not count
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "resource",
                "resource": {
                    "resourceType": "Patient",
                    "name": [
                        {
                            "family": "Smith",
                            "given": ["Olivia"],
                            "extension": [{"url": "x", "valueString": deep_text}],
                        }
                    ],
                    "birthDate": "2015-03-01",
                },
            }
        ],
    }
    r = api.post("/fhir/Patient/$match", json=body, headers={**system, "Content-Type": FHIR})
    assert r.status_code in (200, 400), r.text
    assert "nests" not in r.text


def test_the_depth_scan() -> None:
    """Exact on real nesting, blind to brackets and escaped quotes inside strings, and fast."""
    from childindex.guard import json_too_deep

    assert not json_too_deep(b'{"a": [1, 2, {"b": "[[[[[[[["}]}', 3)
    assert json_too_deep(b'{"a": [[[1]]]}', 3)
    assert not json_too_deep(b'{"a": "\\"[[[[", "b": [[1]]}', 3)
    assert json_too_deep(b'{"a": "\\\\", "b": [[[1]]]}', 3)
    assert not json_too_deep(b"[" * 64 + b"]" * 64, 64) and json_too_deep(b"[" * 65 + b"]" * 65, 64)
    started = time.perf_counter()
    assert json_too_deep(nested(100_000), 64)
    assert time.perf_counter() - started < 0.5


# --------------------------------------------------------------------------- NUL characters


def test_nul_characters_are_refused_on_every_surface(
    api: TestClient, engine: Engine, practitioner: dict[str, str], system: dict[str, str]
) -> None:
    """Was: on PostgreSQL, 500 (text cannot hold NUL) for a catalogue filter, a FHIR identifier,
    an OAuth client id and a child's name; on SQLite the name was stored."""
    services = api.get("/api/v1/services", params={"service_type": "a\x00b"}, headers=practitioner)
    assert services.status_code == 400 and services.json()["type"].endswith("/nul"), services.text
    fhir = api.get("/fhir/Patient", params={"identifier": "x|\x00"}, headers=system)
    assert fhir.status_code == 400 and "NUL" in outcome(fhir)
    oauth = api.post("/oauth/token", data={"grant_type": "authorization_code", "client_id": "a\x00b"})
    assert oauth.status_code == 400 and oauth.json()["error"] == "invalid_request", oauth.text
    multipart = {"grant_type": (None, "authorization_code"), "client_id": (None, "a\x00b")}
    oauth = api.post("/oauth/token", files=multipart)
    assert oauth.status_code == 400 and oauth.json()["error"] == "invalid_request", oauth.text
    child = {"names": [{"given": "Ann\u0000", "family": "Smith"}], "date_of_birth": "2015-01-01"}
    created = api.post("/api/v1/children", json=child, headers=practitioner)
    assert created.status_code == 400 and "NUL" in created.json()["detail"], created.text
    assert count(engine, "child") == 0
    from childindex.guard import has_nul

    assert not has_nul(b'{"a": "\\\\u0000"}', json=True)  # a backslash, then the text u0000


# --------------------------------------------------------------------------- sizes


def test_a_body_over_the_limit_is_413_before_it_is_read(
    api: TestClient, practitioner: dict[str, str], system: dict[str, str]
) -> None:
    big = b'{"given": "' + b"a" * (1024 * 1024 + 1) + b'"}'
    r = api.post(
        "/api/v1/children/search", content=big, headers={**practitioner, "Content-Type": "application/json"}
    )
    assert r.status_code == 413 and r.headers["content-type"].startswith(PROBLEM)
    fhir = api.post("/fhir", content=b" " * (5 * 1024 * 1024 + 1), headers={**system, "Content-Type": FHIR})
    assert fhir.status_code == 413 and fhir.json()["issue"][0]["code"] == "too-costly"


def test_headers_we_read_are_capped(
    api: TestClient, engine: Engine, practitioner: dict[str, str], system: dict[str, str]
) -> None:
    """Was: a 5,000-digit If-Match -> 500 (int() of more than 4,300 digits); a 100 KB
    shield-override reason went into the audit log."""
    with unit_of_work(engine) as s:
        child = make_child(s)
    reason = api.get(
        f"/api/v1/children/{child}", headers={**practitioner, "X-Shield-Override-Reason": "x" * 100_000}
    )
    assert reason.status_code == 400 and "x-shield-override-reason" in reason.json()["detail"]
    match = api.put(
        f"/fhir/EpisodeOfCare/{uuid.uuid4()}",
        json={"resourceType": "EpisodeOfCare"},
        headers={**system, "Content-Type": FHIR, "If-Match": 'W/"' + "9" * 5000 + '"'},
    )
    assert match.status_code == 400 and match.headers["content-type"].startswith(FHIR), match.text


# --------------------------------------------------------------------------- 405


def test_405_names_every_method_the_path_takes(api: TestClient, system: dict[str, str]) -> None:
    """Was: Allow named the first route tried (GET where PUT is also served) or, on the pages, nothing."""
    assert api.patch(f"/fhir/EpisodeOfCare/{uuid.uuid4()}", headers=system).headers["allow"] == "GET, PUT"
    assert api.put("/fhir/EpisodeOfCare", headers=system).headers["allow"] == "GET, POST"
    assert api.delete("/oauth/authorize").headers["allow"] == "GET, POST"
    page = api.delete("/")
    assert page.status_code == 405 and page.headers["allow"] == "GET"


def test_an_address_longer_than_any_parameter_needs_is_400(
    api: TestClient, practitioner: dict[str, str]
) -> None:
    """Every parameter of ours is short, so a query string over 8 KiB (or a path over 2 KiB) is refused."""
    r = api.get("/api/v1/services", params={"service_type": "x" * 9000}, headers=practitioner)
    assert r.status_code == 400 and r.json()["type"].endswith("/address-too-long"), r.text
    r = api.get("/api/v1/children/" + "x" * 3000, headers=practitioner)
    assert r.status_code == 400 and r.json()["type"].endswith("/address-too-long"), r.text


def test_a_value_the_database_cannot_hold_is_a_4xx_on_each_surface(
    engine: Engine, prod_settings: Settings
) -> None:
    """The last line of defence: a value that got past every check but does not fit its column
    (PostgreSQL's DataError) is the caller's input, so 422 (FHIR: 400), never a 500."""
    from fastapi import FastAPI
    from sqlalchemy.exc import DataError

    from childindex.app import create_app

    app: FastAPI = create_app(prod_settings, engine=engine)

    def boom() -> None:
        raise DataError("INSERT ...", {}, Exception("value too long for type character varying(200)"))

    app.add_api_route("/api/v1/boom", boom)
    app.add_api_route("/fhir/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as c:
        api = c.get("/api/v1/boom")
        assert api.status_code == 422 and api.json()["type"].endswith("/value-does-not-fit")
        fhir = c.get("/fhir/boom")
        assert fhir.status_code == 400 and "too long or out of range" in outcome(fhir)
