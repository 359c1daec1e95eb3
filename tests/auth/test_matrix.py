"""The authorisation matrix: every /api/v1 route x every kind of caller, deny by default."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from joserfc import jwt
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from auth.grants import ROLE_SCOPES, current_grant
from auth.models import SubjectKind
from auth.policy import PUBLIC, Policy, all_routes, declared_policy
from directory.db import unit_of_work
from directory.models import Role, utcnow
from tests.conftest import count
from tests.fixtures.auth_builders import (
    bearer,
    claims_for,
    forged_alg_none,
    forged_bad_signature,
    forged_hmac_with_public_key,
    make_grant,
    signed,
    token_for,
)

AUTH_CODES = {
    "no-token",
    "invalid-token",
    "token-expired",
    "token-revoked",
    "no-grant",
    "grant-expired",
    "grant-revoked",
    "grant-suspended",
    "training-missing",
    "training-expired",
    "vetting-missing",
    "vetting-expired",
    "role-not-allowed",
    "insufficient-scope",
    "no-policy",
    "dev-header-refused",
    "grant-pending",
    "account-disabled",
    "client-disabled",
    "sign-in-ended",
    "client-responsible-lapsed",
}


def api_routes(app: FastAPI) -> list[tuple[str, str, Any]]:
    """(method, concrete path, route) for every /api/v1 route."""
    out = []
    for route in all_routes(app):
        if isinstance(route.original_route, APIRoute) and route.path.startswith("/api/v1"):
            path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), route.path)
            for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
                out.append((method, path, route))
    return out


def call(api: TestClient, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """Send the request with an empty JSON body for writes; return status and problem code."""
    body = {} if method in ("POST", "PUT", "PATCH") else None
    r = api.request(method, path, headers=headers, json=body)
    code = ""
    if r.headers.get("content-type", "").startswith("application/problem+json"):
        code = r.json().get("type", "").rsplit("/", 1)[-1]
    return r.status_code, code


def with_kid(state: AuthState, claims: dict[str, object], kid: str) -> str:
    """Signed with the real key but naming a kid nobody published."""
    _, alg, key = state.keys.current()
    return jwt.encode({"alg": alg, "kid": kid}, claims, key, algorithms=[alg])


def _setup_subjects(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        for role in Role:
            kind = "client" if role == Role.SYSTEM else "user"
            make_grant(s, f"{role.value}-user", role=role, kind=SubjectKind(kind))
        make_grant(
            s,
            "expired-user",
            valid_from=utcnow() - timedelta(days=100),
            valid_until=utcnow() - timedelta(days=1),
        )
        make_grant(s, "untrained-user", no_training=True)
        make_grant(s, "stale-training-user", training=date.today() - timedelta(days=400))


def test_every_api_route_x_every_caller(
    api: TestClient, app: FastAPI, state: AuthState, engine: Engine
) -> None:
    _setup_subjects(engine)
    routes = api_routes(app)
    assert len(routes) >= 20
    good = claims_for(state, "practitioner-user")
    broken: dict[str, Callable[[], dict[str, str]]] = {
        "no token": lambda: {"X-Purpose-Of-Use": "considering-caf"},
        "not bearer": lambda: {"Authorization": "Basic abc"},
        "garbage": lambda: bearer("not.a.jwt"),
        "bad signature": lambda: bearer(forged_bad_signature(state, good)),
        "expired": lambda: bearer(signed(state, {**good, "exp": int(time.time()) - 120})),
        "not yet valid": lambda: bearer(signed(state, {**good, "nbf": int(time.time()) + 600})),
        "wrong audience": lambda: bearer(signed(state, {**good, "aud": "https://elsewhere"})),
        "wrong issuer": lambda: bearer(signed(state, {**good, "iss": "https://evil.example"})),
        "alg none": lambda: bearer(forged_alg_none(state, good)),
        "HS256 with public key": lambda: bearer(forged_hmac_with_public_key(state, good)),
        "unknown kid": lambda: bearer(with_kid(state, good, "no-such-kid")),
        "dev header in production": lambda: {"X-Dev-Actor": "subject=x; role=directory_admin"},
    }
    denied_before = count(engine, "audit_event")
    refusals = 0
    for method, path, route in routes:
        for case, headers in broken.items():
            status, code = call(api, method, path, headers())
            assert status == 401, (case, method, path, status, code)
            refusals += 1
        for subject, expected_code in [
            ("expired-user", "grant-expired"),
            ("untrained-user", "training-missing"),
            ("stale-training-user", "training-expired"),
            ("nobody", "no-grant"),
        ]:
            status, code = call(api, method, path, bearer(token_for(state, subject)))
            assert (status, code) == (403, expected_code), (subject, method, path)
            refusals += 1
        policy = declared_policy(route.original_route)
        assert isinstance(policy, Policy), route.name
        for role in Role:
            kind = "client" if role == Role.SYSTEM else "user"
            token = token_for(state, f"{role.value}-user", role=role, kind=SubjectKind(kind))
            status, code = call(api, method, path, bearer(token))
            allowed = role in policy.roles and bool(set(ROLE_SCOPES[role]) & policy.scopes)
            if allowed:
                assert code not in AUTH_CODES, (role, method, path, status, code)
                assert status != 401
            else:
                assert status == 403 and code in {"role-not-allowed", "insufficient-scope"}, (
                    role,
                    method,
                    path,
                    status,
                    code,
                )
                refusals += 1
    # Every refusal is in the audit log as "denied".
    with engine.connect() as conn:
        denied = conn.execute(
            sa.text("SELECT count(*) FROM audit_event WHERE outcome = 'denied'")
        ).scalar_one()
    assert denied >= refusals
    assert count(engine, "audit_event") > denied_before


def test_a_token_without_the_scope_is_refused(api: TestClient, state: AuthState, engine: Engine) -> None:
    with unit_of_work(engine) as s:
        make_grant(s, "reader", scopes=("directory.search",))
    token = token_for(state, "reader", scopes=("directory.search",))
    r = api.post("/api/v1/children", headers=bearer(token), json={})
    assert r.status_code == 403 and r.json()["type"].endswith("insufficient-scope")
    # A scope in the token but no longer in the grant does not count either.
    wide = token_for(state, "reader", scopes=("directory.search", "directory.write"))
    r = api.post("/api/v1/children", headers=bearer(wide), json={})
    assert r.status_code == 403 and r.json()["type"].endswith("insufficient-scope")


@pytest.mark.parametrize("status", ["suspended", "revoked"])
def test_suspended_or_revoked_grant_says_so(
    api: TestClient, state: AuthState, engine: Engine, status: str
) -> None:
    with unit_of_work(engine) as s:
        make_grant(s, "sam", status=status)
    r = api.get("/api/v1/localities", headers=bearer(token_for(state, "sam")))
    assert r.status_code == 403
    assert r.json()["type"].endswith(f"grant-{status}")
    assert "administrator" in r.json()["detail"]


def test_missing_vetting_is_refused(api: TestClient, state: AuthState, engine: Engine) -> None:
    with unit_of_work(engine) as s:
        g = make_grant(s, "vera")
        g.vetting_checked_on = None
        s.add(g)
    r = api.get("/api/v1/localities", headers=bearer(token_for(state, "vera")))
    assert r.status_code == 403 and r.json()["type"].endswith("vetting-missing")


def test_401_carries_a_bearer_challenge(api: TestClient) -> None:
    r = api.get("/api/v1/localities")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.headers["content-type"].startswith("application/problem+json")


def test_public_routes_need_nothing(api: TestClient, app: FastAPI) -> None:
    for route in all_routes(app):
        public = declared_policy(route.original_route) == PUBLIC
        if public and "GET" in (route.methods or ()) and "{" not in route.path:
            assert api.get(route.path).status_code not in (401, 403), route.path


def test_the_live_grant_wins_over_newer_dead_ones_and_the_newest_says_why(
    api: TestClient, state: AuthState, engine: Engine
) -> None:
    now = utcnow()
    with unit_of_work(engine) as s:
        make_grant(s, "gil", role=Role.AUDITOR, valid_until=now + timedelta(days=10))
        make_grant(s, "gil", role=Role.PRACTITIONER, valid_until=now + timedelta(days=300))
        # Changed later, but expired: a live grant still lets them in, the longest-lasting first.
        make_grant(s, "gil", valid_from=now - timedelta(days=9), valid_until=now - timedelta(days=1))
    with unit_of_work(engine) as s:
        chosen = current_grant(s, subject="gil", kind=SubjectKind.USER, cfg=state.cfg)
    assert chosen.role == Role.PRACTITIONER.value
    r = api.get("/api/v1/localities", headers=bearer(token_for(state, "gil")))
    assert r.status_code == 200
    with unit_of_work(engine) as s:
        make_grant(s, "hal", valid_from=now - timedelta(days=9), valid_until=now - timedelta(days=1))
        make_grant(s, "hal", status="revoked")
    r = api.get("/api/v1/localities", headers=bearer(token_for(state, "hal")))
    assert r.status_code == 403 and r.json()["type"].endswith("grant-revoked")


def test_a_remembered_signature_still_gets_every_other_check(
    api: TestClient, state: AuthState, engine: Engine
) -> None:
    """The validator reads and checks a token once; its expiry, its key and forgeries are checked always."""
    with unit_of_work(engine) as s:
        make_grant(s, "tess")
    # Valid for a moment past the leeway: accepted, remembered, then refused once it has expired.
    leeway = state.cfg.leeway_seconds
    brief = signed(state, claims_for(state, "tess", exp=int(time.time()) - leeway + 2))
    assert api.get("/api/v1/localities", headers=bearer(brief)).status_code == 200
    assert api.get("/api/v1/localities", headers=bearer(brief)).status_code == 200
    time.sleep(2.5)
    r = api.get("/api/v1/localities", headers=bearer(brief))
    assert r.status_code == 401 and r.json()["type"].endswith("token-expired")
    # A remembered token with one byte of its signature changed is a new token: refused.
    good = token_for(state, "tess")
    assert api.get("/api/v1/localities", headers=bearer(good)).status_code == 200
    head, body, signature = good.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    r = api.get("/api/v1/localities", headers=bearer(f"{head}.{body}.{flipped}"))
    assert r.status_code == 401 and r.json()["type"].endswith("invalid-token")
    # A forged token naming the real key, sent after good ones, is still checked and refused.
    r = api.get("/api/v1/localities", headers=bearer(forged_bad_signature(state, claims_for(state, "tess"))))
    assert r.status_code == 401 and r.json()["type"].endswith("invalid-token")


def test_metrics_is_the_scrapers_alone_and_closed_when_unconfigured(
    api: TestClient, app: FastAPI, state: AuthState
) -> None:
    """/metrics is neither public nor a person's: its policy is SCRAPER (childindex/metrics.py checks
    the scrape token and networks); with neither configured it is not there, whoever asks."""
    from auth.policy import SCRAPER

    (route,) = [r for r in all_routes(app) if r.path == "/metrics"]
    assert declared_policy(route.original_route) == SCRAPER
    assert api.get("/metrics").status_code == 404
    assert api.get("/metrics", headers=bearer(token_for(state, "vera"))).status_code == 404
