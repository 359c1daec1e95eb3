"""Every page of the app in Chromium, at 320 px and at desktop width: no sideways scroll at 320 px
(WCAG 1.4.10 reflow: document.documentElement.scrollWidth <= 320) and no axe-core violation of any
impact at either width; a screenshot of each in test-artifacts/sweep/.

The pages are enumerated from the app's router: every GET route that answers with a page (not in
the OpenAPI schema, or an HTML response) needs a visit recipe in VISITS, so a new page cannot be
forgotten. Pages that no GET route reaches on its own (search results, the purpose question, error
pages, sign-in refusals, the signed-out page) are listed in EXTRA_VISITS.

OTHERS_PAGES_THAT_FAIL_THE_SWEEP lists the pages that still fail and belong to another part of
issue #20 (search, card and the child's pages; forms and sign-in; admin grants and audit): they are
expected failures (xfail), to be emptied at merge.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlmodel import Session, select

from auth.models import AccessGrant
from auth.policy import all_routes
from childindex import people_notify
from directory import service
from directory.db import unit_of_work
from directory.models import (
    CafComplete,
    CafSignal,
    CafStart,
    ConsentCreate,
    Role,
    TacConvene,
    TacMemberIn,
    TacUpdate,
    utcnow,
)
from directory.models.panel import PanelSend
from directory.service.merge import merge_children
from directory.service.panel import send_to_panel
from tests.fixtures.auth_builders import make_grant, make_user
from tests.fixtures.builders import actor, make_child
from tests.notices.scene import notices_of
from tests.web.test_browser import (  # noqa: F401 (the fixtures)
    ARTIFACTS,
    AXE,
    AXE_TAGS,
    Person,
    Served,
    chromium,
    server,
)

SWEEP = ARTIFACTS / "sweep"
WIDTHS = {"320": (320, 900), "desktop": (1280, 900)}


@dataclass(frozen=True)
class Visit:
    """How to reach one page: as whom, which address, and any step on the page before the scan."""

    user: str | None  # None: not signed in
    path: str | Callable[[Scene], str]
    then: Callable[[Any], None] | None = None
    card_first: bool = False  # open the child's card first (answering why), as from a search
    card_of: str | None = None  # the child whose card, when the path is not under /children/


@dataclass
class Scene:
    """The ids the recipes need (built once per module on the browser server's database)."""

    children: dict[str, uuid.UUID] = field(default_factory=dict)
    caf: uuid.UUID | None = None  # Olivia's, in progress with a convened TAC
    panel_caf: uuid.UUID | None = None  # Ruby's, completed and sent to panel
    notice: uuid.UUID | None = None
    grant: uuid.UUID | None = None


def child(key: str, suffix: str = "") -> Callable[[Scene], str]:
    """The address of a child's page."""
    return lambda scene: f"/children/{scene.children[key]}{suffix}"


def _sign_in_refused(page: Any) -> None:
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("not the password")
    page.get_by_label("Code from your authenticator app").fill("000000")
    page.get_by_role("button", name="Sign in").click()


def _search(page: Any) -> None:
    page.get_by_label("Given name").fill("Olivia")
    page.get_by_label("Family name").fill("Smith")
    page.get_by_label("Day").first.fill("27")
    page.get_by_label("Month").first.fill("3")
    page.get_by_label("Year").first.fill("2017")
    page.get_by_label("I am considering an early help assessment (CAF)").check()
    page.get_by_role("button", name="Search").click()


def _sign_out(page: Any) -> None:
    page.get_by_role("button", name="Sign out").click()


# route name -> how to reach it (every GET page route of the app; test_every_page_route_has_a_visit)
VISITS: dict[str, Visit] = {
    "web_home": Visit(None, "/"),
    "web_signin_start": Visit(None, "/signin/start"),  # redirects to the sign-in page
    "oauth_authorize_form": Visit(None, "/signin/start"),
    "web_signin_callback": Visit(None, "/signin/callback"),  # no code: says why
    "oauth_upstream_callback": Visit(None, "/oauth/upstream/callback"),
    "web_accessibility": Visit(None, "/accessibility"),
    "web_search_form": Visit("pat", "/search"),
    "web_child_new_form": Visit("pat", "/children/new"),
    "web_card": Visit("pat", child("olivia"), card_first=True),
    "web_access_log": Visit("dee", child("noah", "/access-log"), card_first=True),
    "web_caf_signal_form": Visit("pat", child("maya", "/caf-signal"), card_first=True),
    "web_caf_start_form": Visit("pat", child("amara", "/caf-start"), card_first=True),
    "web_caf_complete_form": Visit("pat", child("olivia", "/caf-complete"), card_first=True),
    "web_caf_close_form": Visit("pat", child("olivia", "/caf-close"), card_first=True),
    "web_lead_professional_form": Visit("pat", child("olivia", "/lead-professional"), card_first=True),
    "web_tac_form": Visit("pat", child("olivia", "/tac"), card_first=True),
    "web_tac_convene_form": Visit("pat", child("olivia", "/tac-convene"), card_first=True),
    "web_tac_action_form": Visit("pat", child("olivia", "/tac-action"), card_first=True),
    "web_tac_action_change_form": Visit("pat", child("olivia", "/tac-action-change"), card_first=True),
    "web_tac_review_form": Visit("pat", child("olivia", "/tac-review"), card_first=True),
    "web_involvement_new_form": Visit("pat", child("olivia", "/involvement-new"), card_first=True),
    "web_involvement_end_form": Visit("pat", child("olivia", "/involvement-end"), card_first=True),
    "web_consent_new_form": Visit("pat", child("olivia", "/consent-new"), card_first=True),
    "web_consent_withdraw_form": Visit("pat", child("olivia", "/consent-withdraw"), card_first=True),
    "web_shield_form": Visit("dee", child("amara", "/shield"), card_first=True),
    "web_shield_clear_form": Visit("dee", child("noah", "/shield-clear"), card_first=True),
    "web_child_details_form": Visit("pat", child("olivia", "/details"), card_first=True),
    "web_child_history": Visit("pat", child("olivia", "/history"), card_first=True),
    "web_panel_send_form": Visit("pat", child("olivia", "/panel-send"), card_first=True),
    "web_step_up_form": Visit("pat", child("olivia", "/step-up"), card_first=True),
    "web_step_down_form": Visit("cora", child("maya", "/step-down"), card_first=True),
    "web_notices": Visit("pat", "/notices"),
    "web_inbox": Visit("hana", "/inbox"),
    "web_inbox_preference_form": Visit("hana", "/inbox/preference"),
    "web_inbox_notice": Visit("hana", lambda scene: f"/inbox/{scene.notice}"),
    "web_requests": Visit("hana", "/requests"),
    "web_grants": Visit("ada", "/admin/grants"),
    "web_grant_new_form": Visit("ada", "/admin/grants/new"),
    "web_grant": Visit("ada", lambda scene: f"/admin/grants/{scene.grant}"),
    "web_clients": Visit("ada", "/admin/clients"),
    "web_client_new_form": Visit("ada", "/admin/clients/new"),
    "web_death_form": Visit("ada", child("maya", "/death"), card_first=True),
    "web_move_away_form": Visit("ada", child("maya", "/moved-away"), card_first=True),
    "web_audit": Visit("aud", lambda scene: f"/audit?child={scene.children['olivia']}"),
    "web_audit_verify": Visit("aud", "/audit/verify"),
    "web_audit_alerts": Visit("aud", "/audit/alerts"),
    "web_localities": Visit("lena", "/localities"),
    "web_localities_csv": Visit("lena", "/localities/overview.csv"),  # a download: not scanned
    "web_worklists": Visit("lena", "/worklist"),
    "web_worklist": Visit("lena", "/worklist/CITY"),
    "web_panel_queue": Visit("lena", "/panel"),
    "web_panel_decision_form": Visit(
        "lena", lambda scene: f"/panel/{scene.panel_caf}", card_first=True, card_of="ruby"
    ),
    "web_match_reviews": Visit("dora", "/admin/match-reviews"),
    "web_duplicates": Visit("dora", "/admin/duplicates"),
    "web_merge_form": Visit(
        "dora", lambda s: f"/admin/children/{s.children['olivia']}/merge?duplicate={s.children['maya']}"
    ),
    "web_merged_record": Visit("dora", lambda s: f"/admin/children/{s.children['merged']}/merged"),
    "web_subject_access": Visit("dora", lambda s: f"/admin/children/{s.children['olivia']}/subject-access"),
    "web_open_record": Visit("dora", "/records"),
    "web_adoption_form": Visit("ann", child("maya", "/adoption"), card_first=True),
    "web_mine": Visit("pat", "/mine"),
    "web_search_results": Visit("hana", "/search", then=_search),  # (search is POST-redirect-GET)
    "web_signed_out": Visit(None, "/signed-out"),
    "web_user_new_form": Visit("ada", "/admin/users/new"),
    "web_enrol_form": Visit(None, "/enrol/no-such-token"),  # refused (a real link: test_browser_admin_audit)
    "web_session_left": Visit("pat", "/session/left"),
}
NOT_PAGES = {
    "web_localities_csv": "a CSV download",
    "web_session_left": "the time-out warning's JSON question to the server",
}

# pages no GET route reaches on its own
EXTRA_VISITS: dict[str, Visit] = {
    "sign-in-refused": Visit(None, "/signin/start", then=_sign_in_refused),
    "signed-out": Visit("cora", "/search", then=_sign_out),
    "purpose-question": Visit("pia", child("noah")),
    "error-not-found": Visit("pat", "/no-such-page"),
    "error-refused": Visit("pat", "/admin/grants"),
    "error-signed-in-needed": Visit(None, "/search"),
}

# Pages of another part of issue #20 that the sweep still finds fault with (see the report of helper D):
# expected failures until their owners' fixes are merged (empty: every page passes).
OTHERS_PAGES_THAT_FAIL_THE_SWEEP: set[str] = set()


def page_routes(app: Any) -> set[str]:
    """Every GET route that answers with a page: not in the API schema, or declared as HTML."""
    names = set()
    for route in all_routes(app):
        original = route.original_route
        if not isinstance(original, APIRoute) or "GET" not in (route.methods or ()):
            continue
        html = getattr(original.response_class, "__name__", "") == "HTMLResponse"
        if not original.include_in_schema or html:
            names.add(route.name)
    return names


def test_every_page_route_has_a_visit() -> None:
    from childindex.app import create_app
    from tests.web.world import web_settings

    routes = page_routes(create_app(web_settings("http://testserver")))
    assert len(routes) >= 50
    assert routes - set(VISITS) == set(), "a page with no visit recipe in VISITS"
    assert set(VISITS) - routes == set(), "a visit recipe for a route that is gone"


def _scene(served: Served) -> Scene:
    """Olivia: Pat's CAF in progress, a convened TAC; Amara: Pat's signal (Hana is told); Maya: a
    child to move, adopt or merge; a data manager and an adoption officer."""
    _, world, engine = served
    scene = Scene(children=dict(world.children))
    with unit_of_work(engine) as s:
        for username, role in (
            ("dora", Role.DATA_MANAGER),
            ("ann", Role.ADOPTION_OFFICER),
            ("pia", Role.PRACTITIONER),
        ):
            user = make_user(s, username)
            make_grant(s, username, role=role)
            world.totp[username] = user.totp_secret
        for key, given, family, born in (
            ("maya", "Maya", "Mover", "2015-06-01"),
            ("ruby", "Ruby", "Panel", "2014-01-09"),
            ("merged", "Mia", "Mover", "2015-06-01"),
        ):
            scene.children[key] = make_child(
                s, names=[{"given": given, "family": family}], date_of_birth=born
            )
        keeper = actor(Role.DATA_MANAGER, subject="seed")
        merge_children(s, actor=keeper, duplicate_id=scene.children["merged"], into_id=scene.children["maya"])
        grant = s.exec(select(AccessGrant).where(AccessGrant.subject == "pat")).first()
        scene.grant = grant.id if grant else None
    people_notify.start_cursor(engine)
    pat = world.practitioners["pat"]
    as_pat = actor(Role.PRACTITIONER, subject="pat", practitioner_id=pat)
    now = utcnow()
    with Session(engine, expire_on_commit=False) as s:
        caf = service.signal_caf(
            s,
            actor=as_pat,
            child_id=world.children["olivia"],
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=now,
        )
        consent = service.record_consent(
            s,
            actor=as_pat,
            child_id=world.children["olivia"],
            data=ConsentCreate(scope="caf", given_by_kind="parent_carer", given_by_name="Jane Smith"),
        )
        service.start_caf(s, actor=as_pat, caf_id=caf.id, data=CafStart(consent_id=consent.id), now=now)
        members = [
            TacMemberIn(practitioner_id=world.practitioners[k], role="member") for k in ("pat", "hana", "dee")
        ]
        tac = service.update_tac(s, actor=as_pat, caf_id=caf.id, data=TacUpdate(add_members=members), now=now)
        review = TacConvene(next_review_date=date.today() + timedelta(days=28))
        service.convene_tac(s, actor=as_pat, tac_id=tac.id, data=review, now=now)
        service.signal_caf(
            s,
            actor=as_pat,
            child_id=world.children["amara"],
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=now,
        )
        scene.caf = caf.id
        scene.panel_caf = _sent_to_panel(s, as_pat, scene.children["ruby"])
        s.commit()
    people_notify.fan_out(engine, email=False)
    notices = notices_of(engine, world.practitioners["hana"])
    scene.notice = notices[0].id if notices else None
    return scene


def _sent_to_panel(s: Session, as_pat: Any, child_id: uuid.UUID) -> uuid.UUID:
    """A CAF completed with a multi-agency outcome and sent to the locality's panel."""
    now = utcnow()
    caf = service.signal_caf(
        s,
        actor=as_pat,
        child_id=child_id,
        data=CafSignal(no_risk_of_significant_harm=True),
        signal_days=14,
        now=now,
    )
    consent = service.record_consent(
        s,
        actor=as_pat,
        child_id=child_id,
        data=ConsentCreate(scope="caf", given_by_kind="parent_carer", given_by_name="Jo Panel"),
    )
    service.start_caf(s, actor=as_pat, caf_id=caf.id, data=CafStart(consent_id=consent.id), now=now)
    service.complete_caf(
        s, actor=as_pat, caf_id=caf.id, data=CafComplete(outcome="multi_agency_response"), now=now
    )
    send_to_panel(s, actor=as_pat, caf_id=caf.id, data=PanelSend(), now=now)
    return caf.id


class People:
    """One signed-in browser per user for the whole module (each TOTP code is good once)."""

    def __init__(self, browser: Any, served: Served) -> None:
        self.chromium, self.served = browser, served
        self.people: dict[str | None, Any] = {}

    def page(self, user: str | None) -> Any:
        """A page signed in as the user (or a fresh anonymous one)."""
        base, world, _ = self.served
        if user is None:
            context = self.chromium.new_context(base_url=base, bypass_csp=True)
            return context.new_page()
        if user not in self.people:
            self.people[user] = Person(self.chromium, base, world, user)
        return self.people[user].page

    def close(self) -> None:
        """Close every browser context."""
        for person in self.people.values():
            person.close()


@pytest.fixture(scope="module")
def sweep(chromium: Any, server: Served) -> Iterator[tuple[People, Scene]]:  # noqa: F811
    """The scene, and the people who visit it."""
    scene = _scene(server)
    people = People(chromium, server)
    yield people, scene
    people.close()


def _open_card(page: Any, path: str) -> None:
    """Open the child's card as from a search: answer why, if asked."""
    match = re.match(r"(/children/[0-9a-f-]{36})", path)
    assert match, path
    page.goto(match.group(1))
    if page.get_by_role("heading", name="Why are you looking at this record?").count():
        page.get_by_role("group", name="Your reason").get_by_role("radio").first.check()
        page.get_by_role("button", name="Continue").click()


_OVERFLOW = """() => {
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.right > 321 && r.width > 0 && !el.closest('.govuk-visually-hidden')) {
      const cls = typeof el.className === 'string' ? el.className.trim().split(/\\s+/).join('.') : '';
      const id = el.id ? '#' + el.id : '';
      out.push(`${el.tagName.toLowerCase()}${id}.${cls} (${Math.round(r.right)} px)`);
    }
  }
  return out.slice(-6);
}"""


def scan(page: Any, name: str) -> list[str]:
    """At each width: sideways scroll (at 320 px) and every axe violation; a screenshot of each."""
    problems = []
    SWEEP.mkdir(parents=True, exist_ok=True)
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        if width == 320:
            wide = page.evaluate("document.documentElement.scrollWidth")
            if wide > 320:
                problems.append(f"{label}: {wide} px wide, from {page.evaluate(_OVERFLOW)}")
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS)
        problems += [
            f"{label}: {v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"]
        ]
        page.screenshot(path=str(SWEEP / f"{name}-{label}.png"), full_page=True)
    return problems


