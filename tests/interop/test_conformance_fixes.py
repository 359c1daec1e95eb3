"""What the conformance suite (test_conformance.py) found the server doing against R4, each fixed and
pinned here with a test that fails on the code before the fix."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from interop import systems as S
from tests.interop.conftest import TRUST_SCOPES, World, system_headers
from tests.interop.r4_check import bundle_problems, r4_problems
from tests.interop.test_fhir_api import outcome
from tests.interop.test_fhir_writes import _subscription


def _ids(api: TestClient, url: str, headers: dict[str, str]) -> set[str]:
    r = api.get(url, headers=headers)
    assert r.status_code == 200, r.text
    assert r4_problems(r.json()) == []
    return {e["resource"]["id"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"}


def test_organization_type_matches_either_coding_the_resource_carries(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    """Organization?type=<HL7 organization-type>|prov found nothing although the trust carries exactly
    that coding: only our own kind code was compared, whatever the system."""
    h = system_headers(state, engine)
    trust, school = str(world.trust), str(world.school)
    prov = _ids(api, f"/fhir/Organization?type={S.ORGANIZATION_TYPE}|prov", h)
    assert trust in prov and school not in prov
    assert school in _ids(api, f"/fhir/Organization?type={S.ORGANIZATION_TYPE}|edu", h)
    assert _ids(api, f"/fhir/Organization?type={S.ORGANISATION_KIND}|nhs_trust", h) == {trust}
    assert trust in _ids(api, "/fhir/Organization?type=prov", h)  # a bare code: either system
    assert trust in _ids(api, "/fhir/Organization?type=nhs_trust", h)
    # a code of another system, or no code this server knows, matches nothing (not everything)
    assert _ids(api, "/fhir/Organization?type=http://other.example/types|prov", h) == set()
    assert _ids(api, f"/fhir/Organization?type={S.ORGANIZATION_TYPE}|nhs_trust", h) == set()
    assert _ids(api, "/fhir/Organization?type=bakery", h) == set()


def test_the_subscription_search_has_a_self_link_and_ignores_unknown_parameters(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    """The Subscription searchset had no self link (R4 http: a search answer carries one), and any
    parameter was refused (R4: an unknown one is ignored unless Prefer: handling=strict)."""
    scopes = (*TRUST_SCOPES, "system/Subscription.crds")
    h = {**system_headers(state, engine, subject="trust-sub", scopes=scopes), "Content-Type": S.FHIR_JSON}
    made = api.post("/fhir/Subscription", headers=h, json=_subscription("Flag?code=caf-signalled"))
    assert made.status_code == 201, made.text
    r = api.get("/fhir/Subscription", headers=h)
    assert r.status_code == 200 and bundle_problems(r.json()) == [], r.text
    assert r.json()["link"] == [{"relation": "self", "url": "http://testserver/fhir/Subscription"}]
    r = api.get("/fhir/Subscription?_count=5&colour=blue", headers=h)
    assert r.status_code == 200 and r4_problems(r.json()) == [], r.text
    entries = r.json()["entry"]
    assert [e["resource"]["id"] for e in entries if e["search"]["mode"] == "match"] == [made.json()["id"]]
    warning = [e["resource"] for e in entries if e["search"]["mode"] == "outcome"]
    assert "_count, colour" in warning[0]["issue"][0]["diagnostics"]
    assert r.json()["link"][0]["url"].endswith("/fhir/Subscription")  # the ignored ones left out
    said = outcome(
        api.get("/fhir/Subscription?colour=blue", headers={**h, "Prefer": "handling=strict"}),
        400,
        "not-supported",
    )
    assert "handling=strict" in said


def test_elements_keeps_what_r4_requires(
    api: TestClient, engine: Engine, state: AuthState, world: World
) -> None:
    """EpisodeOfCare?…&_elements=status answered EpisodeOfCare without `patient` (1..1 in R4): not a
    valid resource, and fhirclient's strict Bundle model refused the whole answer. R4: a server
    should return the mandatory elements whether asked for or not."""
    h = system_headers(state, engine)
    r = api.get(f"/fhir/EpisodeOfCare?patient=Patient/{world.child}&_elements=status", headers=h)
    assert r.status_code == 200 and r4_problems(r.json()) == [], r.text
    episode = r.json()["entry"][0]["resource"]
    assert set(episode) == {"resourceType", "id", "meta", "status", "patient"}, episode
    assert {"system": S.V3_OBSERVATION_VALUE, "code": "SUBSETTED"} in episode["meta"]["tag"]
    r = api.get(f"/fhir/Flag?patient=Patient/{world.child}&_elements=period", headers=h)
    assert r.status_code == 200 and r4_problems(r.json()) == [], r.text
    assert {"status", "code", "subject"} <= set(r.json()["entry"][0]["resource"])
