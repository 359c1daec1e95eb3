"""Finding 5: grant administration cannot be bypassed (localities, own access, clients, dates, subjects)."""

from __future__ import annotations

import base64
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from auth.models import AccessGrant, SubjectKind
from directory.db import unit_of_work
from directory.models import Role, utcnow
from tests.fixtures.auth_builders import bearer, make_client, make_grant, token_for

ADMIN_SCOPES = ("directory.search", "directory.write", "grants.admin", "audit.read")


def admin_token(state: AuthState, subject: str) -> dict[str, str]:
    """Request headers for an admin's token."""
    return bearer(token_for(state, subject, role=Role.DIRECTORY_ADMIN, scopes=ADMIN_SCOPES), purpose=None)


def basic(client_id: str, secret: str) -> dict[str, str]:
    """HTTP Basic client authentication."""
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def grant_body(**over: Any) -> dict[str, Any]:
    """A valid new user grant for "pat"."""
    body: dict[str, Any] = {
        "subject": "pat",
        "role": "practitioner",
        "reason": "joined the Early Help team",
        "training_completed_on": date.today().isoformat(),
        "vetting_checked_on": date.today().isoformat(),
        "valid_until": (utcnow() + timedelta(days=365)).isoformat(),
    }
    body.update(over)
    return body


def grant_id(engine: Engine, subject: str) -> str:
    """The id of the subject's (only) grant."""
    with unit_of_work(engine) as s:
        from sqlmodel import select

        return str(s.exec(select(AccessGrant.id).where(AccessGrant.subject == subject)).one())


def status_of(engine: Engine, subject: str) -> str:
    """The status of the subject's (only) grant."""
    with unit_of_work(engine) as s:
        from sqlmodel import select

        return str(s.exec(select(AccessGrant.status).where(AccessGrant.subject == subject)).one())


# --------------------------------------------------------------------------- localities


@pytest.fixture
def admins(engine: Engine, state: AuthState) -> dict[str, dict[str, str]]:
    """ada covers EAST only; cora and bea cover the whole authority; pat and wes are practitioners."""
    with unit_of_work(engine) as s:
        make_grant(s, "ada", role=Role.DIRECTORY_ADMIN, scopes=ADMIN_SCOPES, localities=["EAST"])
        make_grant(s, "cora", role=Role.DIRECTORY_ADMIN, scopes=ADMIN_SCOPES)
        make_grant(s, "bea", role=Role.DIRECTORY_ADMIN, scopes=ADMIN_SCOPES)
        make_grant(s, "pat", localities=["EAST"])
        make_grant(s, "wes", localities=["WEST"])
    return {name: admin_token(state, name) for name in ("ada", "cora", "bea")}


@pytest.mark.parametrize("change", ["renew", "suspend", "revoke"])
def test_a_locality_admin_cannot_change_a_county_wide_grant(
    api: TestClient, engine: Engine, admins: dict[str, dict[str, str]], change: str
) -> None:
    body: dict[str, Any] = {"reason": "because I can"}
    if change == "renew":
        body["valid_until"] = (utcnow() + timedelta(days=200)).isoformat()
    r = api.post(f"/api/v1/grants/{grant_id(engine, 'cora')}/{change}", json=body, headers=admins["ada"])
    assert r.status_code == 403, r.text
    assert "EAST" in r.json()["detail"] and "whole authority" in r.json()["detail"]
    assert status_of(engine, "cora") == "active"
    # Nor a grant in another locality; a grant within EAST is hers to manage.
    r = api.post(f"/api/v1/grants/{grant_id(engine, 'wes')}/{change}", json=body, headers=admins["ada"])
    assert r.status_code == 403, r.text
    r = api.post(f"/api/v1/grants/{grant_id(engine, 'pat')}/{change}", json=body, headers=admins["ada"])
    assert r.status_code == 200, r.text


def test_a_locality_admin_cannot_reinstate_a_grant_outside_her_localities(
    api: TestClient, engine: Engine, admins: dict[str, dict[str, str]]
) -> None:
    r = api.post(
        f"/api/v1/grants/{grant_id(engine, 'wes')}/suspend", json={"reason": "leave"}, headers=admins["cora"]
    )
    assert r.status_code == 200
    r = api.post(
        f"/api/v1/grants/{grant_id(engine, 'wes')}/reinstate", json={"reason": "back"}, headers=admins["ada"]
    )
    assert r.status_code == 403 and status_of(engine, "wes") == "suspended"


