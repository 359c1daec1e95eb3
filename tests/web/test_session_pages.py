"""Sessions that end (issue #20): why, the way back, the half-filled form kept; no open redirect, no form
data in a URL. TestClient on the seeded directory (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re
import time
import types
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

import childindex.web.session as web_session_module
from childindex.app import create_app
from childindex.web.comeback import keepable, safe_return
from childindex.web.session import Sealer
from tests.fixtures.auth_builders import PASSWORD
from tests.web.world import SECRET, World, csrf_of, page_client, sign_in, web_settings

ISSUER = "http://testserver"
IDLE = 30


class Clock:
    """The session middleware's clock, moved on by the test (nothing else's)."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def time(self) -> float:
        return time.time() + self.ahead


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(web_session_module, "time", types.SimpleNamespace(time=c.time))
    return c


@pytest.fixture
def short_app(engine: Engine, world: World) -> FastAPI:
    settings = web_settings(ISSUER).model_copy(update={"web_session_idle_seconds": IDLE})
    return create_app(settings, engine=engine)


@pytest.fixture
def client(short_app: FastAPI) -> Iterator[TestClient]:
    with page_client(short_app, ISSUER) as c:
        yield c


def _purpose(client: TestClient, child: object) -> None:
    card = client.get(f"/children/{child}")
    if 'name="purpose"' in card.text:
        client.post(
            f"/children/{child}/purpose", data={"csrf_token": csrf_of(card.text), "purpose": "direct-care"}
        )


def _sign_in_again(client: TestClient, world: World, username: str) -> str:
    """Sign in through the pages; the Location the callback sends the browser to."""
    start = client.get("/signin/start", follow_redirects=False)
    page = client.get(start.headers["location"])
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    form.update(username=username, password=PASSWORD, totp=world.code(username))
    answer = client.post("/oauth/authorize", data=form, follow_redirects=False)
    callback = answer.headers["location"].split("testserver", 1)[-1]
    done = client.get(callback, follow_redirects=False)
    assert done.status_code == 303, done.text
    return str(done.headers["location"])


@pytest.mark.parametrize(
    "path",
    [
        "//evil.example/x",
        "/\\evil.example",
        "https://evil.example/",
        "http:/evil.example",
        "evil.example",
        "/ok\r\nLocation: https://evil.example",
        "/api/v1/children",
        "/oauth/authorize?client_id=x",
        "/signout",
        "/signin/start",
        "",
        None,
        "/" + "a" * 600,
    ],
)
def test_no_way_back_leaves_the_site(path: str | None) -> None:
    assert safe_return(path) is None


def test_the_way_back_is_a_page_of_ours() -> None:
    assert safe_return("/children/0b7c1d86-7f0e-4a55-9a43-3d6b7a0c2c11?x=1") is not None
    assert safe_return("/search") == "/search"
    assert keepable("/children/0b7c1d86-7f0e-4a55-9a43-3d6b7a0c2c11/involvement-new")
    for path in (
        "/search",
        "/children/new",
        "/children/0b7c1d86-7f0e-4a55-9a43-3d6b7a0c2c11/purpose",
        "/children/0b7c1d86-7f0e-4a55-9a43-3d6b7a0c2c11/override",
        "/admin/grants/new",
    ):
        assert not keepable(path), path


def test_a_forged_way_back_to_another_site_is_refused(client: TestClient, world: World) -> None:
    sealer = Sealer(SECRET, "comeback")
    forged = sealer.seal(json.dumps({"back": "//evil.example/x", "exp": time.time() + 60}).encode())
    client.cookies.set("childindex_comeback", forged)
    assert _sign_in_again(client, world, "pat") == "/"


def test_a_page_asked_for_before_signing_in_is_where_sign_in_ends(client: TestClient, world: World) -> None:
    olivia = world.children["olivia"]
    asked = client.get(f"/children/{olivia}", follow_redirects=False)
    assert asked.status_code == 401 and "Sign in" in asked.text
    assert _sign_in_again(client, world, "pat") == f"/children/{olivia}"


def test_a_timed_out_form_is_kept_sealed_and_given_back_after_sign_in(
    client: TestClient, world: World, clock: Clock
) -> None:
    sign_in(client, world, "pat")
    amara = world.children["amara"]
    _purpose(client, amara)
    form_path = f"/children/{amara}/involvement-new"
    token = csrf_of(client.get(form_path).text)
    clock.ahead = IDLE + 5  # the person goes to a meeting
    typed = {
        "csrf_token": token,
        "service_id": "other",
        "role": "Family support worker 7Q",
        "level_of_need": "3",
    }
    sent = client.post(
        form_path, data=typed, headers={"referer": f"{ISSUER}{form_path}"}, follow_redirects=False
    )
    assert sent.status_code == 303 and sent.headers["location"] == "/signed-out"
    cookies = sent.headers.get_list("set-cookie")
    assert all("Family support" not in c and "Family+support" not in c for c in cookies)  # sealed
    out = client.get("/signed-out")
    assert "You were signed out because you had not used the service for 30 seconds" in out.text
    assert "What you had entered on the form has been kept" in out.text
    clock.ahead = 0
    assert _sign_in_again(client, world, "pat") == form_path  # the way back, not in the URL of anything
    # a purpose is given for each look, never carried over a sign-in: asked, then on to the form
    asked = client.get(form_path, follow_redirects=False)
    assert asked.headers["location"] == f"/children/{amara}?then=involvement-new"
    purpose_page = client.get(asked.headers["location"])
    assert 'name="then" value="involvement-new"' in purpose_page.text
    given = client.post(
        f"/children/{amara}/purpose",
        data={"csrf_token": csrf_of(purpose_page.text), "purpose": "direct-care", "then": "involvement-new"},
        follow_redirects=False,
    )
    assert given.headers["location"] == form_path
    again = client.get(form_path)
    assert 'value="Family support worker 7Q"' in again.text and "filled in again" in again.text
    assert 'value="3" checked' in again.text
    assert "Family support worker 7Q" not in client.get(form_path).text  # given back once only


