"""Grants admin API: list, expiring, grant, renew, suspend, revoke; never beyond your own."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from directory.db import unit_of_work
from directory.models import Role, utcnow
from tests.fixtures.auth_builders import bearer, make_grant, token_for


def admin(
    engine: Engine,
    state: AuthState,
    *,
    scopes: tuple[str, ...] | None = None,
    localities: list[str] | None = None,
) -> dict[str, str]:
    with unit_of_work(engine) as s:
        make_grant(s, "ada", role=Role.DIRECTORY_ADMIN, scopes=scopes, localities=localities)
    return bearer(token_for(state, "ada", role=Role.DIRECTORY_ADMIN, scopes=scopes), purpose=None)


def new_grant(**over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "subject": "pat",
        "role": "practitioner",
        "reason": "joined the Early Help team",
        "training_completed_on": date.today().isoformat(),
        "vetting_checked_on": date.today().isoformat(),
        "valid_until": (utcnow() + timedelta(days=365)).isoformat(),
    }
    body.update(over)
    return body


def actions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT action FROM audit_event ORDER BY seq")).all()
    return [r[0] for r in rows]


def test_grant_lifecycle_is_audited_and_takes_effect(
    api: TestClient, engine: Engine, state: AuthState
) -> None:
    headers = admin(engine, state)
    r = api.post("/api/v1/grants", json=new_grant(), headers=headers)
    assert r.status_code == 201, r.text
    grant = r.json()
    assert grant["granted_by"] == "ada" and "directory.search" in grant["scopes"]
    pat = bearer(token_for(state, "pat"))
    assert api.get("/api/v1/localities", headers=pat).status_code == 200
    r = api.post(f"/api/v1/grants/{grant['id']}/suspend", json={"reason": "on leave"}, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    refused = api.get("/api/v1/localities", headers=pat)
    assert refused.status_code == 403 and "on leave" in refused.json()["detail"]
    api.post(f"/api/v1/grants/{grant['id']}/reinstate", json={"reason": "back"}, headers=headers)
    assert api.get("/api/v1/localities", headers=pat).status_code == 200
    until = (utcnow() + timedelta(days=400)).isoformat()
    r = api.post(
        f"/api/v1/grants/{grant['id']}/renew",
        json={"valid_until": until, "reason": "annual"},
        headers=headers,
    )
    assert r.status_code == 200 and r.json()["version"] == 4
    r = api.post(f"/api/v1/grants/{grant['id']}/revoke", json={"reason": "left"}, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    assert api.get("/api/v1/localities", headers=pat).json()["type"].endswith("grant-revoked")
    assert [a for a in actions(engine) if a.startswith("grant.")] == [
        "grant.create",
        "grant.suspend",
        "grant.reinstate",
        "grant.renew",
        "grant.revoke",
    ]


def test_list_and_expiring(api: TestClient, engine: Engine, state: AuthState) -> None:
    headers = admin(engine, state)
    with unit_of_work(engine) as s:
        make_grant(s, "soon", valid_until=utcnow() + timedelta(days=10))
        make_grant(s, "later", valid_until=utcnow() + timedelta(days=200))
    soon = api.get("/api/v1/grants", params={"expiring_within_days": 30}, headers=headers).json()
    assert [g["subject"] for g in soon] == ["soon"]
    everyone = api.get("/api/v1/grants", headers=headers).json()
    assert {g["subject"] for g in everyone} == {"ada", "soon", "later"}


def test_an_admin_cannot_grant_more_than_they_hold(api: TestClient, engine: Engine, state: AuthState) -> None:
    headers = admin(engine, state, scopes=("directory.search", "grants.admin"), localities=["EAST"])
    too_many = api.post(
        "/api/v1/grants",
        json=new_grant(scopes=["directory.write"], localities=["EAST"]),
        headers=headers,
    )
    assert too_many.status_code == 403 and "directory.write" in too_many.json()["detail"]
    elsewhere = api.post(
        "/api/v1/grants",
        json=new_grant(scopes=["directory.search"], localities=["WEST"]),
        headers=headers,
    )
    assert elsewhere.status_code == 403
    self_grant = api.post(
        "/api/v1/grants",
        json=new_grant(subject="ada", scopes=["directory.search"], localities=["EAST"]),
        headers=headers,
    )
    assert self_grant.status_code == 403
    ok = api.post(
        "/api/v1/grants",
        json=new_grant(scopes=["directory.search"], localities=["EAST"]),
        headers=headers,
    )
    assert ok.status_code == 201, ok.text


def test_a_designated_practitioner_cannot_grant_an_admin_role(
    api: TestClient, engine: Engine, state: AuthState
) -> None:
    with unit_of_work(engine) as s:
        make_grant(s, "dee", role=Role.DESIGNATED_PRACTITIONER, scopes=("directory.search", "grants.admin"))
    headers = bearer(token_for(state, "dee", scopes=("directory.search", "grants.admin")))
    r = api.post("/api/v1/grants", json=new_grant(role="directory_admin"), headers=headers)
    assert r.status_code == 403 and r.json()["type"].endswith("role-not-allowed")


def test_a_practitioner_cannot_use_the_grants_api(api: TestClient, engine: Engine, state: AuthState) -> None:
    with unit_of_work(engine) as s:
        make_grant(s, "pat")
    r = api.get("/api/v1/grants", headers=bearer(token_for(state, "pat")))
    assert r.status_code == 403
