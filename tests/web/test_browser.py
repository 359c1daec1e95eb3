"""The main journeys in Debian's Chromium driven by Playwright, with an axe-core scan of every page.

The app runs under uvicorn on 127.0.0.1 in a thread, on a temporary SQLite database seeded through the
domain services. Screenshots of the key pages go to test-artifacts/ (kept out of git).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn
from playwright.sync_api import expect

from childindex.app import create_app
from childindex.migrations import upgrade
from directory.db import make_engine
from directory.models import utcnow
from tests.conftest import IN_CI
from tests.fixtures.auth_builders import PASSWORD
from tests.web.world import World, build_world, web_settings

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHILDINDEX_TEST_CHROMIUM", "/usr/bin/chromium")
AXE = ROOT / "childindex" / "web" / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def _need(path: Path, what: str) -> None:
    if path.exists():
        return
    message = f"{what} is missing ({path}): the test command installs it (tests/services/, make web)"
    if IN_CI:
        pytest.fail(message + " - in CI that is a failure")
    pytest.skip(message)


def serve(
    tmp_path_factory: pytest.TempPathFactory, **settings: object
) -> Iterator[tuple[str, World, sa.Engine]]:
    """The app served by uvicorn on a free port, on a seeded SQLite file (with these settings)."""
    db = tmp_path_factory.mktemp("browser") / "web.db"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    world = build_world(engine)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    app = create_app(web_settings(base, f"sqlite:///{db}").model_copy(update=settings), engine=engine)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not uv.started:
        assert time.time() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield base, world, engine
    uv.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, World, sa.Engine]]:
    """The app served by uvicorn on a free port, on a seeded SQLite file."""
    yield from serve(tmp_path_factory)


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """Debian's Chromium, launched through Playwright (no browser download)."""
    _need(Path(CHROMIUM), "Chromium")
    _need(AXE, "axe-core")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def check_page(page: object, name: str, *, narrow: bool = False, blur: bool = False) -> None:
    """Scan a page with axe-core (no violation of any impact) and save a screenshot; with `narrow`,
    the page at 320 px wide must not scroll sideways either (WCAG 1.4.10; a screenshot of that too).
    `blur` first takes focus off whatever has it (a focused link's GOV.UK style is not what is judged)."""
    if blur:
        page.evaluate("document.activeElement && document.activeElement.blur()")  # type: ignore[attr-defined]
    page.add_script_tag(path=str(AXE))  # type: ignore[attr-defined]
    result = page.evaluate(  # type: ignore[attr-defined]
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS
    )
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
    ]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
    assert not bad, f"{name}: {bad}"
    if narrow:
        size = page.viewport_size  # type: ignore[attr-defined]
        page.set_viewport_size({"width": 320, "height": 800})  # type: ignore[attr-defined]
        try:
            width = page.evaluate("document.documentElement.scrollWidth")  # type: ignore[attr-defined]
            page.screenshot(path=str(ARTIFACTS / f"{name}-320.png"), full_page=True)  # type: ignore[attr-defined]
        finally:
            if size:
                page.set_viewport_size(size)  # type: ignore[attr-defined]
        assert width <= 320, f"{name} is {width} px wide at a 320 px viewport"


class Person:
    """One practitioner's browser: its own cookies, signed in through the real sign-in page."""

    def __init__(self, chromium: object, base: str, world: World, username: str) -> None:
        # bypass_csp lets the test inject axe-core; the app's own pages never need inline script.
        self.context = chromium.new_context(base_url=base, bypass_csp=True)  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.username = username
        self.page.goto("/")
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_label("Code from your authenticator app").fill(world.code(username))
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_load_state()

    def check(self, name: str) -> None:
        """Scan the page with axe-core (no violation of any impact) and save a screenshot."""
        check_page(self.page, name)

    def search(self, given: str, family: str, day: str, month: str, year: str) -> None:
        """Fill in and submit the search form."""
        page = self.page
        page.goto("/search")
        page.get_by_label("Given name").fill(given)
        page.get_by_label("Family name").fill(family)
        page.get_by_label("Day").first.fill(day)
        page.get_by_label("Month").first.fill(month)
        page.get_by_label("Year").first.fill(year)
        page.get_by_label("I am considering an early help assessment (CAF)").check()
        page.get_by_role("button", name="Search").click()

    def close(self) -> None:
        """Close this browser context."""
        self.context.close()


Served = tuple[str, World, sa.Engine]


