"""Finding 6: access that should have ended stops at the next request, and external tokens assert nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from auth import registry
from auth.deps import AuthState
from auth.models import SubjectKind
from childindex.app import create_app
from childindex.cli import app as cli
from childindex.settings import Settings
from directory import service
from directory.db import unit_of_work
from directory.models import ConsentCreate, InvolvementCreate, Role
from tests.auth.conftest import ISSUER
from tests.auth.test_flows import basic, refresh, tokens_for_hannah
from tests.auth.test_upstream import IDP, idp  # noqa: F401  (the simulated provider fixture)
from tests.fixtures.auth_builders import bearer, claims_for, make_client, make_grant, signed
from tests.fixtures.builders import actor, make_child, make_org, make_practitioner, make_service

runner = CliRunner()
LOCALITIES = "/api/v1/localities"


def problem(r: Any) -> str:
    """The problem type's last segment."""
    return str(r.json().get("type", "")).rsplit("/", 1)[-1]


# --------------------------------------------------------------------------- ending access


def test_a_disabled_account_gets_no_new_tokens_and_its_tokens_stop(
    api: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = tokens_for_hannah(api, engine)
    assert api.get(LOCALITIES, headers=bearer(tokens["access_token"])).status_code == 200
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    assert runner.invoke(cli, ["users", "disable", "hannah"]).exit_code == 0
    status, body = refresh(api, tokens["refresh_token"])
    assert status == 400 and body["error"] == "invalid_grant", body
    r = api.get(LOCALITIES, headers=bearer(tokens["access_token"]))
    assert r.status_code in (401, 403) and problem(r) in ("account-disabled", "sign-in-ended"), r.text
    # Enabling the account again does not bring back the sign-in it ended.
    assert runner.invoke(cli, ["users", "enable", "hannah"]).exit_code == 0
    assert refresh(api, tokens["refresh_token"])[0] == 400
    assert api.get(LOCALITIES, headers=bearer(tokens["access_token"])).status_code == 401


def test_a_disabled_account_s_tokens_stop_even_without_a_sign_in_to_end(
    api: TestClient, engine: Engine, state: AuthState, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fixtures.auth_builders import make_user, token_for

    with unit_of_work(engine) as s:
        make_user(s, "una")
        make_grant(s, "una")
    token = token_for(state, "una")
    assert api.get(LOCALITIES, headers=bearer(token)).status_code == 200
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    assert runner.invoke(cli, ["users", "disable", "una"]).exit_code == 0
    r = api.get(LOCALITIES, headers=bearer(token))
    assert r.status_code == 403 and problem(r) == "account-disabled", r.text
    assert "disabled" in r.json()["detail"]


def test_a_switched_off_client_s_live_tokens_stop(api: TestClient, engine: Engine) -> None:
    with unit_of_work(engine) as s:
        make_client(s, "simple-system", secret="s3cret-value", scopes=("directory.search",))
        make_grant(s, "simple-system", kind=SubjectKind.CLIENT, role=Role.SYSTEM)
    r = api.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic("simple-system", "s3cret-value"),
    )
    token = r.json()["access_token"]
    assert api.get(LOCALITIES, headers=bearer(token)).status_code == 200
    with unit_of_work(engine) as s:
        registry.update_client(
            s, actor=actor(Role.DIRECTORY_ADMIN, subject="ada"), client_id="simple-system", active=False
        )
    r = api.get(LOCALITIES, headers=bearer(token))
    assert r.status_code == 403 and problem(r) == "client-disabled", r.text


def test_a_switched_off_app_s_user_tokens_stop(api: TestClient, engine: Engine) -> None:
    tokens = tokens_for_hannah(api, engine)
    with unit_of_work(engine) as s:
        registry.update_client(
            s, actor=actor(Role.DIRECTORY_ADMIN, subject="ada"), client_id="practice-app", active=False
        )
    r = api.get(LOCALITIES, headers=bearer(tokens["access_token"]))
    assert r.status_code == 403 and problem(r) == "client-disabled", r.text


def test_a_reused_refresh_token_ends_the_sign_in_s_access_tokens(api: TestClient, engine: Engine) -> None:
    first = tokens_for_hannah(api, engine)
    status, second = refresh(api, first["refresh_token"])
    assert status == 200
    assert api.get(LOCALITIES, headers=bearer(second["access_token"])).status_code == 200
    status, _ = refresh(api, first["refresh_token"])  # replayed: someone else holds a copy
    assert status == 400
    for access in (second["access_token"], first["access_token"]):
        r = api.get(LOCALITIES, headers=bearer(access))
        assert r.status_code == 401 and problem(r) == "sign-in-ended", r.text


def test_revoking_the_refresh_token_ends_the_sign_in(api: TestClient, engine: Engine) -> None:
    tokens = tokens_for_hannah(api, engine)
    r = api.post("/oauth/revoke", data={"token": tokens["refresh_token"], "client_id": "practice-app"})
    assert r.status_code == 200
    r = api.get(LOCALITIES, headers=bearer(tokens["access_token"]))
    assert r.status_code == 401 and problem(r) == "sign-in-ended", r.text
    with unit_of_work(engine) as s:
        make_client(s, "gateway", secret="gateway-secret", grant_types="client_credentials")
    seen = api.post(
        "/oauth/introspect",
        data={"token": tokens["access_token"]},
        headers=basic("gateway", "gateway-secret"),
    )
    assert seen.json() == {"active": False}


# --------------------------------------------------------------------------- token shape


def test_an_access_token_must_say_it_is_one(api: TestClient, engine: Engine, state: AuthState) -> None:
    with unit_of_work(engine) as s:
        make_grant(s, "tess")
    kid, alg, key = state.keys.current()
    claims = claims_for(state, "tess")
    for typ in (None, "JWT", "id+jwt"):
        header = {"alg": alg, "kid": kid, **({"typ": typ} if typ else {})}
        token = jwt.encode(header, {**claims, "jti": uuid.uuid4().hex}, key, algorithms=[alg])
        r = api.get(LOCALITIES, headers=bearer(token))
        assert r.status_code == 401 and "at+jwt" in r.json()["detail"], (typ, r.text)
    good = jwt.encode({"alg": alg, "kid": kid, "typ": "at+jwt"}, claims, key, algorithms=[alg])
    assert api.get(LOCALITIES, headers=bearer(good)).status_code == 200


def test_a_token_may_not_live_longer_than_the_maximum(
    api: TestClient, engine: Engine, state: AuthState
) -> None:
    with unit_of_work(engine) as s:
        make_grant(s, "tess")
    now = int(time.time())
    long_lived = signed(state, claims_for(state, "tess", exp=now + 24 * 3600))
    r = api.get(LOCALITIES, headers=bearer(long_lived))
    assert r.status_code == 401 and "lifetime" in r.json()["detail"], r.text
    backdated = signed(state, claims_for(state, "tess", iat=now - 24 * 3600, nbf=now - 24 * 3600))
    r = api.get(LOCALITIES, headers=bearer(backdated))
    assert r.status_code == 401 and "lifetime" in r.json()["detail"], r.text
    no_iat = claims_for(state, "tess")
    del no_iat["iat"]
    assert api.get(LOCALITIES, headers=bearer(signed(state, no_iat))).status_code == 401


def test_the_maximum_lifetime_is_a_setting(engine: Engine, state: AuthState) -> None:
    settings = Settings(
        environment="production",
        database_url="sqlite://",
        issuer=ISSUER,
        secret_key="k",
        max_token_lifetime_minutes=3 * 24 * 60,
    )
    with unit_of_work(engine) as s:
        make_grant(s, "tess")
    with TestClient(create_app(settings, engine=engine), raise_server_exceptions=False) as api:
        auth = api.app.state.auth  # type: ignore[attr-defined]
        token = signed(auth, claims_for(auth, "tess", exp=int(time.time()) + 24 * 3600))
        assert api.get(LOCALITIES, headers=bearer(token)).status_code == 200
    with pytest.raises(ValidationError, match="access_token_minutes"):
        Settings(access_token_minutes=30, max_token_lifetime_minutes=20)


# --------------------------------------------------------------------------- the external issuer


def external_settings(**over: Any) -> Settings:
    """Production settings trusting the simulated provider's access tokens."""
    values: dict[str, Any] = {
        "environment": "production",
        "database_url": "sqlite://",
        "issuer": ISSUER,
        "secret_key": "k",
        "external_issuer": IDP,
        "external_jwks_url": f"{IDP}/protocol/openid-connect/certs",
        "external_audience": "childindex-api",
        "search_rate_per_minute": 1000,
    }
    values.update(over)
    return Settings(**values)


@pytest.fixture
def ext(engine: Engine, idp: dict[str, Any]) -> Iterator[TestClient]:  # noqa: F811
    """The app trusting the provider."""
    with TestClient(create_app(external_settings(), engine=engine), raise_server_exceptions=False) as c:
        yield c


def external_token(idp: dict[str, Any], typ: str | None = "at+jwt", **over: Any) -> str:  # noqa: F811
    """An access token signed by the provider."""
    now = int(time.time())
    claims = {
        "iss": IDP,
        "aud": "childindex-api",
        "sub": "eve@trust.nhs.uk",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "scope": "directory.search",
        "azp": "la-portal",
    }
    claims.update(over)
    key = idp["keys"][0]
    header = {"alg": "RS256", "kid": key.kid, **({"typ": typ} if typ else {})}
    return jwt.encode(header, claims, key, algorithms=["RS256"])


def test_an_external_token_cannot_claim_to_be_a_client(
    ext: TestClient,
    engine: Engine,
    idp: dict[str, Any],  # noqa: F811
) -> None:
    with unit_of_work(engine) as s:
        make_grant(s, "la-portal", kind=SubjectKind.CLIENT, role=Role.SYSTEM)
    token = external_token(
        idp, sub="la-portal", sub_kind="client", scope="directory.search system/Patient.rs"
    )
    r = ext.get(LOCALITIES, headers=bearer(token))
    assert r.status_code == 403 and problem(r) == "no-grant", r.text


def test_an_external_token_cannot_claim_a_practitioner(
    ext: TestClient,
    engine: Engine,
    idp: dict[str, Any],  # noqa: F811
) -> None:
    """practitioner_id unlocks a practitioner's sensitive involvements: only the sign-in subject finds it."""
    with unit_of_work(engine) as s:
        child = make_child(s)
        trust = make_org(s, name="Demoshire Health", kind="nhs_trust")
        nurse = make_practitioner(
            s, trust, name="Nia Nurse", role="sexual health nurse", subject="nia@trust.nhs.uk"
        )
        clinic = make_service(
            s,
            trust,
            name="Sexual Health Clinic",
            service_type="sexual_health",
            level_of_need=2,
            tier="specialist",
            sensitive=True,
            sensitive_category="sexual_health",
        )
        consent = service.record_consent(
            s,
            actor=actor(),
            child_id=child,
            data=ConsentCreate(
                scope="sensitive:sexual_health", given_by_kind="parent_carer", given_by_name="Jane Smith"
            ),
        )
        service.record_involvement(
            s,
            actor=actor(practitioner_id=nurse.id),
            child_id=child,
            data=InvolvementCreate(
                service_id=clinic.id,
                practitioner_id=nurse.id,
                role="nurse",
                level_of_need=2,
                start_date=date.today(),
                consent_id=consent.id,
            ),
        )
        make_grant(s, "eve@trust.nhs.uk")
        make_grant(s, "nia@trust.nhs.uk")
        nurse_id = nurse.id
    card = f"/api/v1/children/{child}"
    eve = ext.get(card, headers=bearer(external_token(idp, practitioner_id=str(nurse_id))))
    assert eve.status_code == 200, eve.text
    assert "Sexual Health Clinic" not in eve.text
    nia = ext.get(card, headers=bearer(external_token(idp, sub="nia@trust.nhs.uk")))
    assert nia.status_code == 200 and "Sexual Health Clinic" in nia.text


def test_external_tokens_are_checked_for_type_and_lifetime(
    ext: TestClient,
    engine: Engine,
    idp: dict[str, Any],  # noqa: F811
) -> None:
    with unit_of_work(engine) as s:
        make_grant(s, "eve@trust.nhs.uk")
    assert ext.get(LOCALITIES, headers=bearer(external_token(idp))).status_code == 200
    assert ext.get(LOCALITIES, headers=bearer(external_token(idp, typ="JWT"))).status_code == 401
    week = external_token(idp, exp=int(time.time()) + 7 * 24 * 3600)
    assert ext.get(LOCALITIES, headers=bearer(week)).status_code == 401


def test_the_external_subject_claim_is_configured(engine: Engine, idp: dict[str, Any]) -> None:  # noqa: F811
    with unit_of_work(engine) as s:
        make_grant(s, "eve@trust.nhs.uk")
    settings = external_settings(external_subject_claim="preferred_username", external_token_typ="JWT")
    with TestClient(create_app(settings, engine=engine), raise_server_exceptions=False) as api:
        token = external_token(idp, typ="JWT", sub="f3a1-uuid", preferred_username="eve@trust.nhs.uk")
        assert api.get(LOCALITIES, headers=bearer(token)).status_code == 200
        anonymous = external_token(idp, typ="JWT", sub="eve@trust.nhs.uk")  # no preferred_username
        assert api.get(LOCALITIES, headers=bearer(anonymous)).status_code == 401


@pytest.mark.parametrize("url", ["http://idp.example/certs", "ftp://idp.example/certs", "certs.json"])
def test_the_external_jwks_url_must_be_https(url: str) -> None:
    with pytest.raises(ValidationError, match="https"):
        external_settings(external_jwks_url=url)