# --------------------------------------------------------------------------- own access, through a client


def test_an_admin_cannot_mint_an_admin_client_and_renew_her_own_grant(
    api: TestClient, engine: Engine, state: AuthState
) -> None:
    """The attack: register a client, grant it directory_admin + grants.admin, renew yourself with it."""
    with unit_of_work(engine) as s:
        make_grant(s, "ada", role=Role.DIRECTORY_ADMIN, scopes=ADMIN_SCOPES)
        make_client(s, "ada-bot", secret="bot-secret-value", scopes=ADMIN_SCOPES)
    r = api.post(
        "/api/v1/grants",
        json=grant_body(
            subject="ada-bot", subject_kind="client", role="directory_admin", scopes=list(ADMIN_SCOPES)
        ),
        headers=admin_token(state, "ada"),
    )
    assert r.status_code in (403, 422), r.text
    token = api.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "grants.admin"},
        headers=basic("ada-bot", "bot-secret-value"),
    )
    assert token.status_code == 400, token.text


def test_a_client_never_administers_grants_even_with_an_old_grant_that_says_so(
    api: TestClient, engine: Engine, state: AuthState
) -> None:
    """A client grant holding grants.admin from before the rule: its token still cannot manage grants."""
    with unit_of_work(engine) as s:
        make_grant(
            s, "ada", role=Role.DIRECTORY_ADMIN, scopes=ADMIN_SCOPES, valid_until=utcnow() + timedelta(days=5)
        )
        make_grant(s, "ada-bot", kind=SubjectKind.CLIENT, role=Role.DIRECTORY_ADMIN, scopes=ADMIN_SCOPES)
    bot = bearer(
        token_for(state, "ada-bot", kind=SubjectKind.CLIENT, role=Role.DIRECTORY_ADMIN, scopes=ADMIN_SCOPES),
        purpose=None,
    )
    r = api.post(
        f"/api/v1/grants/{grant_id(engine, 'ada')}/renew",
        json={"valid_until": (utcnow() + timedelta(days=300)).isoformat(), "reason": "renew myself"},
        headers=bot,
    )
    assert r.status_code == 403, r.text


def client_grant(**over: Any) -> dict[str, Any]:
    """A new grant for the system client "trust-epr", with pat responsible for it."""
    body: dict[str, Any] = {
        "subject": "trust-epr",
        "subject_kind": "client",
        "role": "system",
        "scopes": ["directory.search"],  # an admin grants only scopes they hold
        "responsible": "pat",
        "training_completed_on": None,
        "vetting_checked_on": None,
    }
    return grant_body(**{**body, **over})


def test_a_client_grant_waits_for_a_second_admin(
    api: TestClient, engine: Engine, state: AuthState, admins: dict[str, dict[str, str]]
) -> None:
    with unit_of_work(engine) as s:
        make_client(
            s, "trust-epr", secret="epr-secret-value", scopes=("system/Patient.rs", "directory.search")
        )
    r = api.post("/api/v1/grants", json=client_grant(), headers=admins["cora"])
    assert r.status_code == 201, r.text
    grant = r.json()
    assert grant["status"] == "pending" and grant["responsible"] == "pat" and grant["approved_by"] is None
    token = api.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic("trust-epr", "epr-secret-value"),
    )
    assert token.status_code == 400 and "approv" in token.json()["error_description"]
    # Not by the admin who made it, nor by the person responsible for the client.
    mine = api.post(f"/api/v1/grants/{grant['id']}/approve", json={"reason": "ok"}, headers=admins["cora"])
    assert mine.status_code == 403 and "second administrator" in mine.json()["detail"]
    # A pending grant is not made live by reinstating it.
    sneaky = api.post(f"/api/v1/grants/{grant['id']}/reinstate", json={"reason": "ok"}, headers=admins["bea"])
    assert sneaky.status_code in (403, 409) and status_of(engine, "trust-epr") == "pending"
    r = api.post(
        f"/api/v1/grants/{grant['id']}/approve", json={"reason": "checked the DPIA"}, headers=admins["bea"]
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active" and r.json()["approved_by"] == "bea"
    token = api.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic("trust-epr", "epr-secret-value"),
    )
    assert token.status_code == 200, token.text


