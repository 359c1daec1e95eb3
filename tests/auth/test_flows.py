"""End-to-end OAuth flows against the real app over HTTP (TestClient is an httpx client)."""

from __future__ import annotations

import base64
import re
import secrets
import time
import uuid
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy.engine import Engine

from auth.deps import AuthState
from auth.models import LocalUser, SubjectKind
from directory.db import unit_of_work
from directory.models import Role
from tests.auth.conftest import ISSUER
from tests.conftest import count
from tests.fixtures.auth_builders import PASSWORD, bearer, make_client, make_grant, make_user

TOKEN_URL = "/oauth/token"
REDIRECT = "https://app.example/callback"


def basic(client_id: str, secret: str) -> dict[str, str]:
    """HTTP Basic client authentication."""
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def assertion(
    key: RSAKey | ECKey,
    client_id: str,
    *,
    alg: str = "RS384",
    aud: str | None = None,
    jti: str | None = None,
    exp_in: int = 240,
) -> str:
    """A SMART Backend Services client assertion."""
    now = int(time.time())
    return jwt.encode(
        {"alg": alg, "kid": key.kid, "typ": "JWT"},
        {
            "iss": client_id,
            "sub": client_id,
            "aud": aud or f"{ISSUER}/oauth/token",
            "jti": jti or uuid.uuid4().hex,
            "iat": now,
            "exp": now + exp_in,
        },
        key,
        algorithms=[alg],
    )


@pytest.fixture
def trust_key() -> RSAKey:
    """The health trust's private key; only its public half is registered."""
    key = RSAKey.generate_key(2048, private=True)
    key.ensure_kid()
    return key


def register_trust(engine: Engine, key: RSAKey) -> None:
    with unit_of_work(engine) as s:
        make_client(
            s,
            "trust-epr",
            method="private_key_jwt",
            jwks={"keys": [key.as_dict(private=False)]},
            scopes=("system/Patient.rs", "directory.search"),
        )
        make_grant(s, "trust-epr", kind=SubjectKind.CLIENT, role=Role.SYSTEM)


def test_client_credentials_with_private_key_jwt(api: TestClient, engine: Engine, trust_key: RSAKey) -> None:
    register_trust(engine, trust_key)
    form = {
        "grant_type": "client_credentials",
        "scope": "system/Patient.rs directory.search",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion(trust_key, "trust-epr"),
    }
    r = api.post(TOKEN_URL, data=form)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600
    assert set(body["scope"].split()) == {"system/Patient.rs", "directory.search"}
    assert "refresh_token" not in body
    assert r.headers["Cache-Control"] == "no-store"
    # The token opens the app API for the system role.
    assert api.get("/api/v1/localities", headers=bearer(body["access_token"])).status_code == 200
    # The same assertion cannot be replayed.
    replay = api.post(TOKEN_URL, data=form)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"


@pytest.mark.parametrize("case", ["wrong key", "wrong audience", "too long", "HS256"])
def test_bad_client_assertions_are_refused(
    api: TestClient, engine: Engine, trust_key: RSAKey, case: str
) -> None:
    register_trust(engine, trust_key)
    if case == "wrong key":
        other = RSAKey.generate_key(2048, private=True, parameters={"kid": trust_key.kid})
        token = assertion(other, "trust-epr")
    elif case == "wrong audience":
        token = assertion(trust_key, "trust-epr", aud="https://other.example/token")
    elif case == "too long":
        token = assertion(trust_key, "trust-epr", exp_in=3600)
    else:
        head = base64.urlsafe_b64encode(b'{"alg":"HS256"}').rstrip(b"=").decode()
        token = f"{head}.{assertion(trust_key, 'trust-epr').split('.', 1)[1]}"
    r = api.post(
        TOKEN_URL,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": token,
        },
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text


