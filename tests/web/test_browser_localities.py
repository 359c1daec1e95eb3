"""The locality overview in Chromium: choose a locality, read its trend chart and table, at 320 px."""

from __future__ import annotations

import uuid
from datetime import timedelta

from playwright.sync_api import expect
from sqlmodel import Session

from childindex.web.locality_trend import last_months
from directory.models import Assessment, utcnow
from tests.web.test_browser import Person, Served, check_page, chromium, server  # noqa: F401 (fixtures)


def _closed_cafs(served: Served, count: int) -> None:
    """`count` CAFs of Olivia (City locality) started two months ago and closed last month."""
    _, world, engine = served
    months = last_months(utcnow())
    started, closed = months[-3].start + timedelta(days=1), months[-2].start + timedelta(days=1)
    with Session(engine) as s:
        for _ in range(count):
            s.add(
                Assessment(
                    id=uuid.uuid4(),
                    child_id=world.children["olivia"],
                    status="closed",
                    initiator_id=world.practitioners["pat"],
                    lead_practitioner_id=world.practitioners["pat"],
                    signalled_at=started,
                    started_at=started,
                    closed_at=closed,
                )
            )
        s.commit()


def test_choose_a_locality_and_read_its_trend(chromium: object, server: Served) -> None:  # noqa: F811
    base, world, _ = server
    _closed_cafs(server, 6)
    months = last_months(utcnow())
    lena = Person(chromium, base, world, "lena")
    page = lena.page
    page.goto("/localities")
    expect(page.get_by_role("heading", name="City locality", exact=True)).to_be_visible()
    expect(page.get_by_text("Figures as at")).to_be_visible()
    trend = page.get_by_role("img", name="CAFs by month in City locality", exact=False)
    expect(trend).to_be_visible()
    described = page.locator("#trend-title").text_content() or ""
    assert f"{months[-3].label}: signalled 6, started 6, closed 0" in described
    table = page.get_by_role("table", name="CAFs by month in City locality", exact=False)
    expect(table.get_by_role("row", name=months[-2].label, exact=False)).to_contain_text("6")
    assert page.locator("svg rect.app-chart__bar--started").count() == 2  # the legend and one bar
    lena.check("41-localities-city")

    page.get_by_label("Show the figures for").select_option(label="North locality")
    page.get_by_role("button", name="Show these figures").click()
    expect(page.get_by_role("heading", name="North locality", exact=True)).to_be_visible()
    assert "locality=NORTH" in page.url
    expect(page.get_by_role("img", name="CAFs by month in North locality", exact=False)).to_be_visible()
    page.set_viewport_size({"width": 320, "height": 900})
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    lena.check("42-localities-north-320")

    page.goto("/localities?locality=ELSEWHERE")
    expect(page.locator(".govuk-error-summary")).to_contain_text("Choose a locality from the list")
    page.get_by_role("link", name="Choose a locality from the list").click()
    expect(page.get_by_label("Show the figures for")).to_be_focused()
    lena.check("43-localities-unknown")
    lena.close()