def test_sign_in_and_sign_out_pages(chromium: object, server: Served) -> None:
    # Each account's TOTP codes are good once, with one step of drift: every user signs in at most
    # twice in this module (here the admin, who signs in once more later).
    base, world, _ = server
    # Without bypass_csp: the sign-in page must work under its real Content-Security-Policy.
    context = chromium.new_context(base_url=base)  # type: ignore[attr-defined]
    page = context.new_page()
    blocked: list[str] = []
    page.on(
        "console", lambda msg: blocked.append(msg.text) if "Content Security Policy" in msg.text else None
    )
    page.goto("/")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.locator("link[href='/static/app.css']").count() == 1
    assert page.locator("script:not([src])").count() == 0
    assert (
        page.get_by_label("Code from your authenticator app").get_attribute("autocomplete") == "one-time-code"
    )
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".govuk-error-summary")).to_contain_text("Enter your username")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("not the password")
    page.get_by_label("Code from your authenticator app").fill("000000")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".govuk-error-summary")).to_contain_text("is not right")
    page.get_by_role("link", name="The username, password or code is not right", exact=False).click()
    expect(page.get_by_label("Username")).to_be_focused()
    assert blocked == [], blocked
    context.close()

    # The same pages scanned by axe (which needs its script injected, so here the CSP is bypassed).
    context = chromium.new_context(base_url=base, bypass_csp=True)  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto("/signin/start")
    check_page(page, "00-sign-in")
    page.get_by_role("button", name="Sign in").click()
    check_page(page, "00-sign-in-missing")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("not the password")
    page.get_by_label("Code from your authenticator app").fill("000000")
    page.get_by_role("button", name="Sign in").click()
    check_page(page, "00-sign-in-refused")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Code from your authenticator app").fill(world.code("ada"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Find a child")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have signed out")).to_be_visible()
    check_page(page, "00-signed-out")
    context.close()


def test_search_card_signal_conflict_and_hand_over(chromium: object, server: Served) -> None:
    base, world, _ = server
    pat = Person(chromium, base, world, "pat")
    pat.check("01-search-form")
    pat.search("Olivia", "Smith", "27", "3", "2017")
    expect(pat.page.get_by_role("link", name="Olivia Smith")).to_be_visible()
    assert "Olivia" not in pat.page.url and "2017" not in pat.page.url
    pat.check("02-search-results")
    pat.page.get_by_role("link", name="Olivia Smith").click()
    expect(pat.page.get_by_text("Hana Begum").first).to_be_visible()
    pat.check("03-card")
    pat.page.get_by_role("link", name="Signal that you are starting a CAF").click()
    pat.page.get_by_role("button", name="Signal that I am starting a CAF").click()
    expect(pat.page.get_by_text("Confirm that the child is not at risk").first).to_be_visible()
    pat.check("04-signal-error")
    pat.page.get_by_label("I do not think this child is at risk of significant harm", exact=False).check()
    pat.page.get_by_role("button", name="Signal that I am starting a CAF").click()
    expect(pat.page.get_by_text("You have signalled that a CAF is starting")).to_be_visible()
    pat.check("05-card-signalled")

    hana = Person(chromium, base, world, "hana")
    hana.search("Olivia", "Smith", "27", "3", "2017")
    expect(hana.page.get_by_text("Signalled: about to start").first).to_be_visible()
    hana.page.get_by_role("link", name="Olivia Smith").click()
    expect(hana.page.get_by_text("contact Pat Okafor before starting another assessment")).to_be_visible()
    hana.check("06-card-seen-by-second-practitioner")
    expect(hana.page.get_by_role("link", name="Signal that you are starting a CAF")).to_have_count(0)
    card_url = hana.page.url
    hana.page.goto(card_url + "/caf-signal")
    hana.page.get_by_label("I do not think this child is at risk", exact=False).check()
    hana.page.get_by_role("button", name="Signal that I am starting a CAF").click()
    expect(hana.page.get_by_text("A CAF is already open for this child").first).to_be_visible()
    expect(hana.page.get_by_text("pat@cowley.example.sch.uk").first).to_be_visible()
    hana.check("07-conflict")

    pat.page.get_by_role("link", name="Hand over Lead Professional").click()
    who = pat.page.get_by_label("Who takes over as Lead Professional?")
    who.select_option(label="Hana Begum, health visitor")
    pat.page.get_by_label("Why is the role handed over?").fill("Agreed with the family")
    pat.check("08-hand-over")
    pat.page.get_by_role("button", name="Hand over the role").click()
    expect(pat.page.get_by_text("Hana Begum (Demoshire Health) is asked to take on").first).to_be_visible()
    pat.check("09-card-after-hand-over")
    hana.page.goto("/requests")  # a request Hana accepts (tests/web/test_browser_requests.py: more)
    hana.page.get_by_role("button", name="Accept").click()
    expect(hana.page.get_by_text("You are now the Lead Professional")).to_be_visible()
    hana.page.goto(card_url)  # the new holder is not told to contact herself
    expect(hana.page.get_by_text("A CAF is open and you hold it")).to_be_visible()
    pat.close()
    hana.close()


