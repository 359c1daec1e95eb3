"""The pages act on what is yours too: a practitioner who does not hold a CAF is shown who to ask
instead of its forms, and a form posted anyway is refused with nothing changed; the child's local
delivery team may change it with a reason and a confirmation, and the holder reads a notice."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from auth.policy import all_routes
from tests.web.test_pages import DOB, post_form, search
from tests.web.world import World, csrf_of, page_client, sign_in

CAF_ACTIONS = ("caf-start", "caf-complete", "caf-close", "lead-professional", "tac", "tac-convene")
CAF_ACTIONS += ("tac-action", "tac-action-change", "tac-review")  # the TAC's plan (plan_pages.py)
# The page routes that change a record, and whose they are (every one must be named here).
PAGE_WRITES = {
    **{f"web_{a.replace('-', '_')}": "the CAF's people" for a in CAF_ACTIONS},
    "web_involvement_end": "the service's practitioners or the locality team",
    "web_consent_withdraw": "the recorder or the locality team",
    "web_caf_signal": "any practitioner, as themselves",
    "web_involvement_new": "the organisation's own practitioners or the locality team",
    "web_consent_new": "any practitioner",
    "web_shield": "by role",
    "web_shield_clear": "by role",
    "web_card_purpose": "reads",
    "web_card_override": "reads (child protection)",
    "web_search": "reads",
    "web_search_clear": "the signed-in person's own session (forgets the kept search terms)",
    "web_notice_read": "the notice's practitioner",
    "web_inbox_read": "the notice's practitioner (404 to anyone else)",
    "web_inbox_preference": "the signed-in practitioner's own choice",
    "web_inbox_still_involved": "the notice's practitioner, then confirm_involvement's own rule",
    "web_child_details": "an involved service's practitioners or the locality team (require_details_change)",
    "web_death": "by role: directory admins (lifecycle.LIFECYCLE_RECORDERS)",
    "web_move_away": "by role: directory admins (lifecycle.LIFECYCLE_RECORDERS)",
    "web_adoption": "by role: the adoption team (visibility.SEALED_READERS)",
    # requests (tests/web/test_requests_pages.py): the one the request names, or the CAF's holder
    "web_request_accept": "the practitioner named (hand-over, invitation) or the CAF's holder (ask to join)",
    "web_request_decline": "the practitioner named (hand-over, invitation) or the CAF's holder (ask to join)",
    "web_tac_join": "any practitioner who can read the record, as themselves (an ask changes nothing yet)",
    "web_audit_search": "reads (auditors: an audit-purpose search, audited)",
    "web_enrol": "the person the sealed one-time enrolment link names (their own password), nobody's record",
}
PAGE_WRITES.update(  # the panel, step up and step down (childindex/web/panel_pages.py)
    {
        "web_panel_send": "the CAF's people (require_caf_change)",
        "web_step_up": "the CAF's people (require_caf_change)",
        "web_step_down": "by role: social care (step_up.SOCIAL_CARE)",
        "web_panel_decision": "the child's locality team (panel decisions)",
    }
)


def _state(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    tables = ("assessment", "tac", "tac_member", "lead_professional_assignment", "involvement", "consent")
    with engine.connect() as conn:
        return {t: sorted(map(tuple, conn.execute(sa.text(f"SELECT * FROM {t}"))), key=repr) for t in tables}


def _caf_in_progress(browser: TestClient, world: World) -> dict[str, str]:
    """Pat signals and starts a CAF for Olivia, with a TAC; returns the ids the forms carry."""
    olivia = world.children["olivia"]
    sign_in(browser, world, "pat")
    search(browser, given="Olivia", family="Smith", **DOB)
    post_form(browser, f"/children/{olivia}/caf-signal", {"not_safeguarding": "yes"})
    post_form(
        browser,
        f"/children/{olivia}/consent-new",
        {"scope": "caf", "given_by_kind": "parent_carer", "given_by_name": "Jane Smith"},
    )
    start = browser.get(f"/children/{olivia}/caf-start").text
    caf_id = re.search(r'name="caf_id" value="([^"]+)"', start)
    consent_id = re.search(r'name="consent_id" type="radio" value="([^"]+)"', start)
    assert caf_id and consent_id
    post_form(browser, f"/children/{olivia}/caf-start", {"caf_id": caf_id[1], "consent_id": consent_id[1]})
    r = post_form(
        browser,
        f"/children/{olivia}/tac",
        {"caf_id": caf_id[1], "add": [str(world.practitioners[k]) for k in ("pat", "dee", "sam")]},  # type: ignore[dict-item]
    )
    assert "Team Around the Child is updated" in r.text
    return {"caf_id": caf_id[1], "consent_id": consent_id[1]}


def test_every_page_that_changes_a_record_is_named(web_app: FastAPI) -> None:
    posts = {
        r.original_route.name
        for r in all_routes(web_app)
        if isinstance(r.original_route, APIRoute)
        and "POST" in r.original_route.methods
        and not r.path.startswith(
            ("/api/", "/fhir", "/oauth", "/admin", "/signin", "/signout", "/session/", "/children/new")
        )
        and r.original_route.name.startswith("web_")
    }
    assert posts - set(PAGE_WRITES) == set()


def test_a_practitioner_who_does_not_hold_the_caf_is_shown_whom_to_ask_and_refused(
    browser: TestClient, world: World, web_app: FastAPI, engine: Engine
) -> None:
    olivia = world.children["olivia"]
    ids = _caf_in_progress(browser, world)
    with page_client(web_app, "http://testserver") as hana:
        sign_in(hana, world, "hana")
        search(hana, given="Olivia", family="Smith", **DOB)
        card = hana.get(f"/children/{olivia}").text
        assert "Only the CAF's holder" in card and "caf-close" not in card
        token = csrf_of(card)
        before = _state(engine)
        for slug in CAF_ACTIONS:
            page = hana.get(f"/children/{olivia}/{slug}")
            assert page.status_code == 200 and "Only the CAF's holder" in page.text, slug
            assert f'action="/children/{olivia}/{slug}"' not in page.text, slug  # no form to fill
            assert "Pat Okafor" in page.text, slug  # whom to ask
            r = hana.post(
                f"/children/{olivia}/{slug}",
                data={
                    "csrf_token": token,
                    **ids,
                    "reason": "tidying up",
                    "confirm_not_holder": "yes",
                    "outcome": "needs_met_in_service",
                    "to_practitioner_id": str(world.practitioners["hana"]),
                    "remove": str(world.practitioners["sam"]),
                    "review-day": "1",
                    "review-month": "1",
                    "review-year": "2099",
                },
            )
            assert r.status_code == 403, (slug, r.status_code)
        # Pat's SEN involvement and Pat's consent are not Hana's either.
        sen = re.search(r'involvement-end\?item=([0-9a-f-]+)"', browser.get(f"/children/{olivia}").text)
        assert sen and f"involvement-end?item={sen[1]}" not in card
        r = hana.post(
            f"/children/{olivia}/involvement-end",
            data={"csrf_token": token, "item": sen[1], "end-day": "1", "end-month": "1", "end-year": "2025"},
        )
        assert r.status_code == 403
        assert "consent-withdraw" not in card
        r = hana.post(
            f"/children/{olivia}/consent-withdraw",
            data={"csrf_token": token, "item": ids["consent_id"], "reason": "x"},
        )
        assert r.status_code == 403
        assert _state(engine) == before


def test_the_locality_team_changes_it_with_a_reason_and_the_holder_is_told(
    browser: TestClient, world: World, web_app: FastAPI, engine: Engine
) -> None:
    olivia = world.children["olivia"]
    ids = _caf_in_progress(browser, world)
    with page_client(web_app, "http://testserver") as lena:
        sign_in(lena, world, "lena")
        search(lena, given="Olivia", family="Smith", **DOB)
        page = lena.get(f"/children/{olivia}/caf-complete")
        assert "You do not hold this CAF: Pat Okafor does" in page.text
        missing = lena.post(
            f"/children/{olivia}/caf-complete",
            data={"csrf_token": csrf_of(page.text), **ids, "outcome": "needs_met_in_service"},
        )
        assert missing.status_code == 400
        assert "Give the reason" in missing.text and "Confirm that you are changing a CAF" in missing.text
        done = post_form(
            lena,
            f"/children/{olivia}/caf-complete",
            {
                **ids,
                "outcome": "needs_met_in_service",
                "reason": "agreed at panel",
                "confirm_not_holder": "yes",
            },
        )
        assert done.status_code == 200 and "completed" in done.text
    notices = browser.get("/notices")
    assert "recorded the outcome of a CAF you hold" in notices.text and "agreed at panel" in notices.text
    assert "1 new notice" in browser.get("/search").text
    read = re.search(r'action="/notices/([0-9a-f-]+)/read"', notices.text)
    assert read
    browser.post(f"/notices/{read[1]}/read", data={"csrf_token": csrf_of(notices.text)})
    assert "new notice" not in browser.get("/search").text
