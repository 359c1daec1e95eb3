"""The pages without a browser: the journeys, and the protections (CSRF, cookies, CSP, URLs, refusals)."""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey
from sqlalchemy.engine import Engine

from childindex.app import create_app
from childindex.web.session import CSP
from directory.db import unit_of_work
from directory.models import utcnow
from tests.conftest import count
from tests.fixtures.auth_builders import make_user
from tests.web.world import World, csrf_of, page_client, sign_in, web_settings
from tests.web.world import _hidden_inputs as _hidden

DOB = {"dob-day": "27", "dob-month": "3", "dob-year": "2017"}


def search(client: TestClient, **fields: str) -> str:
    """Submit the search form; return the results page."""
    token = csrf_of(client.get("/search").text)
    data = {"csrf_token": token, "purpose": "considering-caf", **fields}
    r = client.post("/search", data=data)
    assert r.status_code in (200, 400), r.text
    return r.text


def caf_id_on(html: str) -> str:
    """The CAF id an action form carries."""
    match = re.search(r'name="caf_id" value="([^"]+)"', html)
    assert match
    return match.group(1)


def post_form(client: TestClient, path: str, data: dict[str, str]) -> httpx.Response:
    """GET the form page for its CSRF token, then POST it."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    return client.post(path, data={"csrf_token": csrf_of(page.text), **data})


def test_signal_conflict_and_hand_over(browser: TestClient, world: World, web_app: FastAPI) -> None:
    olivia = world.children["olivia"]
    sign_in(browser, world, "pat")
    results = search(browser, given="Olivia", family="Smith", **DOB)
    assert f'href="/children/{olivia}"' in results and "Probable match" in results
    card = browser.get(f"/children/{olivia}")
    assert "Hana Begum" in card.text and "07700 900222" in card.text and "No CAF is open" in card.text
    done = post_form(browser, f"/children/{olivia}/caf-signal", {"not_safeguarding": "yes"})
    assert done.status_code == 200 and "You have signalled" in done.text
    assert "Pat Okafor" in done.text

    with page_client(web_app, "http://testserver") as second:
        sign_in(second, world, "hana")
        search(second, given="Olivia", family="Smith", **DOB)
        card = second.get(f"/children/{olivia}")
        assert "contact Pat Okafor before starting another" in card.text
        refused = post_form(second, f"/children/{olivia}/caf-signal", {"not_safeguarding": "yes"})
        assert refused.status_code == 409
        assert "A CAF is already open for this child" in refused.text
        assert "pat@cowley.example.sch.uk" in refused.text

    handed = post_form(
        browser,
        f"/children/{olivia}/lead-professional",
        {
            "caf_id": re.search(
                r'name="caf_id" value="([^"]+)"', browser.get(f"/children/{olivia}/caf-close").text
            ).group(1),  # type: ignore[union-attr]
            "to_practitioner_id": str(world.practitioners["hana"]),
            "reason": "agreed at the first meeting",
        },
    )
    # a request Hana accepts: until then Pat stays Lead Professional, and the card says it is asked
    assert "Hana Begum (Demoshire Health) is asked to take on the Lead Professional role" in handed.text
    assert "is asked to take on the Lead Professional role" in browser.get(f"/children/{olivia}").text
    with page_client(web_app, "http://testserver") as second:
        sign_in(second, world, "hana")
        mine = second.get("/requests")
        assert (
            "Take on the Lead Professional role" in mine.text and "agreed at the first meeting" in mine.text
        )
        request_id = re.search(r'action="/requests/([^/"]+)/accept"', mine.text).group(1)  # type: ignore[union-attr]
        token = {"csrf_token": csrf_of(mine.text)}
        accepted = second.post(f"/requests/{request_id}/accept", data=token)
        assert "You are now the Lead Professional" in accepted.text
        again = second.post(f"/requests/{request_id}/accept", data=token)
        assert again.status_code == 409 and "already accepted" in again.text


def test_consent_start_complete_tac_and_close(browser: TestClient, world: World) -> None:
    olivia = world.children["olivia"]
    sign_in(browser, world, "pat")
    search(browser, given="Olivia", family="Smith", **DOB)
    post_form(browser, f"/children/{olivia}/caf-signal", {"not_safeguarding": "yes"})
    dead_end = browser.get(f"/children/{olivia}/caf-start").text  # no consent: no form, a way to record it
    assert f'href="/children/{olivia}/consent-new?scope=caf"' in dead_end and 'name="caf_id"' not in dead_end
    caf_id = re.search(r'name="caf_id" value="([^"]+)"', browser.get(f"/children/{olivia}/caf-close").text)
    assert caf_id
    no_consent = post_form(browser, f"/children/{olivia}/caf-start", {"caf_id": caf_id.group(1)})
    assert no_consent.status_code == 400 and "Choose the consent" in no_consent.text
    post_form(
        browser,
        f"/children/{olivia}/consent-new",
        {"scope": "caf", "given_by_kind": "parent_carer", "given_by_name": "Jane Smith"},
    )
    start_page = browser.get(f"/children/{olivia}/caf-start").text
    consent_id = re.search(r'name="consent_id" type="radio" value="([^"]+)"', start_page)
    assert consent_id
    started = post_form(
        browser,
        f"/children/{olivia}/caf-start",
        {"caf_id": caf_id.group(1), "consent_id": consent_id.group(1)},
    )
    assert "The CAF is in progress" in started.text
    members = {"caf_id": caf_id.group(1)}
    page = browser.get(f"/children/{olivia}/tac").text
    form = {"csrf_token": csrf_of(page), **members}
    r = browser.post(
        f"/children/{olivia}/tac",
        data={**form, "add": [str(world.practitioners[k]) for k in ("pat", "hana", "sam")], "family": "yes"},
    )
    assert "Team Around the Child is updated" in r.text
    soon = utcnow().date() + timedelta(days=28)
    convened = post_form(
        browser,
        f"/children/{olivia}/tac-convene",
        {
            **members,
            "review-day": str(soon.day),
            "review-month": str(soon.month),
            "review-year": str(soon.year),
        },
    )
    assert "convened" in convened.text and "Next review" in convened.text
    done = post_form(
        browser, f"/children/{olivia}/caf-complete", {**members, "outcome": "multi_agency_response"}
    )
    assert "completed" in done.text
    closed = post_form(browser, f"/children/{olivia}/caf-close", {**members, "reason": "plan achieved"})
    assert "The CAF is closed" in closed.text and "No CAF is open" in closed.text


def test_a_form_without_the_session_csrf_token_is_refused(
    browser: TestClient, world: World, engine: Engine
) -> None:
    olivia = world.children["olivia"]
    sign_in(browser, world, "pat")
    search(browser, given="Olivia", family="Smith", **DOB)
    for token in ("", "forged-token"):
        r = browser.post(
            f"/children/{olivia}/caf-signal", data={"csrf_token": token, "not_safeguarding": "yes"}
        )
        assert r.status_code == 400 and "This form has expired" in r.text
        r = browser.post("/search", data={"csrf_token": token, "given": "Olivia", "purpose": "direct-care"})
        assert r.status_code == 400
    assert count(engine, "assessment") == 0


def test_session_cookie_flags_and_security_headers(engine: Engine, world: World) -> None:
    app = create_app(web_settings("https://testserver"), engine=engine)
    with page_client(app, "https://testserver") as client:
        sign_in(client, world, "pat")
        r = client.get("/search")
        cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie")
        assert cookie.startswith("__Host-childindex_session=")
        for flag in ("HttpOnly", "Secure", "SameSite=Lax", "Path=/"):
            assert flag in cookie
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"
        assert "max-age" in r.headers["strict-transport-security"]
        # The session value is sealed: neither a token nor a name can be read out of it.
        # (Checked on the decoded bytes: the base64 text of random ciphertext holds any three
        # letters, such as "eyJ", about once in 500 sessions.)
        value = cookie.split(";")[0].split("=", 1)[1]
        assert not value.startswith("eyJ")  # an unsealed session would be base64 of JSON
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        assert b"access_token" not in raw and b"eyJ" not in raw and b"pat" not in raw


def test_no_child_data_in_urls(browser: TestClient, world: World) -> None:
    sign_in(browser, world, "pat")
    page = browser.get("/search").text
    assert 'method="post" action="/search"' in page
    results = search(browser, given="Olivia", family="Smith", **DOB)
    links = re.findall(r'href="([^"]+)"', results)
    assert links
    for link in links:
        assert "olivia" not in link.lower() and "smith" not in link.lower() and "2017" not in link
    r = browser.get("/search?given=Zebedee&family=Quorn")
    assert "Zebedee" not in r.text and "Quorn" not in r.text  # query strings are ignored, never searched


def test_pages_refuse_without_a_session_and_ignore_headers(browser: TestClient, world: World) -> None:
    olivia = world.children["olivia"]
    for path in ("/search", f"/children/{olivia}", "/admin/grants", "/audit", "/localities"):
        r = browser.get(path, headers={"X-Dev-Actor": "subject=x; role=directory_admin"})
        assert r.status_code == 401 and "Sign in" in r.text, path
        assert "Olivia" not in r.text


def test_roles_are_refused_pages_outside_their_grant(browser: TestClient, world: World) -> None:
    sign_in(browser, world, "pat")
    for path in ("/admin/grants", "/admin/clients", "/audit", "/localities"):
        r = browser.get(path)
        assert r.status_code == 403 and "may not do this" in r.text, path


def test_an_expired_grant_blocks_search(browser: TestClient, world: World, engine: Engine) -> None:
    sign_in(browser, world, "pat")
    token = csrf_of(browser.get("/search").text)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE access_grant SET valid_until = :t WHERE subject = 'pat'"),
            {"t": (utcnow() - timedelta(days=1)).replace(tzinfo=None)},
        )
    r = browser.post(
        "/search", data={"csrf_token": token, "purpose": "direct-care", "given": "Olivia", **DOB}
    )
    assert r.status_code == 403 and "Your access grant expired on" in r.text
    assert "Olivia Smith" not in r.text


def test_shielded_record_names_whom_to_ask(browser: TestClient, web_app: FastAPI, world: World) -> None:
    noah = world.children["noah"]
    sign_in(browser, world, "pat")
    results = search(
        browser, given="Noah", family="Jones", **{"dob-day": "2", "dob-month": "5", "dob-year": "2016"}
    )
    assert "This record is shielded" in results and "Hidden Lane" not in results
    card = browser.get(f"/children/{noah}").text
    assert "City Early Help Team" in card and "01632 960100" in card
    assert "Hidden Lane" not in card and "Dee Walsh" not in card
    with page_client(web_app, "http://testserver") as designated:
        sign_in(designated, world, "dee")
        search(
            designated, given="Noah", family="Jones", **{"dob-day": "2", "dob-month": "5", "dob-year": "2016"}
        )
        card = designated.get(f"/children/{noah}").text
        assert "9 Hidden Lane" in card and "Dee Walsh" in card
        assert "Who has looked at this record" in card
        log = designated.get(f"/children/{noah}/access-log").text
        assert "pat" in log and "child.read" in log


def test_sign_out_revokes_the_session(browser: TestClient, world: World, engine: Engine) -> None:
    sign_in(browser, world, "pat")
    page = browser.get("/search")
    old_cookie = browser.cookies.get("childindex_session")
    r = browser.post("/signout", data={"csrf_token": csrf_of(page.text)})
    assert "You have signed out" in r.text
    assert browser.get("/search").status_code == 401
    # Replaying the old cookie does not get back in: its tokens were revoked.
    browser.cookies.set("childindex_session", old_cookie or "")
    assert browser.get("/search").status_code == 401
    with engine.connect() as conn:
        assert conn.execute(
            sa.text("SELECT count(*) FROM audit_event WHERE action = 'auth.token.revoked'")
        ).scalar()


def test_admin_grants_and_clients(browser: TestClient, world: World, engine: Engine) -> None:
    with unit_of_work(engine) as s:  # a grant is for an account that exists (issue #20)
        make_user(s, "newbie")
    sign_in(browser, world, "ada")
    page = browser.get("/admin/grants")
    assert page.status_code == 200 and "pat" in page.text
    created = post_form(
        browser,
        "/admin/grants/new",
        {
            "subject": "newbie",
            "subject_kind": "user",
            "role": "practitioner",
            "reason": "new SENCO",
            "until-day": "1",
            "until-month": "1",
            "until-year": str(utcnow().year + 1),
        },
    )
    assert "Access granted to newbie" in created.text
    grant_path = str(created.url.path)
    r = browser.post(
        f"{grant_path}/suspend", data={"csrf_token": csrf_of(created.text), "suspend-reason": "leave"}
    )
    assert "The grant is suspended" in r.text
    r = browser.post(f"{grant_path}/revoke", data={"csrf_token": csrf_of(r.text), "revoke-reason": "left"})
    assert "The grant is revoked" in r.text
    assert "newbie" in browser.get("/admin/grants?status=revoked").text
    assert browser.get("/admin/grants?expiring=30").status_code == 200
    missing = post_form(browser, "/admin/grants/new", {"subject": "x", "role": "practitioner"})
    assert missing.status_code == 400 and "Enter the end date" in missing.text
    public = ECKey.generate_key("P-256", private=True).as_dict(private=False)
    jwks = json.dumps({"keys": [{**public, "kid": "k1"}]})
    registered = post_form(
        browser,
        "/admin/clients/new",
        {
            "client_id": "trust-epr",
            "name": "Trust EPR",
            "auth_method": "private_key_jwt",
            "jwks": jwks,
            "scopes": "system/Patient.rs",
        },
    )
    assert "trust-epr is registered" in registered.text
    private = jwks.replace('"kid": "k1"', '"kid": "k2", "d": "secret"')
    refused = post_form(
        browser,
        "/admin/clients/new",
        {"client_id": "leaky", "name": "Leaky", "jwks": private, "scopes": "system/Patient.rs"},
    )
    assert refused.status_code == 409 and "register only the public keys" in refused.text
    assert "trust-epr" in browser.get("/admin/clients").text


def test_auditor_pages(browser: TestClient, world: World) -> None:
    olivia = world.children["olivia"]
    sign_in(browser, world, "aud")
    found = browser.get(f"/audit?child={olivia}")
    assert found.status_code == 200 and "Recorded an involvement" in found.text
    assert "seed, Directory administrator" in browser.get("/audit?user=seed").text
    assert "The chain is intact" in browser.get("/audit/verify").text
    assert browser.get("/audit/alerts").status_code == 200
    assert browser.get("/audit?child=not-an-id").status_code == 200
    assert browser.get("/search").status_code == 403  # auditors review; they do not search


def test_locality_overview_is_aggregate_only(browser: TestClient, world: World) -> None:
    sign_in(browser, world, "lena")
    page = browser.get("/localities")
    assert page.status_code == 200 and "City locality" in page.text and "<svg" in page.text
    for name in ("Olivia", "Amara", "Noah", "Smith", "Jones"):
        assert name not in page.text
    assert "fewer than 5" in page.text
    csv = browser.get("/localities/overview.csv")
    assert csv.headers["content-type"].startswith("text/csv")
    # Two children in the city: the total is small, so the whole row is withheld.
    assert "CITY,City locality,children,,,fewer than 5" in csv.text
    assert "CITY,City locality,children_by_level_of_need,2,,withheld" in csv.text
    assert "CITY,City locality,involvements_by_service,health_visiting,,fewer than 5" in csv.text
    assert "CITY,City locality,open_cafs,,0," in csv.text  # a zero names no one
    assert "Olivia" not in csv.text


def test_locality_overview_unsuppressed_when_configured(engine: Engine, world: World) -> None:
    app = create_app(
        web_settings("http://testserver").model_copy(update={"suppress_below": 0}), engine=engine
    )
    with page_client(app, "http://testserver") as client:
        sign_in(client, world, "lena")
        csv = client.get("/localities/overview.csv").text
    assert "CITY,City locality,children_by_level_of_need,2,2," in csv
    assert "CITY,City locality,involvements_by_service,health_visiting,1," in csv


@pytest.mark.parametrize("path", ["/", "/accessibility", "/static/app.css"])
def test_public_pages(browser: TestClient, path: str) -> None:
    r = browser.get(path)
    assert r.status_code in (200, 404)  # the stylesheet exists once `make web` has run


def test_unknown_record_is_a_page_not_json(browser: TestClient, world: World) -> None:
    sign_in(browser, world, "pat")
    search(browser, given="Olivia", family="Smith", **DOB)
    r = browser.get(f"/children/{uuid.uuid4()}")
    assert r.status_code == 404 and "text/html" in r.headers["content-type"]
    assert browser.get("/children/not-a-uuid").status_code == 404


def test_each_role_lands_on_its_own_start_page(browser: TestClient, world: World) -> None:
    sign_in(browser, world, "aud")
    r = browser.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/audit"


def test_an_expiring_access_token_is_refreshed_behind_the_page(engine: Engine, world: World) -> None:
    settings = web_settings("http://testserver").model_copy(update={"access_token_minutes": 1})
    app = create_app(settings, engine=engine)
    with page_client(app, "http://testserver") as client:
        sign_in(client, world, "pat")
        issued = "SELECT count(*) FROM audit_event WHERE action = 'auth.token.issued'"
        with engine.connect() as conn:
            before = conn.execute(sa.text(issued)).scalar_one()
        for _ in range(2):  # a one-minute token is inside the refresh margin: each page refreshes it
            assert client.get("/search").status_code == 200
        with engine.connect() as conn:
            assert conn.execute(sa.text(issued)).scalar_one() == before + 2
            reused = "SELECT count(*) FROM audit_event WHERE action = 'auth.refresh.reused'"
            assert conn.execute(sa.text(reused)).scalar_one() == 0


def _authorize_page(client: TestClient) -> httpx.Response:
    start = client.get("/signin/start", follow_redirects=False)
    return client.get(start.headers["location"])


def test_the_sign_in_page_uses_the_pages_layout(browser: TestClient) -> None:
    page = _authorize_page(browser)
    html = page.text
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP
    assert '<link rel="stylesheet" href="/static/app.css">' in html and "govuk-template" in html
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "no inline scripts"
    assert 'for="username"' in html and 'autocomplete="username"' in html
    assert 'type="password"' in html and 'autocomplete="current-password"' in html
    assert 'for="totp"' in html and 'autocomplete="one-time-code"' in html and 'inputmode="numeric"' in html
    assert "Sign in with your organisation" not in html  # no upstream provider configured here


def _submit_sign_in(client: TestClient, **fields: str) -> httpx.Response:
    page = _authorize_page(client)
    form = _hidden(page.text)
    return client.post("/oauth/authorize", data={**form, **fields}, follow_redirects=False)


def test_sign_in_errors_use_the_error_summary(browser: TestClient, world: World) -> None:
    missing = _submit_sign_in(browser, username="pat", password="", totp="")
    assert missing.status_code == 400
    assert "govuk-error-summary" in missing.text and missing.text.count("govuk-error-message") == 2
    assert '<a href="#password">Enter your password</a>' in missing.text
    assert 'href="#totp"' in missing.text and 'value="pat"' in missing.text
    assert "<title>Error: Sign in" in missing.text
    wrong = _submit_sign_in(browser, username="pat", password="wrong", totp="123456")
    assert wrong.status_code == 401 and "govuk-error-summary" in wrong.text
    assert '<a href="#username">The username, password or code is not right' in wrong.text
    assert wrong.headers["content-security-policy"] == CSP
    forged = _submit_sign_in(browser, username="pat", password="x", totp="1", csrf_token="forged")
    assert forged.status_code == 400 and "Your sign-in page expired" in forged.text
    bad_link = browser.get("/oauth/authorize?client_id=nobody")
    assert bad_link.status_code == 400 and "govuk-heading-l" in bad_link.text
    assert "This sign-in link is not valid" in bad_link.text


def test_sign_in_page_lets_the_form_reach_a_registered_client_elsewhere(engine: Engine, world: World) -> None:
    from sqlmodel import Session

    from auth.registry import ensure_public_client

    with Session(engine) as s:
        ensure_public_client(
            s,
            client_id="phone-app",
            name="app",
            redirect_uri="https://app.example/cb",
            scopes=("directory.search",),
        )
        s.commit()
    app = create_app(web_settings("http://testserver"), engine=engine)
    with page_client(app, "http://testserver") as client:
        page = client.get(
            "/oauth/authorize",
            params={
                "response_type": "code",
                "client_id": "phone-app",
                "redirect_uri": "https://app.example/cb",
                "scope": "directory.search",
                "code_challenge": "x" * 43,
                "code_challenge_method": "S256",
            },
        )
    assert page.status_code == 200
    assert "form-action 'self' https://app.example;" in page.headers["content-security-policy"]


def test_shield_and_lift_a_shield(
    browser: TestClient, web_app: FastAPI, world: World, engine: Engine
) -> None:
    olivia, noah = world.children["olivia"], world.children["noah"]
    sign_in(browser, world, "dee")
    search(browser, given="Olivia", family="Smith", **DOB)
    card = browser.get(f"/children/{olivia}").text
    assert "This record is not shielded" in card and f"/children/{olivia}/shield" in card
    empty = post_form(browser, f"/children/{olivia}/shield", {"reason": ""})
    assert empty.status_code == 400 and "govuk-error-summary" in empty.text
    assert "Enter why the record is shielded" in empty.text
    assert "Confirm that the record should be shielded" in empty.text
    no_csrf = browser.post(f"/children/{olivia}/shield", data={"reason": "x", "confirm": "yes"})
    assert no_csrf.status_code == 400 and "This form has expired" in no_csrf.text
    done = post_form(
        browser, f"/children/{olivia}/shield", {"reason": "family fleeing violence", "confirm": "yes"}
    )
    assert done.status_code == 200 and "The record is shielded" in done.text
    assert "Lift the shield" in done.text
    with page_client(web_app, "http://testserver") as pat:
        sign_in(pat, world, "pat")
        search(pat, given="Olivia", family="Smith", **DOB)
        seen = pat.get(f"/children/{olivia}").text
        assert "This record is shielded" in seen and "Hana Begum" not in seen
        assert "Shielding" not in seen
        assert pat.get(f"/children/{olivia}/shield").status_code == 403
        assert pat.get(f"/children/{olivia}/shield-clear").status_code == 403
    lifted = post_form(
        browser, f"/children/{noah}/shield-clear", {"reason": "rehoused safely", "confirm": "yes"}
    )
    assert lifted.status_code == 200 and "The shield is lifted" in lifted.text
    assert "9 Hidden Lane" in lifted.text
    again = post_form(browser, f"/children/{noah}/shield-clear", {"reason": "again", "confirm": "yes"})
    assert again.status_code == 409 and "This record is not shielded" in again.text
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT action, actor_subject, detail FROM audit_event "
                "WHERE action LIKE 'child.shield.%' AND actor_subject = 'dee' ORDER BY seq"
            )
        ).all()
    assert [r[0] for r in rows] == ["child.shield.set", "child.shield.clear"]
    # the reason is kept beside the chain (its note, which a purge deletes), never in it
    assert "rehoused safely" not in str(rows[1][2]) and "note" in str(rows[1][2])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT text FROM audit_note")).scalars().all() == ["rehoused safely"]


def test_child_protection_may_lift_a_shield_it_cannot_see_behind(browser: TestClient, world: World) -> None:
    noah = world.children["noah"]
    sign_in(browser, world, "cora")
    search(browser, given="Noah", family="Jones", **{"dob-day": "2", "dob-month": "5", "dob-year": "2016"})
    page = browser.get(f"/children/{noah}/shield-clear")
    assert page.status_code == 200 and "Lift the shield" in page.text and "Hidden Lane" not in page.text


NEW_CHILD = {
    "given": "Ruby",
    "family": "Fletcher",
    "born": "yes",
    "dob-day": "4",
    "dob-month": "6",
    "dob-year": "2020",
    "sex": "female",
    "nhs_number": "943 476 5919",
    "line1": "12 Elm Close",
    "town": "Oxford",
    "postcode": "ox4 3qq",
    "purpose": "direct-care",
}


def test_add_a_child_with_a_check_step(browser: TestClient, world: World, engine: Engine) -> None:
    sign_in(browser, world, "pat")
    form = browser.get("/children/new")
    assert form.status_code == 200 and 'name="nhs_number"' in form.text
    token = csrf_of(form.text)
    empty = browser.post("/children/new", data={"csrf_token": token})
    assert empty.status_code == 400 and "govuk-error-summary" in empty.text
    for message in (
        "Enter the child&#39;s given name",
        "Select whether the child has been born",
        "Select why you are recording this child",
    ):
        assert message in empty.text
    bad = browser.post(
        "/children/new",
        data={**NEW_CHILD, "csrf_token": token, "nhs_number": "943 476 5918", "postcode": "nowhere"},
    )
    assert bad.status_code == 400
    assert "Enter a real NHS number" in bad.text and "Enter a real UK postcode" in bad.text
    assert 'value="Ruby"' in bad.text  # what was typed is kept
    check = browser.post("/children/new", data={**NEW_CHILD, "csrf_token": token})
    assert check.status_code == 200 and "Check the details before adding the child" in check.text
    assert "City locality" in check.text and "OX4 3QQ" in check.text
    assert "may already be on the directory" not in check.text
    with engine.connect() as conn:
        assert not conn.execute(sa.text("SELECT count(*) FROM child_name WHERE given = 'Ruby'")).scalar()
    change = browser.post("/children/new", data={**NEW_CHILD, "csrf_token": token, "step": "change"})
    assert change.status_code == 200 and 'value="Fletcher"' in change.text
    made = browser.post(
        "/children/new", data={**NEW_CHILD, "csrf_token": token, "step": "create"}, follow_redirects=False
    )
    assert made.status_code == 303 and "Ruby" not in made.headers["location"]
    card = browser.get(made.headers["location"])
    assert "The child is recorded" in card.text and "Ruby" in card.text and "City locality" in card.text
    with engine.connect() as conn:
        events = (
            conn.execute(sa.text("SELECT action FROM audit_event WHERE actor_subject = 'pat' ORDER BY seq"))
            .scalars()
            .all()
        )
    assert "child.create" in events and "search" in events
    from search.embedded import EmbeddedBackend
    from search.indexer import drain

    drain(engine, EmbeddedBackend(engine), wait=True)  # as the background indexer does
    again = {**NEW_CHILD, "csrf_token": token, "step": "create", "given": "Rubie"}
    shown = browser.post("/children/new", data=again)  # the NHS number finds the record just made
    assert shown.status_code == 400 and "may already be on the directory" in shown.text
    assert made.headers["location"] in shown.text
    refused = browser.post("/children/new", data={**again, "not_a_duplicate": "yes"})
    assert refused.status_code == 409 and "already holds this nhs identifier" in refused.text


def test_adding_a_child_already_on_record_asks_first(
    browser: TestClient, world: World, engine: Engine
) -> None:
    sign_in(browser, world, "hana")
    token = csrf_of(browser.get("/children/new").text)
    olivia = {
        **NEW_CHILD,
        "given": "Olivia",
        "family": "Smith",
        "dob-day": "27",
        "dob-month": "3",
        "dob-year": "2017",
        "nhs_number": "",
        "line1": "",
        "town": "",
        "postcode": "",
    }
    check = browser.post("/children/new", data={**olivia, "csrf_token": token})
    assert check.status_code == 200 and "may already be on the directory" in check.text
    assert f'href="/children/{world.children["olivia"]}"' in check.text
    unconfirmed = browser.post("/children/new", data={**olivia, "csrf_token": token, "step": "create"})
    assert unconfirmed.status_code == 400
    assert "Confirm that none of these children is the child you are recording" in unconfirmed.text

    def olivias() -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(sa.text("SELECT count(*) FROM child_name WHERE given = 'Olivia'")).scalar() or 0
            )

    assert olivias() == 1
    made = browser.post(
        "/children/new",
        data={**olivia, "csrf_token": token, "step": "create", "not_a_duplicate": "yes"},
        follow_redirects=False,
    )
    assert made.status_code == 303 and olivias() == 2


def test_add_a_child_refusals(browser: TestClient, world: World) -> None:
    sign_in(browser, world, "aud")
    assert browser.get("/children/new").status_code == 403
    with page_client(browser.app, "http://testserver") as other:  # type: ignore[arg-type]
        sign_in(other, world, "pat")
        token = csrf_of(other.get("/children/new").text)
        assert other.post("/children/new", data=NEW_CHILD).status_code == 400  # no CSRF token
        old = other.post(
            "/children/new",
            data={**NEW_CHILD, "csrf_token": token, "dob-year": "1990", "nhs_number": ""},
        )
        assert old.status_code == 400 and "outside that range" in old.text
        unborn = other.post(
            "/children/new",
            data={**NEW_CHILD, "csrf_token": token, "born": "no", "nhs_number": "", "step": "create"},
        )
        assert unborn.status_code == 400 and "Enter the expected date of delivery" in unborn.text