def test_an_expired_grant_blocks_search(chromium: object, server: Served) -> None:
    base, world, engine = server
    cora = Person(chromium, base, world, "cora")
    cora.search("Amara", "Smith", "11", "11", "2019")
    expect(cora.page.get_by_role("link", name="Amara Smith")).to_be_visible()
    cora.page.get_by_label("Given name").fill("Olivia")  # the form is filled in, then the grant lapses
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE access_grant SET valid_until = :t WHERE subject = 'cora'"),
            {"t": (utcnow() - timedelta(minutes=1)).replace(tzinfo=None)},
        )
    cora.page.get_by_role("button", name="Search").click()
    expect(cora.page.get_by_text("Your access grant expired on")).to_be_visible()
    expect(cora.page.get_by_role("link", name="Olivia Smith")).to_have_count(0)
    cora.check("10-grant-expired")
    cora.page.get_by_role("button", name="Sign out").click()
    expect(cora.page.get_by_text("You have signed out")).to_be_visible()
    cora.check("11-signed-out")
    cora.close()


def test_shielded_view(chromium: object, server: Served) -> None:
    base, world, _ = server
    pat = Person(chromium, base, world, "pat")
    pat.search("Noah", "Jones", "2", "5", "2016")
    pat.page.get_by_role("link", name="Noah Jones").click()
    expect(pat.page.get_by_text("This record is shielded").first).to_be_visible()
    expect(pat.page.get_by_text("City Early Help Team").first).to_be_visible()
    expect(pat.page.get_by_text("Hidden Lane")).to_have_count(0)
    pat.check("12-shielded-card")
    dee = Person(chromium, base, world, "dee")
    dee.search("Noah", "Jones", "2", "5", "2016")
    dee.page.get_by_role("link", name="Noah Jones").click()
    expect(dee.page.get_by_text("9 Hidden Lane", exact=False)).to_be_visible()
    dee.check("13-shielded-card-designated")
    dee.page.get_by_role("link", name="Who has looked at this record").click()
    expect(dee.page.get_by_role("cell", name="pat").first).to_be_visible()
    dee.check("14-access-log")
    amara = world.children["amara"]
    dee.page.goto(f"/children/{amara}")
    dee.page.get_by_role("link", name="Shield this record").click()
    dee.page.get_by_role("button", name="Shield the record").click()
    expect(dee.page.locator(".govuk-error-summary")).to_contain_text("Enter why the record is shielded")
    dee.check("15-shield-errors")
    dee.page.get_by_label("Why is the record shielded?").fill("Family in a refuge")
    dee.page.get_by_label("I have agreed this with", exact=False).check()
    dee.check("16-shield")
    dee.page.get_by_role("button", name="Shield the record").click()
    expect(dee.page.get_by_text("The record is shielded.")).to_be_visible()
    dee.page.get_by_role("link", name="Lift the shield").click()
    dee.page.get_by_label("Why is the shield lifted?").fill("Family rehoused safely")
    dee.page.get_by_label("I have checked that it is now safe", exact=False).check()
    dee.check("17-shield-lift")
    dee.page.get_by_role("button", name="Lift the shield").click()
    expect(dee.page.get_by_text("The shield is lifted.")).to_be_visible()
    pat.close()
    dee.close()


def test_add_a_child(chromium: object, server: Served) -> None:
    base, world, _ = server
    pat = Person(chromium, base, world, "hana")  # a second sign-in for hana
    page = pat.page
    page.goto("/search")
    page.get_by_role("link", name="Add a child").click()
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".govuk-error-summary")).to_contain_text("Enter the child's given name")
    pat.check("18-add-child-errors")
    page.get_by_label("Given name").fill("Amara")
    page.get_by_label("Family name").fill("Smith")
    page.get_by_role("group", name="Has the child been born?").get_by_label("Yes").check()
    birth = page.get_by_role("group", name="Date of birth")
    birth.get_by_label("Day").fill("11")
    birth.get_by_label("Month").fill("11")
    birth.get_by_label("Year").fill("2019")
    page.get_by_label("Female").check()
    page.get_by_label("I am working with the child or family now").check()
    pat.check("19-add-child")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("This child may already be on the directory")).to_be_visible()
    expect(page.get_by_role("link", name="Amara Smith")).to_be_visible()
    pat.check("19a-add-child-duplicate")
    page.get_by_role("button", name="Change the details").click()
    page.get_by_label("Given name").fill("Zara")
    page.get_by_label("Family name").fill("Quinton-Hale")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Check the details before adding the child")).to_be_visible()
    expect(page.get_by_text("This child may already be on the directory")).to_have_count(0)
    pat.check("19b-add-child-check")
    page.get_by_role("button", name="Add the child").click()
    expect(page.get_by_text("The child is recorded")).to_be_visible()
    expect(page.get_by_role("heading", name="Zara Quinton-Hale")).to_be_visible()
    assert "Zara" not in page.url
    pat.close()


