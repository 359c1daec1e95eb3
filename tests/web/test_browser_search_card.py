"""Search and the card in Chromium (issue #20): Back after a card, results first with focus on them,
the reason chosen per look, the shielded banner, the printed card, reflow at 320 px and the consent a
CAF needs. axe-core must find no violation of ANY impact on each page; screenshots go to
test-artifacts/ (search-card-*.png).
"""

from __future__ import annotations

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from tests.web.test_browser import (  # noqa: F401  (the fixtures)
    ARTIFACTS,
    Person,
    Served,
    check_page,
    chromium,
    server,
)


def scan(page: Page, name: str) -> None:
    """axe-core finds no violation of any impact; a full-page screenshot is kept."""
    check_page(page, f"search-card-{name}", blur=True)


def reflows(page: Page, name: str) -> None:
    """At 320 CSS pixels wide the page does not scroll sideways (WCAG 1.4.10), and axe still passes."""
    size = page.viewport_size
    page.set_viewport_size({"width": 320, "height": 900})
    try:
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 320, f"{name} is {width} px wide at 320 px"
        scan(page, f"{name}-320")
    finally:
        if size:
            page.set_viewport_size(size)


def searches(engine: sa.Engine, subject: str) -> int:
    """How many searches are audited for this person."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM audit_event WHERE action = 'search' AND actor_subject = :s"),
                {"s": subject},
            ).scalar_one()
        )


def test_back_after_a_card_keeps_the_results_and_the_terms(chromium: object, server: Served) -> None:  # noqa: F811
    base, world, engine = server
    pat = Person(chromium, base, world, "pat")
    page = pat.page
    page.goto("/search")
    # The reason is offered per look, with help, and only the practice reasons.
    expect(page.get_by_text("Directory administration")).to_have_count(0)
    expect(page.locator("input[name=purpose]:checked")).to_have_count(0)
    expect(page.get_by_text("You or your service are working with the child")).to_be_visible()
    page.get_by_role("button", name="Search").click()  # nothing given: every problem at once
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_contain_text("Select why you are looking for this child")
    expect(summary).to_contain_text("Enter an NHS number")
    summary.get_by_role("link", name="Select why you are looking for this child").click()
    expect(page.locator("input[name=purpose]").first).to_be_focused()  # the link lands on the reason
    scan(page, "search-errors")
    reflows(page, "search-errors")
    before = searches(engine, "pat")
    pat.search("Olivia", "Smith", "27", "3", "2017")
    expect(page.get_by_role("heading", name="Search results")).to_be_visible()
    assert page.url.endswith("/search/results") and "Olivia" not in page.url and "2017" not in page.url
    expect(page.locator("h1#results")).to_be_focused()  # focus moved to the results heading
    tabs = 0
    while tabs < 10 and page.evaluate("document.activeElement.textContent.trim()") != "Olivia Smith":
        page.keyboard.press("Tab")
        tabs += 1
    assert tabs <= 2, f"{tabs} presses of Tab from the heading to the first result"
    assert searches(engine, "pat") == before + 1  # the POST searched nothing; the results page once
    # Results come before the form (a short one under "Change your search").
    first_result = page.get_by_role("link", name="Olivia Smith").bounding_box()
    change = page.locator("#change-search").bounding_box()
    assert first_result and change and first_result["y"] < change["y"]
    scan(page, "results")
    reflows(page, "results")

    page.get_by_role("link", name="Olivia Smith").click()
    expect(page.get_by_role("heading", name="Olivia Smith")).to_be_visible()
    page.go_back()  # no "Confirm Form Resubmission": the results page is a GET
    expect(page.get_by_role("heading", name="Search results")).to_be_visible()
    expect(page.get_by_role("link", name="Olivia Smith")).to_be_visible()
    assert page.url.endswith("/search/results")
    assert searches(engine, "pat") == before + 2  # shown again = searched again, and audited
    page.get_by_role("link", name="Change your search").click()
    expect(page.get_by_label("Given name")).to_have_value("Olivia")
    expect(page.get_by_label("Family name")).to_have_value("Smith")
    expect(page.locator("input[name=purpose]:checked")).to_have_count(0)  # asked afresh

    page.get_by_role("link", name="Olivia Smith").click()
    page.get_by_role("link", name="Back to your search results").click()
    expect(page.get_by_role("link", name="Olivia Smith")).to_be_visible()
    page.get_by_role("link", name="Find a child").first.click()  # the navigation: terms kept, reason not
    expect(page.get_by_label("Given name")).to_have_value("Olivia")
    expect(page.locator("input[name=purpose]:checked")).to_have_count(0)
    scan(page, "search-kept")
    reflows(page, "search-kept")
    page.get_by_role("button", name="Clear the form").click()
    expect(page.get_by_label("Given name")).to_have_value("")
    pat.close()


def test_the_card_prints_reflows_and_asks_for_consent(chromium: object, server: Served) -> None:  # noqa: F811
    base, world, _ = server
    hana = Person(chromium, base, world, "hana")
    page = hana.page
    hana.search("Olivia", "Smith", "27", "3", "2017")
    page.get_by_role("link", name="Olivia Smith").click()
    expect(page.get_by_role("heading", name="Olivia Smith")).to_be_visible()
    scan(page, "card")
    reflows(page, "card")

    # Print: a button (app.mjs calls window.print), and a print view with the handling marking,
    # who printed it and why, and no buttons, forms or links to actions.
    page.evaluate("window.print = () => { window.__printed = true }")
    page.get_by_role("button", name="Print this card").click()
    assert page.evaluate("window.__printed === true")
    page.emulate_media(media="print")
    markings = page.get_by_text("OFFICIAL-SENSITIVE", exact=True)
    expect(markings).to_have_count(2)
    expect(markings.first).to_be_visible()
    expect(markings.last).to_be_visible()
    footer = page.locator(".app-print-footer")
    expect(footer).to_be_visible()
    expect(footer).to_contain_text("(practitioner)")
    expect(footer).to_contain_text("Reason for looking: I am considering an early help assessment (CAF)")
    for selector in ("button", "form", "input", ".govuk-button", "a[href^='/']", "nav"):
        shown = page.locator(selector).evaluate_all(
            "els => els.filter(e => e.checkVisibility()).map(e => e.outerHTML.slice(0, 80))"
        )
        assert shown == [], f"printed: {selector} {shown}"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "search-card-print.png"), full_page=True)
    page.emulate_media(media="screen")

    # Consent: after a signal, "Start the CAF" is not offered until a consent is recorded.
    page.get_by_role("link", name="Signal that you are starting a CAF").click()
    page.get_by_label("I do not think this child is at risk", exact=False).check()
    page.get_by_role("button", name="Signal that I am starting a CAF").click()
    banner = page.locator(".govuk-notification-banner--success")
    expect(banner).to_contain_text("You have signalled that a CAF is starting")
    expect(page.get_by_role("link", name="Start the CAF")).to_have_count(0)
    expect(page.get_by_role("link", name="Record the consent to the CAF")).to_be_visible()
    scan(page, "card-signalled")
    card_url = page.url
    banner.get_by_role("link", name="Record the consent").click()
    expect(page.get_by_role("heading", name="Record a consent")).to_be_visible()
    page.get_by_label("A parent or carer with parental responsibility").check()
    page.get_by_label("Name of the person who gave consent").fill("Jane Smith")
    scan(page, "consent-for-caf")
    reflows(page, "consent-for-caf")
    page.goto(card_url + "/caf-start")  # no consent: no form to fail, a way to record it instead
    expect(page.get_by_role("button", name="Start the CAF")).to_have_count(0)
    scan(page, "caf-start-needs-consent")
    reflows(page, "caf-start-needs-consent")
    page.get_by_role("link", name="Record the consent to the CAF").click()
    page.get_by_label("A parent or carer with parental responsibility").check()
    page.get_by_label("Name of the person who gave consent").fill("Jane Smith")
    page.get_by_role("button", name="Record the consent").click()
    expect(page.get_by_text("The consent is recorded")).to_be_visible()
    page.get_by_role("link", name="Start the CAF").click()
    expect(page.get_by_label("Jane Smith", exact=False)).to_be_visible()
    hana.close()


def test_the_shielded_banner_tops_every_view_for_those_who_see_it(chromium: object, server: Served) -> None:  # noqa: F811
    base, world, _ = server
    dee = Person(chromium, base, world, "dee")
    page = dee.page
    noah = world.children["noah"]
    page.goto(f"/children/{noah}")  # straight to the record: the reason is asked, nothing ticked
    expect(page.get_by_role("heading", name="Why are you looking at this record?")).to_be_visible()
    expect(page.locator("input[name=purpose]:checked")).to_have_count(0)
    expect(page.get_by_text("You are checking how the directory has been used.")).to_be_visible()
    scan(page, "purpose-question")
    reflows(page, "purpose-question")
    page.get_by_label("I am working with the child or family now").check()
    page.get_by_role("button", name="Continue").click()
    banner = page.locator(".app-shield-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("This child's record is shielded")
    heading = page.get_by_role("heading", name="Noah Jones").bounding_box()
    top = banner.bounding_box()
    assert heading and top and top["y"] < heading["y"]  # at the top, above the child's name
    scan(page, "shielded-card-designated")
    reflows(page, "shielded-card-designated")
    for path, name in (
        (f"/children/{noah}/access-log", "shielded-access-log"),
        (f"/children/{noah}/history", "shielded-history"),
        (f"/children/{noah}/details", "shielded-details"),
        (f"/children/{noah}/involvement-new", "shielded-action"),
    ):
        page.goto(path)
        expect(page.locator(".app-shield-banner")).to_be_visible()
        scan(page, name)
        reflows(page, name)
    dee.close()

    pat = Person(chromium, base, world, "pat")  # a practitioner sees the shield notice, not the details
    pat.search("Noah", "Jones", "2", "5", "2016")
    pat.page.get_by_role("link", name="Noah Jones").click()
    expect(pat.page.get_by_text("This record is shielded").first).to_be_visible()
    expect(pat.page.locator(".app-shield-banner")).to_have_count(0)
    scan(pat.page, "shielded-card-practitioner")
    pat.close()