def test_the_person_responsible_cannot_approve_or_renew_their_client(
    api: TestClient, engine: Engine, state: AuthState, admins: dict[str, dict[str, str]]
) -> None:
    r = api.post("/api/v1/grants", json=client_grant(responsible="bea"), headers=admins["cora"])
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    r = api.post(f"/api/v1/grants/{gid}/approve", json={"reason": "mine"}, headers=admins["bea"])
    assert r.status_code == 403 and "responsible" in r.json()["detail"]
    with unit_of_work(engine) as s:
        make_grant(s, "dan", role=Role.DIRECTORY_ADMIN, scopes=ADMIN_SCOPES)
    assert (
        api.post(
            f"/api/v1/grants/{gid}/approve", json={"reason": "ok"}, headers=admin_token(state, "dan")
        ).status_code
        == 200
    )
    until = (utcnow() + timedelta(days=300)).isoformat()
    r = api.post(
        f"/api/v1/grants/{gid}/renew", json={"valid_until": until, "reason": "mine"}, headers=admins["bea"]
    )
    assert r.status_code == 403, r.text
    # Ending access is always allowed to whoever answers for it.
    r = api.post(f"/api/v1/grants/{gid}/suspend", json={"reason": "key leaked"}, headers=admins["bea"])
    assert r.status_code == 200, r.text
    r = api.post(f"/api/v1/grants/{gid}/reinstate", json={"reason": "new key"}, headers=admins["bea"])
    assert r.status_code == 403, r.text


def test_the_admin_who_registered_a_client_cannot_approve_or_renew_its_grant(
    api: TestClient, engine: Engine, state: AuthState, admins: dict[str, dict[str, str]]
) -> None:
    with unit_of_work(engine) as s:
        make_client(s, "trust-epr", secret="epr-secret-value", registered_by="bea")
    gid = api.post("/api/v1/grants", json=client_grant(), headers=admins["cora"]).json()["id"]
    r = api.post(f"/api/v1/grants/{gid}/approve", json={"reason": "mine"}, headers=admins["bea"])
    assert r.status_code == 403 and "registered" in r.json()["detail"]


@pytest.mark.parametrize(
    ("responsible", "why"),
    [("nobody", "no current grant"), ("stale", "training"), ("ada-bot", "person"), (None, "responsible")],
)
def test_a_client_grant_names_a_current_person_responsible(
    api: TestClient,
    engine: Engine,
    admins: dict[str, dict[str, str]],
    responsible: str | None,
    why: str,
) -> None:
    with unit_of_work(engine) as s:
        make_grant(s, "stale", training=date.today() - timedelta(days=400))
        make_grant(s, "ada-bot", kind=SubjectKind.CLIENT, role=Role.SYSTEM)
    r = api.post("/api/v1/grants", json=client_grant(responsible=responsible), headers=admins["cora"])
    assert r.status_code in (403, 422), r.text
    assert why in r.json()["detail"]