def _visit(people: People, scene: Scene, name: str, visit: Visit) -> Any:
    page = people.page(visit.user)
    path = visit.path(scene) if callable(visit.path) else visit.path
    if visit.card_first:
        _open_card(page, child(visit.card_of)(scene) if visit.card_of else path)
    response = page.goto(path)
    assert response is not None and response.status < 500, f"{name}: {path} answered {response}"
    if visit.then is not None:
        visit.then(page)
        page.wait_for_load_state()
    return page


def _params(visits: dict[str, Visit]) -> list[Any]:
    return [
        pytest.param(
            name,
            marks=pytest.mark.xfail(reason="another part of issue #20", strict=False)
            if name in OTHERS_PAGES_THAT_FAIL_THE_SWEEP
            else (),
        )
        for name in visits
        if name not in NOT_PAGES
    ]


@pytest.mark.parametrize("name", _params(VISITS))
def test_every_page_reflows_at_320_px_and_passes_axe(name: str, sweep: tuple[People, Scene]) -> None:
    people, scene = sweep
    page = _visit(people, scene, name, VISITS[name])
    problems = scan(page, name)
    (SWEEP / f"{name}.txt").write_text("\n".join([page.url, page.title(), *problems]) + "\n")
    assert not problems, f"{name} ({page.url}):\n" + "\n".join(problems)


