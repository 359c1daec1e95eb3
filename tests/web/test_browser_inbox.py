"""The inbox in Chromium (Playwright, axe-core on every page): a practitioner sees the notice the
notifier wrote from the search page's banner, marks it read, chooses the inbox only, and answers a
"still involved?" notice in one click."""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect
from sqlmodel import Session, select

from childindex import people_notify
from directory import service
from directory.db import unit_of_work
from directory.models import CafSignal, Involvement, Role, utcnow
from tests.fixtures.builders import actor
from tests.notices.scene import notices_of
from tests.web.test_browser import Person, Served, chromium, server  # noqa: F401  (the fixtures)


def test_the_inbox_journey(chromium: object, server: Served) -> None:  # noqa: F811
    base, world, engine = server
    people_notify.start_cursor(engine)
    pat = actor(Role.PRACTITIONER, subject="pat", practitioner_id=world.practitioners["pat"])
    with unit_of_work(engine) as s:
        service.signal_caf(
            s,
            actor=pat,
            child_id=world.children["amara"],
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=utcnow(),
        )
    people_notify.fan_out(engine, email=False)
    hana = Person(chromium, base, world, "hana")
    page = hana.page
    page.goto("/search")
    page.get_by_role("link", name="read your 1 new notice").click()
    expect(page.get_by_role("heading", name="Your inbox")).to_be_visible()
    expect(page.locator(".app-notice")).to_contain_text("signalled a CAF for a child you work with")
    hana.check("inbox")
    page.get_by_role("button", name="Mark as read").first.click()
    expect(page.locator(".govuk-notification-banner")).to_contain_text("Marked as read")

    page.get_by_role("link", name="Change how you are told").click()
    hana.check("inbox-preference")
    page.get_by_label("In my inbox only").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("You see notices here only")).to_be_visible()

    with unit_of_work(engine) as s:
        mine = s.exec(
            select(Involvement).where(Involvement.practitioner_id == world.practitioners["hana"])
        ).all()
        for row in mine:
            row.last_confirmed_at = utcnow() - timedelta(days=400)
            s.add(row)
    people_notify.remind(engine, still_involved_days=180)
    people_notify.fan_out(engine, email=False)
    ask = notices_of(engine, world.practitioners["hana"], "involvement.still-involved")[0]
    page.goto(ask.link or "")
    hana.check("inbox-still-involved")
    page.get_by_role("button", name="Yes, I am still involved").click()
    expect(page.locator(".govuk-notification-banner")).to_contain_text("your involvement is confirmed")
    with Session(engine) as s:
        hanas = s.exec(
            select(Involvement).where(Involvement.practitioner_id == world.practitioners["hana"])
        ).all()
        confirmed = [r for r in hanas if r.last_confirmed_at > utcnow() - timedelta(minutes=5)]
    assert len(hanas) == 2 and len(confirmed) == 1  # the one asked about, not the other
    hana.close()
