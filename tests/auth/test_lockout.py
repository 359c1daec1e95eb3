"""Lock-out per account and source address: a stranger's failures lock the stranger out, not the user."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pyotp
import sqlalchemy as sa
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.lockout import LOCK_AFTER, MANY_SOURCES
from auth.source import parse_proxies, source_address
from childindex.app import create_app
from childindex.settings import Settings
from tests.auth.conftest import ISSUER
from tests.auth.test_flows import REDIRECT, practitioner_app
from tests.fixtures.auth_builders import PASSWORD

GENUINE = "192.0.2.10"  # the user's office
STRANGER = "198.51.100.7"


@contextmanager
def from_address(app: FastAPI, address: str) -> Iterator[TestClient]:
    """A client whose connections come from `address`."""
    with TestClient(app, base_url=ISSUER, client=(address, 50123), raise_server_exceptions=False) as c:
        yield c


class Attempts:
    """Sign-in attempts at the authorization endpoint, each with a fresh TOTP step."""

    def __init__(self, totp_secret: str) -> None:
        self.totp = pyotp.TOTP(totp_secret)
        self.used = 0

    def code(self) -> str:
        self.used += 1
        return self.totp.at(time.time() + 30 * (self.used - 1) - 30)

    def sign_in(
        self, client: TestClient, *, password: str = PASSWORD, headers: dict[str, str] | None = None
    ) -> int:
        """POST the sign-in form; 303 (signed in) or 401 (refused)."""
        params = {
            "response_type": "code",
            "client_id": "practice-app",
            "redirect_uri": REDIRECT,
            "scope": "directory.search",
            "state": "s",
            "code_challenge": create_s256_code_challenge(secrets.token_urlsafe(48)),
            "code_challenge_method": "S256",
        }
        page = client.get("/oauth/authorize", params=params, headers=headers)
        csrf = re.search(r"name=[\"']csrf_token[\"'] value=[\"']([^\"']+)[\"']", page.text)
        assert csrf, page.text
        form = {**params, "csrf_token": csrf.group(1), "username": "hannah", "password": password}
        # A right password needs a code not used before; a wrong one may reuse any.
        form["totp"] = self.code() if password == PASSWORD else self.totp.now()
        done = client.post("/oauth/authorize", data=form, headers=headers, follow_redirects=False)
        return done.status_code


def alerts(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT action, target_id, detail FROM audit_event WHERE action LIKE 'alert.signin%' "
                "ORDER BY seq"
            )
        ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def test_a_stranger_locks_only_themselves_out(api: TestClient, app: FastAPI, engine: Engine) -> None:
    tries = Attempts(practitioner_app(engine))
    with from_address(app, STRANGER) as stranger, from_address(app, GENUINE) as genuine:
        assert [tries.sign_in(stranger, password="guess") for _ in range(LOCK_AFTER)] == [401] * LOCK_AFTER
        # Locked from that address: even the right password is refused there ...
        assert tries.sign_in(stranger) == 401
        # ... while the user signs in from their own address.
        assert tries.sign_in(genuine) == 303
    [(action, target, detail)] = alerts(engine)
    assert action == "alert.signin.locked" and target == "hannah" and STRANGER in detail


def test_the_users_own_typing_mistakes_lock_only_their_own_address(
    api: TestClient, app: FastAPI, engine: Engine
) -> None:
    tries = Attempts(practitioner_app(engine))
    with from_address(app, GENUINE) as desk, from_address(app, "192.0.2.11") as laptop:
        assert tries.sign_in(desk) == 303
        for _ in range(LOCK_AFTER):
            tries.sign_in(desk, password="typo")
        assert tries.sign_in(desk) == 401
        assert tries.sign_in(laptop) == 303


def test_many_failing_addresses_raise_an_alert_and_shut_out_new_ones(
    api: TestClient, app: FastAPI, engine: Engine
) -> None:
    tries = Attempts(practitioner_app(engine))
    with from_address(app, GENUINE) as genuine:
        assert tries.sign_in(genuine) == 303  # the user's familiar address
    for i in range(MANY_SOURCES):
        with from_address(app, f"203.0.113.{i + 1}") as bot:
            assert tries.sign_in(bot, password="guess") == 401
    assert [a[0] for a in alerts(engine)] == ["alert.signin.many-sources"]
    # A further unfamiliar address is refused even with the right password (its try is not checked),
    with from_address(app, "203.0.113.200") as another:
        assert tries.sign_in(another) == 401
    # the addresses already failing keep their own count,
    with from_address(app, "203.0.113.1") as first:
        assert tries.sign_in(first, password="guess") == 401
    # and the user still signs in from where they usually do.
    with from_address(app, GENUINE) as genuine:
        assert tries.sign_in(genuine) == 303


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_source(engine: Engine) -> None:
    proxy = "10.0.0.5"
    settings = Settings(
        environment="production", issuer=ISSUER, secret_key="k", trusted_proxies="10.0.0.0/24"
    )
    app = create_app(settings, engine=engine)
    tries = Attempts(practitioner_app(engine))
    with from_address(app, proxy) as via_proxy:
        for _ in range(LOCK_AFTER):
            tries.sign_in(via_proxy, password="guess", headers={"X-Forwarded-For": STRANGER})
        assert tries.sign_in(via_proxy, headers={"X-Forwarded-For": STRANGER}) == 401
        assert tries.sign_in(via_proxy, headers={"X-Forwarded-For": GENUINE}) == 303
    assert STRANGER in alerts(engine)[0][2]


def test_the_source_address_believes_forwarded_for_only_from_trusted_proxies() -> None:
    proxies = parse_proxies("10.0.0.0/8, 2001:db8::1")
    # No proxies configured: the peer, whatever the header claims.
    assert source_address("198.51.100.7", ["192.0.2.10"], ()) == "198.51.100.7"
    # An untrusted peer's header is ignored.
    assert source_address("198.51.100.7", ["192.0.2.10"], proxies) == "198.51.100.7"
    # Through two trusted proxies: the nearest hop that is not ours; a client's own prefix is ignored.
    assert source_address("10.0.0.5", ["6.6.6.6, 192.0.2.10, 10.0.0.9"], proxies) == "192.0.2.10"
    assert source_address("2001:db8::1", ["[2001:db8::7]:443"], proxies) == "2001:db8::7"
    # An unreadable hop stops the walk at the last address we believe.
    assert source_address("10.0.0.5", ["192.0.2.10, unknown"], proxies) == "10.0.0.5"
    assert source_address("::ffff:192.0.2.10", [], ()) == "192.0.2.10"
    try:
        parse_proxies("10.0.0.0/8, proxy.local")
    except ValueError as exc:
        assert "proxy.local" in str(exc)
    else:
        raise AssertionError("a bad proxy address was accepted")
