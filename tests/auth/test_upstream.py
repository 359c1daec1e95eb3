"""The upstream OpenID Connect provider and an external token issuer, simulated with respx."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import respx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy.engine import Engine

from childindex.app import create_app
from childindex.settings import Settings
from directory.db import unit_of_work
from tests.auth.conftest import ISSUER
from tests.fixtures.auth_builders import bearer, make_client, make_grant

IDP = "https://idp.example/realms/demoshire"
REDIRECT = "https://app.example/callback"


def idp_key(kid: str) -> RSAKey:
    """A key of the simulated provider."""
    return RSAKey.generate_key(2048, private=True, parameters={"kid": kid})


@pytest.fixture
def idp() -> Iterator[dict[str, Any]]:
    """A simulated provider: discovery, JWKS and a token endpoint that returns what we set."""
    world: dict[str, Any] = {"keys": [idp_key("idp-1")], "claims": {}}
    with respx.mock(assert_all_called=False) as mock:
        world["mock"] = mock  # (a test may hold or break a route: tests/auth/test_upstream_waits.py)
        mock.get(f"{IDP}/.well-known/openid-configuration", name="discovery").respond(
            json={
                "issuer": IDP,
                "authorization_endpoint": f"{IDP}/protocol/openid-connect/auth",
                "token_endpoint": f"{IDP}/protocol/openid-connect/token",
                "jwks_uri": f"{IDP}/protocol/openid-connect/certs",
            }
        )
        mock.get(f"{IDP}/protocol/openid-connect/certs", name="jwks").mock(
            side_effect=lambda request: httpx.Response(
                200, json={"keys": [k.as_dict(private=False) for k in world["keys"]]}
            )
        )

        def token(request: httpx.Request) -> httpx.Response:
            world["token_request"] = parse_qs(request.content.decode())
            key = world["keys"][-1]
            id_token = jwt.encode(
                {"alg": "RS256", "kid": key.kid}, world["claims"], key, algorithms=["RS256"]
            )
            return httpx.Response(
                200,
                json={"id_token": id_token, "access_token": "upstream-at", "token_type": "Bearer"},
            )

        mock.post(f"{IDP}/protocol/openid-connect/token", name="token").mock(side_effect=token)
        yield world


def upstream_app(engine: Engine) -> TestClient:
    settings = Settings(
        environment="production",
        database_url="sqlite://",
        issuer=ISSUER,
        secret_key="k",
        upstream_oidc_issuer=IDP,
        upstream_oidc_client_id="childindex",
        upstream_oidc_client_secret="idp-secret",
        external_issuer=IDP,
        external_jwks_url=f"{IDP}/protocol/openid-connect/certs",
        external_audience="childindex-api",
    )
    with unit_of_work(engine) as s:
        make_client(
            s,
            "practice-app",
            method="none",
            grant_types="authorization_code",
            redirect_uris=REDIRECT,
            scopes=("directory.search",),
        )
        make_grant(s, "hannah@trust.nhs.uk")
    return TestClient(create_app(settings, engine=engine), raise_server_exceptions=False)


def start(api: TestClient) -> tuple[str, dict[str, str]]:
    verifier = secrets.token_urlsafe(48)
    r = api.get(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": "practice-app",
            "redirect_uri": REDIRECT,
            "scope": "directory.search",
            "state": "s1",
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
            "idp": "upstream",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    upstream = {k: v[0] for k, v in parse_qs(urlparse(r.headers["location"]).query).items()}
    assert upstream["code_challenge_method"] == "S256" and upstream["client_id"] == "childindex"
    return verifier, upstream


def id_claims(upstream: dict[str, str], **override: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": IDP,
        "aud": "childindex",
        "sub": "u-123",
        "iat": now,
        "exp": now + 300,
        "nonce": upstream["nonce"],
        "preferred_username": "hannah@trust.nhs.uk",
        "amr": ["pwd", "mfa"],
        "azp": "childindex",
    }
    claims.update(override)
    return claims


def test_sign_in_through_the_upstream_provider(engine: Engine, idp: dict[str, Any]) -> None:
    with upstream_app(engine) as api:
        verifier, upstream = start(api)
        idp["claims"] = id_claims(upstream)
        back = api.get(
            "/oauth/upstream/callback",
            params={"code": "idp-code", "state": upstream["state"]},
            follow_redirects=False,
        )
        assert back.status_code == 303, back.text
        assert idp["token_request"]["code_verifier"][0]  # PKCE towards the provider too
        code = parse_qs(urlparse(back.headers["location"]).query)["code"][0]
        r = api.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "client_id": "practice-app",
                "code_verifier": verifier,
            },
        )
        assert r.status_code == 200, r.text
        assert api.get("/api/v1/localities", headers=bearer(r.json()["access_token"])).status_code == 200


@pytest.mark.parametrize(
    "bad",
    [
        {"amr": ["pwd"]},
        {"nonce": "other"},
        {"aud": "someone-else"},
        {"iss": "https://evil.example"},
        {"exp": int(time.time()) - 600},
    ],
)
def test_untrustworthy_id_tokens_are_refused(
    engine: Engine, idp: dict[str, Any], bad: dict[str, Any]
) -> None:
    with upstream_app(engine) as api:
        _, upstream = start(api)
        idp["claims"] = id_claims(upstream, **bad)
        back = api.get(
            "/oauth/upstream/callback",
            params={"code": "c", "state": upstream["state"]},
            follow_redirects=False,
        )
        assert back.status_code == 403, back.text


def test_a_forged_state_is_refused(engine: Engine, idp: dict[str, Any]) -> None:
    with upstream_app(engine) as api:
        _, upstream = start(api)
        back = api.get(
            "/oauth/upstream/callback",
            params={"code": "c", "state": "forged"},
            follow_redirects=False,
        )
        assert back.status_code == 400


def test_tokens_of_the_external_issuer_are_accepted_and_keys_refetched(
    engine: Engine, idp: dict[str, Any]
) -> None:
    with upstream_app(engine) as api:
        now = int(time.time())
        claims = {
            "iss": IDP,
            "aud": "childindex-api",
            "sub": "hannah@trust.nhs.uk",
            "iat": now,
            "exp": now + 300,
            "scope": "directory.search",
            "azp": "la-portal",
        }
        first = idp["keys"][0]
        token = jwt.encode(
            {"alg": "RS256", "kid": first.kid, "typ": "at+jwt"}, claims, first, algorithms=["RS256"]
        )
        assert api.get("/api/v1/localities", headers=bearer(token)).status_code == 200
        # The provider rotates: a new kid makes us refetch its JWKS once.
        idp["keys"].append(idp_key("idp-2"))
        rotated = idp["keys"][1]
        token2 = jwt.encode(
            {"alg": "RS256", "kid": rotated.kid, "typ": "at+jwt"}, claims, rotated, algorithms=["RS256"]
        )
        validator = api.app.state.auth.validator  # type: ignore[attr-defined]
        validator.external.min_refresh = 0
        assert api.get("/api/v1/localities", headers=bearer(token2)).status_code == 200
        # A token for another audience is not for us.
        wrong = jwt.encode(
            {"alg": "RS256", "kid": rotated.kid, "typ": "at+jwt"},
            {**claims, "aud": "other"},
            rotated,
            algorithms=["RS256"],
        )
        assert api.get("/api/v1/localities", headers=bearer(wrong)).status_code == 401