def test_client_credentials_with_client_secret_basic(api: TestClient, engine: Engine) -> None:
    with unit_of_work(engine) as s:
        make_client(s, "simple-system", secret="s3cret-value", scopes=("directory.search",))
        make_grant(s, "simple-system", kind=SubjectKind.CLIENT, role=Role.SYSTEM)
    ok = api.post(
        TOKEN_URL, data={"grant_type": "client_credentials"}, headers=basic("simple-system", "s3cret-value")
    )
    assert ok.status_code == 200 and ok.json()["scope"] == "directory.search"
    bad = api.post(
        TOKEN_URL, data={"grant_type": "client_credentials"}, headers=basic("simple-system", "wrong")
    )
    assert bad.status_code == 401 and bad.headers["WWW-Authenticate"].startswith("Basic")
    wide = api.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials", "scope": "grants.admin"},
        headers=basic("simple-system", "s3cret-value"),
    )
    assert wide.status_code == 400 and wide.json()["error"] == "invalid_scope"


def test_client_without_a_grant_gets_no_token(api: TestClient, engine: Engine) -> None:
    with unit_of_work(engine) as s:
        make_client(s, "ungranted", secret="s3cret-value")
    r = api.post(
        TOKEN_URL, data={"grant_type": "client_credentials"}, headers=basic("ungranted", "s3cret-value")
    )
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"
    assert "administrator" in r.json()["error_description"]


# --------------------------------------------------------------------------- authorization code


def practitioner_app(engine: Engine) -> str:
    """A public practitioner app and a user with a grant; returns the user's TOTP secret."""
    with unit_of_work(engine) as s:
        make_client(
            s,
            "practice-app",
            method="none",
            grant_types="authorization_code refresh_token",
            redirect_uris=REDIRECT,
            scopes=("directory.search", "directory.write"),
        )
        user = make_user(s, "hannah")
        make_grant(s, "hannah", role=Role.PRACTITIONER)
        return user.totp_secret


