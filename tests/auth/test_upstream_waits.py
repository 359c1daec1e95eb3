"""Waiting on the identity provider holds up no one else (directory/http/lanes.py, the upstream lane):
a token whose keys must be fetched first is resolved off the event loop; a burst while the keys
cannot be fetched is refused at once, not one timeout after another; a key set that is not one is
a 503, never a 500; sign-ins returning from a stalled provider leave the shared threads to the
other routes. The provider is simulated with respx at the HTTP boundary (tests/auth/test_upstream.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import respx
from joserfc import jwt
from sqlalchemy.engine import Engine

from auth.server.upstream import UPSTREAM_COOKIE
from directory.db import UPSTREAM_THREADS, unit_of_work
from tests.auth.test_upstream import IDP, id_claims, idp_key, start, upstream_app
from tests.auth.test_upstream import idp as idp  # (the simulated provider, a fixture)
from tests.fixtures.auth_builders import bearer, make_grant, token_for


def external_token(idp: dict[str, Any], subject: str = "hannah@trust.nhs.uk") -> str:
    """An access token of the external issuer, signed with the provider's newest key."""
    now = int(time.time())
    claims = {
        "iss": IDP,
        "aud": "childindex-api",
        "sub": subject,
        "iat": now,
        "exp": now + 300,
        "scope": "directory.search",
        "azp": "la-portal",
    }
    key = idp["keys"][-1]
    return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "at+jwt"}, claims, key, algorithms=["RS256"])


@contextmanager
def held(
    route: respx.Route, answer: Callable[[httpx.Request], httpx.Response]
) -> Iterator[tuple[threading.Event, list[object]]]:
    """`route` answering only once let go (the event), counting who is waiting on it meanwhile;
    let go however the block ends, so no request is left hanging."""
    go, waiting = threading.Event(), []
    before = route.side_effect

    def stalled(request: httpx.Request) -> httpx.Response:
        waiting.append(object())
        go.wait(60)
        return answer(request)

    route.side_effect = stalled
    try:
        yield go, waiting
    finally:
        go.set()
        route.side_effect = before


def _wait_until(check: Callable[[], bool], timeout: float = 20) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_a_token_whose_keys_must_be_fetched_leaves_the_event_loop_free(
    engine: Engine, idp: dict[str, Any]
) -> None:
    keys = idp["mock"].routes["jwks"]
    with (
        upstream_app(engine) as api,
        held(keys, keys.side_effect) as (go, waiting),
        ThreadPoolExecutor(2) as pool,
    ):
        first = pool.submit(api.get, "/api/v1/localities", headers=bearer(external_token(idp)))
        assert _wait_until(lambda: len(waiting) == 1), "the keys were never asked for"
        # Meanwhile the loop answers (before: it was inside the fetch, and nothing answered).
        health = pool.submit(api.get, "/healthz").result(timeout=5)
        assert health.status_code == 200
        assert not first.done()
        go.set()
        assert first.result(timeout=20).status_code == 200


def test_a_known_key_is_read_while_the_key_set_is_fetched_again(engine: Engine, idp: dict[str, Any]) -> None:
    """A token naming a new key sends the set to be fetched again; meanwhile a token naming a key
    already held is checked on the loop without waiting for that fetch (it waited, holding up the
    loop, while the fetch held the one lock over the keys)."""
    keys = idp["mock"].routes["jwks"]
    with upstream_app(engine) as api:
        known = external_token(idp)
        assert api.get("/api/v1/localities", headers=bearer(known)).status_code == 200
        api.app.state.auth.validator.external.min_refresh = 0  # type: ignore[attr-defined]
        idp["keys"].append(idp_key("idp-2"))
        rotated = external_token(idp)
        with held(keys, keys.side_effect) as (go, waiting), ThreadPoolExecutor(2) as pool:
            refetching = pool.submit(api.get, "/api/v1/localities", headers=bearer(rotated))
            assert _wait_until(lambda: len(waiting) == 1), "the new key was never asked for"
            again = pool.submit(api.get, "/api/v1/localities", headers=bearer(known)).result(timeout=5)
            assert again.status_code == 200
            assert not refetching.done()
            go.set()
            assert refetching.result(timeout=20).status_code == 200
        assert keys.call_count == 2