def test_someone_else_signing_in_gets_neither_the_form_nor_the_page(
    client: TestClient, world: World, clock: Clock
) -> None:
    sign_in(client, world, "pat")
    amara = world.children["amara"]
    _purpose(client, amara)
    form_path = f"/children/{amara}/involvement-new"
    token = csrf_of(client.get(form_path).text)
    clock.ahead = IDLE + 5
    client.post(form_path, data={"csrf_token": token, "role": "Pat's words"}, follow_redirects=False)
    clock.ahead = 0
    assert _sign_in_again(client, world, "hana") == "/"
    _purpose(client, amara)
    assert "Pat&#39;s words" not in client.get(form_path).text


def test_a_search_is_not_kept(client: TestClient, world: World, clock: Clock) -> None:
    sign_in(client, world, "pat")
    token = csrf_of(client.get("/search").text)
    clock.ahead = IDLE + 5
    sent = client.post("/search", data={"csrf_token": token, "given": "Zebedee"}, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"] == "/signed-out"
    out = client.get("/signed-out")
    assert "You were signed out because" in out.text and "has been kept" not in out.text


def test_suspended_while_signed_in_is_signed_out_and_told_why(
    client: TestClient, world: World, engine: Engine
) -> None:
    sign_in(client, world, "pat")
    assert client.get("/search").status_code == 200
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE access_grant SET status = 'suspended', status_reason = 'under review' "
                "WHERE subject = 'pat'"
            )
        )
    page = client.get("/search")
    assert page.status_code == 403
    assert "You were signed out" in page.text and "suspended" in page.text and "under review" in page.text
    assert "Sign out" not in page.text  # no longer shown as signed in
    assert client.get("/search").status_code == 401  # the session is gone


def test_signing_out_says_so(client: TestClient, world: World) -> None:
    sign_in(client, world, "pat")
    token = csrf_of(client.get("/search").text)
    out = client.post("/signout", data={"csrf_token": token})
    assert "You have signed out" in out.text and "You were signed out because" not in out.text


def test_stay_signed_in_renews_and_asking_does_not(client: TestClient, world: World, clock: Clock) -> None:
    sign_in(client, world, "pat")
    token = csrf_of(client.get("/search").text)
    clock.ahead = IDLE - 10
    left = client.get("/session/left").json()["seconds"]
    assert 5 <= left <= 10
    assert client.post("/session/keep", data={}).status_code == 401  # no CSRF token: refused
    assert client.post("/session/keep", data={"csrf_token": token}).json()["seconds"] == IDLE
    clock.ahead = IDLE + 5  # more than IDLE after the page load, less after "stay signed in"
    assert client.get("/search").status_code == 200


@pytest.mark.parametrize("then", ["//evil.example", "../../admin", "https:", "x" * 60, "a/b"])
def test_the_form_after_the_purpose_is_only_ever_one_under_the_child(
    client: TestClient, world: World, then: str
) -> None:
    sign_in(client, world, "pat")
    amara = world.children["amara"]
    page = client.get(f"/children/{amara}")
    given = client.post(
        f"/children/{amara}/purpose",
        data={"csrf_token": csrf_of(page.text), "purpose": "direct-care", "then": then},
        follow_redirects=False,
    )
    assert given.headers["location"] == f"/children/{amara}"


def test_the_largest_form_kept_still_fits_a_cookie_and_a_larger_one_is_said_to_be_lost(
    client: TestClient, world: World, clock: Clock
) -> None:
    sign_in(client, world, "pat")
    amara = world.children["amara"]
    _purpose(client, amara)
    form_path = f"/children/{amara}/involvement-new"
    token = csrf_of(client.get(form_path).text)
    clock.ahead = IDLE + 5
    biggest = {"csrf_token": token, "role": "é" * 300 + "x" * 100}  # JSON-escaped: about 1,900 bytes
    sent = client.post(form_path, data=biggest, follow_redirects=False)
    comeback = next(c for c in sent.headers.get_list("set-cookie") if c.startswith("childindex_comeback="))
    print(f"comeback cookie with the largest kept form: {len(comeback)} bytes")
    assert len(comeback) < 4096 and "has been kept" in client.get("/signed-out").text
    clock.ahead = 0
    sign_in(client, world, "pat")
    _purpose(client, amara)
    token = csrf_of(client.get(form_path).text)
    clock.ahead = IDLE + 5
    client.post(form_path, data={"csrf_token": token, "role": "x" * 2500}, follow_redirects=False)
    out = client.get("/signed-out").text
    assert "too long to keep" in out and "has been kept" not in out
