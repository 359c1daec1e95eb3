"""A practitioner's own lists in a real browser: from the navigation to "Your children and CAFs", on to
a child's record; axe finds nothing of any impact, and the page reflows at 320 px."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.web.test_browser import Person, Served, chromium, server  # noqa: F401 (fixtures)
from tests.web.test_worklist_pages import started_caf


def test_a_practitioner_opens_their_children_and_cafs(chromium: object, server: Served) -> None:  # noqa: F811
    base, world, engine = server
    started_caf(engine, world, child="olivia", by="pat")
    pat = Person(chromium, base, world, "pat")
    page = pat.page
    page.get_by_role("link", name="Your children and CAFs").click()
    expect(page.get_by_role("heading", name="Your children and CAFs")).to_be_visible()
    children = page.locator("h2#children ~ .govuk-summary-card").first
    expect(children).to_contain_text("Olivia Smith")
    expect(children).to_contain_text("Cowley SEN support")
    expect(page.locator("h2#cafs ~ .govuk-summary-card").first).to_contain_text("Lead Professional")
    pat.check("70-mine")
    page.set_viewport_size({"width": 320, "height": 800})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 320
    page.locator("h2#children ~ .govuk-summary-card").first.get_by_role("link", name="Olivia Smith").click()
    expect(page.get_by_role("heading", name="Why are you looking at this record?")).to_be_visible()
    pat.close()
