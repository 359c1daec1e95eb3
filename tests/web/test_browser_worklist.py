"""The locality delivery team's worklist in a real browser: the team signs in, lands on the worklist,
opens a locality, follows a child to the record, and every page passes axe."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.web.test_browser import Person, Served, chromium, server  # noqa: F401 (fixtures)
from tests.web.test_worklist_pages import started_caf


def test_the_team_walks_its_worklist(chromium: object, server: Served) -> None:  # noqa: F811
    base, world, engine = server
    started_caf(engine, world, child="olivia", by="pat")
    lena = Person(chromium, base, world, "lena")
    page = lena.page
    expect(page.get_by_role("heading", name="Worklists")).to_be_visible()  # two localities: choose
    lena.check("60-worklists")
    page.get_by_role("link", name="City locality").click()
    expect(page.get_by_role("heading", name="Worklist", exact=True)).to_be_visible()
    section = page.get_by_role("table", name="Open CAFs without an agreed Lead Professional")
    expect(section.get_by_role("link", name="Olivia Smith")).to_be_visible()
    expect(section).to_contain_text("Pat Okafor")
    lena.check("61-worklist-city")
    section.get_by_role("link", name="Olivia Smith").click()
    expect(page.get_by_role("heading", name="Why are you looking at this record?")).to_be_visible()
    lena.close()