def test_admin_auditor_and_locality_pages(chromium: object, server: Served) -> None:
    base, world, _ = server
    anonymous = chromium.new_context(base_url=base, bypass_csp=True)  # type: ignore[attr-defined]
    page = anonymous.new_page()
    page.goto("/")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "00-start.png"), full_page=True)
    anonymous.close()

    ada = Person(chromium, base, world, "ada")
    for path, name in (
        ("/admin/grants", "20-grants"),
        ("/admin/grants?expiring=120", "21-grants-expiring"),
        ("/admin/grants/new", "22-grant-new"),
        ("/admin/clients", "24-clients"),
        ("/admin/clients/new", "25-client-new"),
    ):
        ada.page.goto(path)
        ada.check(name)
    ada.page.goto("/admin/grants")
    ada.page.get_by_role("link", name="pat", exact=True).click()
    ada.check("23-grant")
    ada.close()

    aud = Person(chromium, base, world, "aud")
    for path, name in (
        (f"/audit?child={world.children['olivia']}", "30-audit-search"),
        ("/audit/verify", "31-audit-verify"),
        ("/audit/alerts", "32-audit-alerts"),
        ("/accessibility", "33-accessibility"),
    ):
        aud.page.goto(path)
        aud.check(name)
    expect(aud.page.get_by_text("Accessibility statement").first).to_be_visible()
    aud.close()

    lena = Person(chromium, base, world, "lena")
    lena.page.goto("/localities")
    chart = lena.page.get_by_role("img", name="Children by level of need in City locality", exact=False)
    expect(chart).to_be_visible()
    lena.check("40-localities")
    with lena.page.expect_download() as download:
        lena.page.get_by_role("link", name="Download these figures (CSV)").click()
    assert download.value.suggested_filename.startswith("locality-overview-")
    lena.close()


def _new_people(engine: sa.Engine, world: World) -> dict[str, object]:
    """An admin and an adoption officer who have not signed in yet, and two children of their own."""
    from directory.db import unit_of_work
    from directory.models import Role
    from tests.fixtures.auth_builders import make_grant, make_user
    from tests.fixtures.builders import make_child

    with unit_of_work(engine) as s:
        for username, role in (("adam", Role.DIRECTORY_ADMIN), ("ann", Role.ADOPTION_OFFICER)):
            user = make_user(s, username)
            make_grant(s, username, role=role)
            world.totp[username] = user.totp_secret
        moving = make_child(s, names=[{"given": "Maya", "family": "Mover"}], date_of_birth="2015-06-01")
        adopted = make_child(s, names=[{"given": "Ada", "family": "Birthname"}], date_of_birth="2020-02-02")
    return {"moving": moving, "adopted": adopted}


def test_a_move_away_and_an_adoption(chromium: object, server: Served) -> None:
    base, world, engine = server
    kids = _new_people(engine, world)
    adam = Person(chromium, base, world, "adam")
    page = adam.page
    page.goto(f"/children/{kids['moving']}")
    page.get_by_label("Directory administration").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("link", name="Record a move out of the area").click()
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".govuk-error-summary")).to_contain_text("Enter the local authority")
    adam.check("50-move-away-errors")
    page.get_by_label("The local authority the child moved to").fill("Borsetshire County Council")
    page.get_by_label("Day").fill("1")
    page.get_by_label("Month").fill("9")
    page.get_by_label("Year").fill("2026")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Check your answers")).to_be_visible()
    adam.check("51-move-away-check")
    page.get_by_role("button", name="Record the move").click()
    expect(page.get_by_text("The move is recorded")).to_be_visible()
    adam.check("52-move-away-done")
    adam.close()

    ann = Person(chromium, base, world, "ann")
    page = ann.page
    page.goto(f"/children/{kids['adopted']}")
    page.get_by_label("Directory administration").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("link", name="Record an adoption").click()
    ann.check("53-adoption-form")
    page.get_by_label("Given name", exact=True).fill("Ada")
    page.get_by_label("Family name").fill("Newhome")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Check your answers")).to_be_visible()
    ann.check("54-adoption-check")
    page.get_by_role("button", name="Record the adoption and seal the birth record").click()
    expect(page.get_by_text("The adoption is recorded")).to_be_visible()
    ann.check("55-adoption-done")
    page.goto(f"/children/{kids['adopted']}")
    expect(page.get_by_text("Sealed: adoption")).to_be_visible()
    ann.check("56-sealed-card")
    page.get_by_role("link", name="The adoptive record").click()
    expect(page.get_by_role("heading", name="Ada Newhome")).to_be_visible()
    ann.close()