def test_while_the_keys_cannot_be_fetched_a_burst_is_refused_at_once(
    engine: Engine, idp: dict[str, Any]
) -> None:
    down = idp["mock"].routes["jwks"]
    working = down.side_effect
    down.side_effect = httpx.ConnectError("refused")
    with upstream_app(engine) as api:
        token = external_token(idp)
        started = time.monotonic()
        answers = [api.get("/api/v1/localities", headers=bearer(token)) for _ in range(20)]
        assert {a.status_code for a in answers} == {503}
        assert all(
            "cannot be fetched" in a.json()["detail"] and a.headers.get("retry-after") for a in answers
        )
        assert down.call_count == 1  # then refused from what the failure left, for a few seconds
        assert time.monotonic() - started < 10
        validator = api.app.state.auth.validator  # type: ignore[attr-defined]
        validator.external.retry_after = 0.2
        time.sleep(0.3)
        down.side_effect = working
        assert api.get("/api/v1/localities", headers=bearer(token)).status_code == 200


def test_a_key_set_that_is_not_one_is_a_503(engine: Engine, idp: dict[str, Any]) -> None:
    keys = idp["mock"].routes["jwks"]
    keys.side_effect = None
    with upstream_app(engine) as api:
        api.app.state.auth.validator.external.retry_after = 0  # type: ignore[attr-defined]  # (each asks)
        for body in (
            b"<html>maintenance</html>",
            b'{"keys": "none"}',
            b'{"keys": [{"kty": "nonsense"}]}',
            b"[]",
        ):
            keys.return_value = httpx.Response(
                200, content=body, headers={"content-type": "application/json"}
            )
            answer = api.get("/api/v1/localities", headers=bearer(external_token(idp)))
            assert answer.status_code == 503, (body, answer.text)
            assert "cannot be fetched" in answer.json()["detail"]


def test_sign_ins_returning_from_a_stalled_provider_leave_the_shared_threads(
    engine: Engine, idp: dict[str, Any]
) -> None:
    with upstream_app(engine) as api:
        with unit_of_work(engine) as s:
            make_grant(s, "local-user")
        local = token_for(api.app.state.auth, "local-user")  # type: ignore[attr-defined]
        returning = api.app.state.settings.request_threads + 2  # type: ignore[attr-defined]  # (more than the shared threads)
        flows = []
        for _ in range(returning):
            _, upstream = start(api)
            flows.append((upstream, api.cookies.get(UPSTREAM_COOKIE)))
        idp["claims"] = id_claims(flows[0][0])
        token_route = idp["mock"].routes["token"]
        with (
            held(token_route, token_route.side_effect) as (go, waiting),
            ThreadPoolExecutor(returning + 1) as pool,
        ):
            backs = [
                pool.submit(
                    api.get,
                    "/oauth/upstream/callback",
                    params={"code": "c", "state": upstream["state"]},
                    headers={"cookie": f"{UPSTREAM_COOKIE}={cookie}"},
                    follow_redirects=False,
                )
                for upstream, cookie in flows
            ]
            assert _wait_until(lambda: len(waiting) >= UPSTREAM_THREADS), "no sign-in reached the provider"
            time.sleep(0.5)
            assert len(waiting) == UPSTREAM_THREADS  # the lane's threads wait; the rest wait for one
            read = pool.submit(api.get, "/api/v1/localities", headers=bearer(local)).result(timeout=20)
            assert read.status_code == 200, read.text
            go.set()
            finished = [b.result(timeout=60) for b in backs]
        assert all(f.status_code in (303, 403) for f in finished), [f.status_code for f in finished]
        assert finished[0].status_code == 303  # (the others' nonces differ from the claims set)