@pytest.mark.parametrize("name", _params(EXTRA_VISITS))
def test_pages_beyond_the_routes_reflow_and_pass_axe(name: str, sweep: tuple[People, Scene]) -> None:
    people, scene = sweep
    page = _visit(people, scene, name, EXTRA_VISITS[name])
    problems = scan(page, name)
    (SWEEP / f"{name}.txt").write_text("\n".join([page.url, page.title(), *problems]) + "\n")
    assert not problems, f"{name} ({page.url}):\n" + "\n".join(problems)


def test_the_csv_download_is_not_a_page(sweep: tuple[People, Scene]) -> None:
    people, _ = sweep
    page = people.page("lena")
    response = page.request.get("/localities/overview.csv")
    assert response.ok and response.headers["content-type"].startswith("text/csv")


def test_the_scan_finds_a_page_too_wide_and_any_axe_violation(chromium: Any) -> None:  # noqa: F811
    """The sweep's own check can fail: a wide table and an image with no text alternative."""
    context = chromium.new_context(bypass_csp=True)
    page = context.new_page()
    page.set_content(
        '<!DOCTYPE html><html lang="en"><head><title>Wide</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        '<body><main><h1>Wide</h1><table><tr><td style="white-space: nowrap">'
        + "a-very-long-cell " * 20
        + '</td></tr></table><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="></main></body></html>'
    )
    problems = scan(page, "self-test")
    context.close()
    assert any(p.startswith("320: ") and "px wide" in p for p in problems), problems
    assert any("image-alt" in p for p in problems), problems