def test_the_client_stops_when_its_responsible_person_s_access_ends(
    api: TestClient, engine: Engine, state: AuthState, admins: dict[str, dict[str, str]]
) -> None:
    with unit_of_work(engine) as s:
        make_client(s, "trust-epr", secret="epr-secret-value")
    gid = api.post("/api/v1/grants", json=client_grant(), headers=admins["cora"]).json()["id"]
    assert (
        api.post(f"/api/v1/grants/{gid}/approve", json={"reason": "ok"}, headers=admins["bea"]).status_code
        == 200
    )
    epr = bearer(token_for(state, "trust-epr", kind=SubjectKind.CLIENT, role=Role.SYSTEM))
    assert api.get("/api/v1/localities", headers=epr).status_code == 200
    r = api.post(
        f"/api/v1/grants/{grant_id(engine, 'pat')}/suspend", json={"reason": "left"}, headers=admins["bea"]
    )
    assert r.status_code == 200
    refused = api.get("/api/v1/localities", headers=epr)
    assert refused.status_code == 403 and refused.json()["type"].endswith("client-responsible-lapsed")
    assert "pat" in refused.json()["detail"]
    token = api.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic("trust-epr", "epr-secret-value"),
    )
    assert token.status_code == 400 and "responsible" in token.json()["error_description"]


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    "over",
    [
        {"training_completed_on": (date.today() + timedelta(days=3)).isoformat()},
        {"vetting_checked_on": (date.today() + timedelta(days=3)).isoformat()},
        {"training_completed_on": (date.today() - timedelta(days=400)).isoformat()},
        {"vetting_checked_on": (date.today() - timedelta(days=4 * 365)).isoformat()},
        {"valid_until": "2099-01-01T00:00:00Z"},
        {"valid_until": "9999-12-31T23:59:59-14:00"},
        {"valid_until": "0001-01-01T00:00:00+14:00"},
        {"valid_from": "9999-12-31T23:59:59-14:00"},
        {"training_completed_on": "9999-12-31"},
    ],
)
def test_grant_dates_are_bounded_when_granting(
    api: TestClient, engine: Engine, admins: dict[str, dict[str, str]], over: dict[str, str]
) -> None:
    r = api.post("/api/v1/grants", json=grant_body(subject="newbie", **over), headers=admins["cora"])
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "over",
    [
        {"valid_until": "2099-01-01T00:00:00Z"},
        {"valid_until": "9999-12-31T23:59:59-14:00"},
        {"training_completed_on": (date.today() + timedelta(days=1)).isoformat()},
        {"vetting_checked_on": "9999-12-31"},
    ],
)
def test_grant_dates_are_bounded_when_renewing(
    api: TestClient, engine: Engine, admins: dict[str, dict[str, str]], over: dict[str, str]
) -> None:
    body = {"valid_until": (utcnow() + timedelta(days=300)).isoformat(), "reason": "annual", **over}
    r = api.post(f"/api/v1/grants/{grant_id(engine, 'pat')}/renew", json=body, headers=admins["cora"])
    assert r.status_code == 422, r.text
    with unit_of_work(engine) as s:
        from sqlmodel import select

        until = s.exec(select(AccessGrant.valid_until).where(AccessGrant.subject == "pat")).one()
    assert until < utcnow() + timedelta(days=100)  # unchanged


def test_three_years_is_the_longest_grant(
    api: TestClient, engine: Engine, admins: dict[str, dict[str, str]]
) -> None:
    ok = api.post(
        "/api/v1/grants",
        json=grant_body(subject="newbie", valid_until=(utcnow() + timedelta(days=3 * 365)).isoformat()),
        headers=admins["cora"],
    )
    assert ok.status_code == 201, ok.text
    too_long = api.post(
        "/api/v1/grants",
        json=grant_body(subject="newbie2", valid_until=(utcnow() + timedelta(days=3 * 365 + 2)).isoformat()),
        headers=admins["cora"],
    )
    assert too_long.status_code == 422 and "1095 days" in too_long.json()["detail"]


# --------------------------------------------------------------------------- subjects


@pytest.mark.parametrize(
    "subject",
    [
        "pat\x00",
        "pat\x07x",
        "pa\u202etap",  # right-to-left override
        "pat\u200b",  # zero-width space
        "pa t",
        "pat\tx",
        "pat\nx",
        "p\u0430t",  # Cyrillic a
        "pat\u00a0",  # no-break space (not stripped as whitespace by every reader)
        "-pat",
        "",
    ],
)
def test_grant_subjects_are_limited_to_safe_characters(
    api: TestClient, engine: Engine, admins: dict[str, dict[str, str]], subject: str
) -> None:
    r = api.post("/api/v1/grants", json=grant_body(subject=subject), headers=admins["cora"])
    # (a NUL is refused before any route reads the body: 400 from the input guard)
    assert r.status_code == (400 if "\x00" in subject else 422), (subject, r.text)


@pytest.mark.parametrize(
    "subject",
    ["hannah.jones@trust.nhs.uk", "o'brien@school.sch.uk", "demo.practitioner", "sam_senco-2", "trust-epr"],
)
def test_real_subjects_are_accepted(
    api: TestClient, engine: Engine, admins: dict[str, dict[str, str]], subject: str
) -> None:
    r = api.post("/api/v1/grants", json=grant_body(subject=subject), headers=admins["cora"])
    assert r.status_code == 201, (subject, r.text)
