"""Grant localities mean something (directory/reach.py): with CHILDINDEX_GRANT_LOCALITIES a grant's
localities restrict changes ('writes') or also reads and searches ('all'); off, nothing (as before).
Real tokens, production mode, the app API and FHIR, SQLite and PostgreSQL. A refusal names the team to
ask: the child's locality team, or for a shielded child the asker's own (naming the child's would say
where they live)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from childindex.app import create_app
from childindex.settings import Settings
from directory import service
from directory.db import unit_of_work
from directory.models import CafSignal, Role, ShieldSet, utcnow
from search.indexer import drain
from tests.conftest import count
from tests.fixtures.auth_builders import bearer, make_grant, token_for
from tests.fixtures.builders import (
    actor,
    make_child,
    make_locality,
    make_org,
    make_practitioner,
    make_service,
)

ISSUER = "http://testserver"
FHIR_READ = tuple(f"user/{t}.rs" for t in ("Patient", "Flag", "EpisodeOfCare", "CareTeam"))
SCOPES = ("directory.search", "directory.write", *FHIR_READ)


@dataclass
class Area:
    city: uuid.UUID  # lives in CITY (OX4), the locality the practitioner's grant names
    north: uuid.UUID  # lives in NORTH (OX5)
    hidden: uuid.UUID  # lives in NORTH, shielded
    nowhere: uuid.UUID  # no locality on record
    service: uuid.UUID
    pat: uuid.UUID  # the practitioner record of the signed-in practitioner


def _app(engine: Engine, reach: str) -> TestClient:
    settings = Settings(
        environment="production",
        database_url="sqlite://",
        issuer=ISSUER,
        secret_key="test-secret-key",
        search_rate_per_minute=1000,
        grant_localities=reach,
    )
    return TestClient(create_app(settings, engine=engine), raise_server_exceptions=False)


@pytest.fixture
def area(engine: Engine) -> Area:
    with unit_of_work(engine) as s:
        make_locality(s, code="CITY", areas=("OX4",))
        make_locality(s, code="NORTH", areas=("OX5",))
        school = make_org(s, name="Cowley School", kind="school")
        pat = make_practitioner(s, school, name="Pat Jones", subject="pat")
        svc = make_service(s, school, name="Cowley School SENCO", service_type="school")
        make_grant(s, "pat", localities=["CITY"], scopes=SCOPES)
        make_grant(s, "ann", localities=[], scopes=SCOPES)  # the whole authority

        def child(given: str, postcode: str, **kw: object) -> uuid.UUID:
            address = {"line1": "1 High Street", "town": "Oxford", "postcode": postcode}
            return make_child(s, names=[{"given": given, "family": "Lockwood"}], address=address, **kw)

        city = child("Ava", "OX4 1AB")
        north = child("Ava", "OX5 1AB")
        hidden = child("Ava", "OX5 2AB")
        nowhere = child("Ava", "SW1A 1AA")
        service.set_shield(
            s,
            actor=actor(Role.DESIGNATED_PRACTITIONER),
            child_id=hidden,
            data=ShieldSet(reason="Family fleeing violence"),
        )
    return Area(city, north, hidden, nowhere, svc.id, pat.id)


def _pat(client: TestClient, area: Area, *, extra: tuple[str, ...] = ()) -> dict[str, str]:
    scopes = (*SCOPES, *extra)
    state = client.app.state.auth  # type: ignore[attr-defined]
    return bearer(token_for(state, "pat", scopes=scopes, practitioner_id=area.pat))


def _involvement(area: Area) -> dict[str, object]:
    return {
        "service_id": str(area.service),
        "role": "SENCO",
        "level_of_need": 2,
        "start_date": date.today().isoformat(),
    }


def test_off_by_default_restricts_nothing(engine: Engine, area: Area) -> None:
    with _app(engine, "off") as client:
        h = _pat(client, area)
        assert client.get(f"/api/v1/children/{area.north}", headers=h).status_code == 200
        r = client.post(f"/api/v1/children/{area.north}/involvements", json=_involvement(area), headers=h)
        assert r.status_code == 201, r.text


def test_writes_refuses_changes_outside_naming_the_team_and_writes_nothing(
    engine: Engine, area: Area
) -> None:
    with _app(engine, "writes") as client:
        h = _pat(client, area)
        assert client.get(f"/api/v1/children/{area.north}", headers=h).status_code == 200  # reads stay open
        before = count(engine, "involvement"), count(engine, "audit_event")
        r = client.post(f"/api/v1/children/{area.north}/involvements", json=_involvement(area), headers=h)
        assert r.status_code == 403, r.text
        problem = r.json()
        assert problem["type"].endswith("/forbidden") or "outside" in problem["type"]
        assert "North Early Help Team" in problem["detail"] and "01632 960100" in problem["detail"]
        assert count(engine, "involvement") == before[0]
        signal = {"no_risk_of_significant_harm": True}
        r = client.post(f"/api/v1/children/{area.north}/caf", json=signal, headers=h)
        assert r.status_code == 403 and "North Early Help Team" in r.json()["detail"]
        assert count(engine, "assessment") == 0
        # inside the grant's locality, the same changes go through
        r = client.post(f"/api/v1/children/{area.city}/involvements", json=_involvement(area), headers=h)
        assert r.status_code == 201, r.text
        r = client.post(f"/api/v1/children/{area.city}/caf", json=signal, headers=h)
        assert r.status_code == 201, r.text


def test_all_refuses_reads_outside_on_the_api_and_fhir(engine: Engine, area: Area) -> None:
    with _app(engine, "all") as client:
        h = _pat(client, area)
        assert client.get(f"/api/v1/children/{area.city}", headers=h).status_code == 200
        r = client.get(f"/api/v1/children/{area.north}", headers=h)
        assert r.status_code == 403 and "North Early Help Team" in r.json()["detail"]
        fhir = client.get(f"/fhir/Patient/{area.north}", headers=h)
        assert fhir.status_code == 403 and fhir.json()["resourceType"] == "OperationOutcome"
        assert "North Early Help Team" in fhir.json()["issue"][0]["diagnostics"]
        assert client.get(f"/fhir/Patient/{area.city}", headers=h).status_code == 200
        # FHIR searches leave the children outside out (as they leave out what a read would refuse)
        born = (date.today() - timedelta(days=365 * 8)).isoformat()  # (tests.fixtures.builders)
        found = client.get(f"/fhir/Patient?family=Lockwood&birthdate={born}", headers=h).json()
        ids = {e["resource"]["id"] for e in found.get("entry", [])}
        assert ids == {str(area.city)}, ids
        flags = client.get(f"/fhir/EpisodeOfCare?patient={area.north}", headers=h)
        assert flags.status_code == 200 and not flags.json().get("entry")


def test_all_a_shielded_child_outside_names_the_askers_own_team(engine: Engine, area: Area) -> None:
    with _app(engine, "all") as client:
        h = _pat(client, area)
        r = client.get(f"/api/v1/children/{area.hidden}", headers=h)
        assert r.status_code == 403
        detail = r.json()["detail"]
        assert "City Early Help Team" in detail and "North" not in detail, detail
        r = client.get(f"/api/v1/children/{area.nowhere}", headers=h)
        assert r.status_code == 403 and "no locality on record" in r.json()["detail"]


def test_all_search_shows_only_children_inside_and_says_some_are_not_shown(
    engine: Engine, area: Area
) -> None:
    with _app(engine, "all") as client:
        drain(engine, client.app.state.search_backend, wait=True)  # type: ignore[attr-defined]
        h = _pat(client, area)
        criteria = {"given": "Ava", "family": "Lockwood", "postcode": "OX4 1AB"}
        r = client.post("/api/v1/children/search", json=criteria, headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        assert [hit["child_id"] for hit in body["hits"]] == [str(area.city)]
        r = client.post(
            "/api/v1/children/search",
            json={"given": "Ava", "family": "Lockwood", "postcode": "OX5 1AB"},
            headers=h,
        )
        body = r.json()
        assert str(area.north) not in [hit["child_id"] for hit in body["hits"]]
        assert "outside the localities your access covers" in body["advice"]
        assert "North" not in body["advice"]  # neither where nor how many


def test_a_grant_with_no_localities_covers_the_whole_authority(engine: Engine, area: Area) -> None:
    with _app(engine, "all") as client:
        state = client.app.state.auth  # type: ignore[attr-defined]
        h = bearer(token_for(state, "ann", scopes=SCOPES))
        for child in (area.city, area.north, area.hidden, area.nowhere):
            assert client.get(f"/api/v1/children/{child}", headers=h).status_code == 200


def test_a_refusal_outside_says_nothing_of_the_record_first(engine: Engine, area: Area) -> None:
    """A CAF open on a child outside: a second signal or a change to it is refused for the locality,
    before any answer that would name its holder."""
    with unit_of_work(engine) as s:
        holder = make_practitioner(s, make_org(s, name="North Clinic", kind="nhs_trust"), name="Hal Holder")
        caf = service.signal_caf(
            s,
            actor=actor(practitioner_id=holder.id),
            child_id=area.north,
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=utcnow(),
        )
    for reach in ("writes", "all"):
        with _app(engine, reach) as client:
            h = _pat(client, area)
            signal = {"no_risk_of_significant_harm": True}
            r = client.post(f"/api/v1/children/{area.north}/caf", json=signal, headers=h)
            assert r.status_code == 403 and "Hal Holder" not in r.text, r.text
            r = client.post(f"/api/v1/cafs/{caf.id}/close", json={"reason": "not needed"}, headers=h)
            assert r.status_code == 403 and "Hal Holder" not in r.text, r.text
            assert "North Early Help Team" in r.json()["detail"]
