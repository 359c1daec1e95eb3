"""Credentials that cannot be read are refused as such, never a 500 (issue #16, finding 8)."""

from __future__ import annotations

import base64

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from directory.db import unit_of_work
from tests.auth.test_flows import REDIRECT, TOKEN_URL, basic, practitioner_app, sign_in
from tests.fixtures.auth_builders import make_client

ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _segment(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "credentials",
    [
        b"Basic \xff\xfe",
        b"Basic " + base64.b64encode(b"a\x00b:secret"),
        b"Basic " + base64.b64encode(b"\xff:x"),
    ],
    ids=["not base64", "NUL in the client id", "not UTF-8"],
)
def test_unreadable_basic_credentials_are_401(api: TestClient, engine: Engine, credentials: bytes) -> None:
    """Was: 500 before authentication (ValueError from b64decode of non-ASCII text; on PostgreSQL,
    a NUL in the id reached the database)."""
    with unit_of_work(engine) as s:
        make_client(s, "simple-system", secret="s3cret-value")
    r = api.post(TOKEN_URL, data={"grant_type": "client_credentials"}, headers={"Authorization": credentials})
    assert r.status_code == 401, r.text
    assert r.json() == {
        "error": "invalid_client",
        "error_description": "The Basic credentials cannot be read.",
    }
    ok = api.post(
        TOKEN_URL, data={"grant_type": "client_credentials"}, headers=basic("simple-system", "s3cret-value")
    )
    assert ok.status_code != 500


def test_jose_segments_nested_past_the_parser_are_refused(api: TestClient) -> None:
    """Was: 500 (RecursionError) for a bearer token or a client assertion whose header is
    1,500 nested arrays (it fits in an 8 KiB header)."""
    deep = _segment(b"[" * 1500 + b"]" * 1500)
    token = f"{deep}.{deep}.sig"
    r = api.get("/api/v1/localities", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.json()["type"].endswith("/invalid-token"), r.text
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION, "client_assertion": token}
    r = api.post(TOKEN_URL, data=form)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text


def test_non_ascii_csrf_token_and_code_verifier_are_refused(api: TestClient, engine: Engine) -> None:
    """Was: 500 (TypeError: hmac.compare_digest refuses non-ASCII text) on the sign-in form and
    at the token endpoint."""
    secret = practitioner_app(engine)
    params = {
        "response_type": "code",
        "client_id": "practice-app",
        "redirect_uri": REDIRECT,
        "scope": "directory.search",
        "state": "xyz",
        "code_challenge": create_s256_code_challenge("v" * 50),
        "code_challenge_method": "S256",
    }
    assert api.get("/oauth/authorize", params=params).status_code == 200  # sets the CSRF cookie
    form = {**params, "csrf_token": "\u00e9t\u00e9", "username": "hannah", "password": "x", "totp": "1"}
    r = api.post("/oauth/authorize", data=form, follow_redirects=False)
    assert r.status_code == 400 and "expired" in r.text, r.text
    code, _ = sign_in(api, secret)
    token = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": "practice-app",
        "code_verifier": "\u00e9" * 50,
    }
    r = api.post(TOKEN_URL, data=token)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