def sign_in(
    api: TestClient, totp_secret: str, *, username: str = "hannah", password: str = PASSWORD
) -> tuple[str, str]:
    """Walk the authorization code + PKCE flow; return (code, verifier)."""
    verifier = secrets.token_urlsafe(48)
    params = {
        "response_type": "code",
        "client_id": "practice-app",
        "redirect_uri": REDIRECT,
        "scope": "directory.search directory.write",
        "state": "xyz",
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    page = api.get("/oauth/authorize", params=params)
    assert page.status_code == 200 and "Sign in" in page.text
    csrf = re.search(r"name=[\"']csrf_token[\"'] value=[\"']([^\"']+)[\"']", page.text)
    assert csrf
    done = api.post(
        "/oauth/authorize",
        data={
            **params,
            "csrf_token": csrf.group(1),
            "username": username,
            "password": password,
            "totp": pyotp.TOTP(totp_secret).now(),
        },
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    location = urlparse(done.headers["location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    assert query["state"] == ["xyz"] and query["iss"] == [ISSUER]
    return query["code"][0], verifier


def test_authorization_code_with_pkce_and_totp(api: TestClient, engine: Engine) -> None:
    secret = practitioner_app(engine)
    code, verifier = sign_in(api, secret)
    r = api.post(
        TOKEN_URL,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "practice-app",
            "code_verifier": verifier,
        },
    )
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["refresh_token"] and tokens["scope"] == "directory.search directory.write"
    assert api.get("/api/v1/localities", headers=bearer(tokens["access_token"])).status_code == 200
    # A code is good once.
    again = api.post(
        TOKEN_URL,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "practice-app",
            "code_verifier": verifier,
        },
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_wrong_verifier_or_totp_or_csrf_is_refused(api: TestClient, engine: Engine) -> None:
    secret = practitioner_app(engine)
    code, _ = sign_in(api, secret)
    r = api.post(
        TOKEN_URL,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "practice-app",
            "code_verifier": secrets.token_urlsafe(48),
        },
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    params = {
        "response_type": "code",
        "client_id": "practice-app",
        "redirect_uri": REDIRECT,
        "scope": "directory.search",
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
    }
    page = api.get("/oauth/authorize", params=params)
    csrf = re.search(r"name=[\"']csrf_token[\"'] value=[\"']([^\"']+)[\"']", page.text)
    assert csrf
    wrong_totp = api.post(
        "/oauth/authorize",
        data={
            **params,
            "csrf_token": csrf.group(1),
            "username": "hannah",
            "password": PASSWORD,
            "totp": "000000",
        },
        follow_redirects=False,
    )
    assert wrong_totp.status_code == 401 and "not right" in wrong_totp.text
    no_csrf = api.post(
        "/oauth/authorize",
        data={
            **params,
            "csrf_token": "forged",
            "username": "hannah",
            "password": PASSWORD,
            "totp": pyotp.TOTP(secret).now(),
        },
        follow_redirects=False,
    )
    assert no_csrf.status_code == 400


def test_plain_pkce_and_unregistered_redirects_are_refused(api: TestClient, engine: Engine) -> None:
    practitioner_app(engine)
    base = {
        "response_type": "code",
        "client_id": "practice-app",
        "redirect_uri": REDIRECT,
        "code_challenge": "x" * 43,
    }
    plain = api.get(
        "/oauth/authorize", params={**base, "code_challenge_method": "plain"}, follow_redirects=False
    )
    assert plain.status_code == 303 and "error=invalid_request" in plain.headers["location"]
    evil = api.get(
        "/oauth/authorize",
        params={**base, "code_challenge_method": "S256", "redirect_uri": "https://evil.example/cb"},
        follow_redirects=False,
    )
    assert evil.status_code == 400  # never redirected to an unregistered URI


def test_user_without_training_is_told_why_at_sign_in(api: TestClient, engine: Engine) -> None:
    with unit_of_work(engine) as s:
        make_client(
            s,
            "practice-app",
            method="none",
            grant_types="authorization_code",
            redirect_uris=REDIRECT,
            scopes=("directory.search",),
        )
        user = make_user(s, "hannah")
        make_grant(s, "hannah", no_training=True)
        secret = user.totp_secret
    verifier = secrets.token_urlsafe(48)
    params = {
        "response_type": "code",
        "client_id": "practice-app",
        "redirect_uri": REDIRECT,
        "scope": "directory.search",
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    page = api.get("/oauth/authorize", params=params)
    csrf = re.search(r"name=[\"']csrf_token[\"'] value=[\"']([^\"']+)[\"']", page.text)
    assert csrf
    form = {
        **params,
        "csrf_token": csrf.group(1),
        "username": "hannah",
        "password": PASSWORD,
        "totp": pyotp.TOTP(secret).now(),
    }
    r = api.post("/oauth/authorize", data=form, follow_redirects=False)
    assert r.status_code == 403 and "information-sharing" in r.text


# ------------------------------------------------------------------ refresh, revoke, introspect


def tokens_for_hannah(api: TestClient, engine: Engine) -> dict[str, str]:
    secret = practitioner_app(engine)
    code, verifier = sign_in(api, secret)
    r = api.post(
        TOKEN_URL,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "practice-app",
            "code_verifier": verifier,
        },
    )
    assert r.status_code == 200
    return r.json()  # type: ignore[no-any-return]


def refresh(api: TestClient, token: str) -> tuple[int, dict[str, str]]:
    r = api.post(
        TOKEN_URL, data={"grant_type": "refresh_token", "refresh_token": token, "client_id": "practice-app"}
    )
    return r.status_code, r.json()


def test_refresh_rotates_and_reuse_revokes_the_family(api: TestClient, engine: Engine) -> None:
    first = tokens_for_hannah(api, engine)
    status, second = refresh(api, first["refresh_token"])
    assert status == 200 and second["refresh_token"] != first["refresh_token"]
    status, third = refresh(api, second["refresh_token"])
    assert status == 200
    # Replaying an old refresh token: refused, and the newest one dies with it.
    status, reused = refresh(api, first["refresh_token"])
    assert status == 400 and reused["error"] == "invalid_grant"
    assert "already used" in reused["error_description"]
    status, after = refresh(api, third["refresh_token"])
    assert status == 400 and after["error"] == "invalid_grant"
    with engine.connect() as conn:
        import sqlalchemy as sa

        alerts = conn.execute(
            sa.text("SELECT count(*) FROM audit_event WHERE action = 'auth.refresh.reused'")
        ).scalar_one()
    assert alerts == 1


def test_revocation_of_refresh_and_access_tokens(api: TestClient, engine: Engine) -> None:
    tokens = tokens_for_hannah(api, engine)
    access = tokens["access_token"]
    assert api.get("/api/v1/localities", headers=bearer(access)).status_code == 200
    r = api.post("/oauth/revoke", data={"token": access, "client_id": "practice-app"})
    assert r.status_code == 200
    refused = api.get("/api/v1/localities", headers=bearer(access))
    assert refused.status_code == 401 and refused.json()["type"].endswith("token-revoked")
    assert (
        api.post(
            "/oauth/revoke", data={"token": tokens["refresh_token"], "client_id": "practice-app"}
        ).status_code
        == 200
    )
    status, body = refresh(api, tokens["refresh_token"])
    assert status == 400
    # Unknown tokens are "revoked" too (RFC 7009 section 2.2).
    assert (
        api.post("/oauth/revoke", data={"token": "nonsense", "client_id": "practice-app"}).status_code == 200
    )


def test_introspection(api: TestClient, engine: Engine, state: AuthState) -> None:
    tokens = tokens_for_hannah(api, engine)
    with unit_of_work(engine) as s:
        make_client(s, "gateway", secret="gateway-secret", grant_types="client_credentials")
    creds = basic("gateway", "gateway-secret")
    live = api.post("/oauth/introspect", data={"token": tokens["access_token"]}, headers=creds).json()
    assert live["active"] is True and live["sub"] == "hannah" and live["role"] == "practitioner"
    assert live["client_id"] == "practice-app" and live["iss"] == ISSUER
    dead = api.post("/oauth/introspect", data={"token": "nope"}, headers=creds).json()
    assert dead == {"active": False}
    anonymous = api.post("/oauth/introspect", data={"token": tokens["access_token"]})
    assert anonymous.status_code == 401


def test_signing_key_rotation_keeps_old_tokens_valid(
    api: TestClient, engine: Engine, state: AuthState
) -> None:
    from auth.keys import rotate
    from tests.fixtures.auth_builders import token_for

    with unit_of_work(engine) as s:
        make_grant(s, "hannah")
    old = token_for(state, "hannah")
    old_kid, _, _ = state.keys.current()
    with unit_of_work(engine) as s:
        rotate(s, alg="ES256")
    state.keys.forget()
    new = token_for(state, "hannah")
    new_kid, _, _ = state.keys.current()
    assert new_kid != old_kid
    jwks = api.get("/oauth/jwks").json()
    assert {k["kid"] for k in jwks["keys"]} >= {old_kid, new_kid}
    for token in (old, new):
        assert api.get("/api/v1/localities", headers=bearer(token)).status_code == 200


def test_metadata_documents(api: TestClient) -> None:
    meta = api.get("/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == ISSUER and meta["code_challenge_methods_supported"] == ["S256"]
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    smart = api.get("/.well-known/smart-configuration").json()
    assert "permission-v2" in smart["capabilities"]
    assert "system/Patient.rs" in smart["scopes_supported"]
    # SMART: "SHALL" be at the FHIR base too, where a client discovering from the base looks.
    at_base = api.get("/fhir/.well-known/smart-configuration")
    assert at_base.status_code == 200 and at_base.headers["content-type"].startswith("application/json")
    assert at_base.json() == smart
    # one truth: what both documents say, they say alike (RFC 8414), and the CapabilityStatement's
    # oauth-uris name the same endpoints; no registration or sign-in is needed to read any of them
    for key in set(smart) & set(meta):
        assert smart[key] == meta[key], key
    for key in ("issuer", "token_endpoint", "jwks_uri", "grant_types_supported", "scopes_supported"):
        assert key in smart and key in meta, key
    assert "client_credentials" in smart["grant_types_supported"]
    assert {"ES384", "RS384"} <= set(smart["token_endpoint_auth_signing_alg_values_supported"])
    security = api.get("/fhir/metadata").json()["rest"][0]["security"]
    uris = {x["url"]: x["valueUri"] for x in security["extension"][0]["extension"]}
    assert uris["token"] == smart["token_endpoint"] and uris["authorize"] == smart["authorization_endpoint"]
    assert (
        uris["revoke"] == smart["revocation_endpoint"]
        and uris["introspect"] == smart["introspection_endpoint"]
    )
    assert any(c["code"] == "SMART-on-FHIR" for svc in security["service"] for c in svc["coding"])


def test_local_user_password_is_argon2(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        user = make_user(s, "zoe")
    assert user.password_hash.startswith("$argon2id$")
    assert count(engine, "local_user") == 1
    assert isinstance(user, LocalUser)
