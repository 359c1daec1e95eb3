"""Admin and audit pages in Chromium (issue #20): the new user journey end to end (the new person
enrols with their link and signs in), the error pages' navigation; axe with no violation of any
impact, and no sideways scroll at 320 px, on every page."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pyotp
from playwright.sync_api import expect

from tests.fixtures.auth_builders import PASSWORD
from tests.web.test_browser import (
    Person,
    Served,
    check_page,
    chromium,
    server,
)

__all__ = ["chromium", "server"]  # the fixtures, shared with tests/web/test_browser.py


def scan(page: object, name: str) -> None:
    """axe-core finds no violation of any impact; the page does not scroll sideways at 320 px; a
    screenshot is kept in test-artifacts/."""
    check_page(page, name, narrow=True)


def _fill_date(page: object, prefix: str, day: date) -> None:
    for part, value in (("day", day.day), ("month", day.month), ("year", day.year)):
        page.locator(f"#{prefix}-{part}").fill(str(value))  # type: ignore[attr-defined]


def test_a_new_user_journey_ends_with_the_new_person_signed_in(chromium: object, server: Served) -> None:
    base, world, _ = server
    today = date.today()
    ada = Person(chromium, base, world, "ada")
    page = ada.page
    page.goto("/admin/grants")
    scan(page, "49-grants")
    page.get_by_role("link", name="Add a new user").click()
    expect(page.get_by_role("heading", name="Add a new user")).to_be_visible()
    scan(page, "50-user-new")

    page.get_by_role("button", name="Continue").click()  # nothing filled in: every problem at once
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_be_visible()
    for message in ("Enter their full name", "Choose what they will do", "Enter the training date"):
        expect(summary.get_by_text(message)).to_be_visible()
    scan(page, "51-user-new-errors")

    page.get_by_label("Full name").fill("Sam Carter")
    page.get_by_label("Username").fill("sam.carter")
    page.get_by_label("Link them to a practitioner record that is already in the directory").check()
    page.get_by_label("Their practitioner record").select_option(
        label="Sam Carter, class teacher - Cowley Primary School"
    )
    page.get_by_label("Practitioner", exact=True).check()
    _fill_date(page, "training", today + timedelta(days=2))  # in the future: refused
    _fill_date(page, "vetting", date(today.year - 6, 5, 1))  # older than the validity: refused
    _fill_date(page, "until", today + timedelta(days=200))
    page.get_by_label("Why do they need access?").fill("New class teacher")
    page.get_by_role("button", name="Continue").click()
    expect(summary.get_by_text("is in the future")).to_be_visible()
    expect(summary.get_by_text("older than 1095 days")).to_be_visible()
    _fill_date(page, "training", today - timedelta(days=5))
    _fill_date(page, "vetting", today - timedelta(days=100))
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("heading", name="Check your answers before adding this user")).to_be_visible()
    expect(page.get_by_text("Sam Carter, class teacher - Cowley Primary School")).to_be_visible()
    scan(page, "52-user-check")
    page.get_by_role("button", name="Add the user and give access").click()
    expect(page.get_by_role("heading", name="Sam Carter has been added")).to_be_visible()
    scan(page, "53-user-created")
    link = page.locator("#enrol-link").get_attribute("href")
    assert link and link.startswith(f"{base}/enrol/")
    page.goto("/admin/grants/new")  # a grant for a username with no account: refused, with the way on
    page.get_by_label("Username or system client id").fill("nobody.here")
    page.get_by_label("Role", exact=True).select_option("practitioner")
    _fill_date(page, "until", today + timedelta(days=30))
    page.get_by_label("Why is access granted?").fill("test")
    page.get_by_role("button", name="Grant access").click()
    expect(page.locator(".govuk-error-summary")).to_contain_text("There is no account named nobody.here")
    expect(page.get_by_role("link", name="Add a new user")).to_be_visible()
    scan(page, "53a-grant-unknown-user")
    ada.close()

    newcomer = chromium.new_context(base_url=base, bypass_csp=True)  # type: ignore[attr-defined]
    enrol = newcomer.new_page()
    enrol.goto(link)
    expect(enrol.get_by_role("heading", name="Set up your sign-in")).to_be_visible()
    scan(enrol, "54-enrol")
    secret = re.sub(r"\s", "", enrol.locator("#totp-key").inner_text())
    enrol.get_by_label("Password", exact=True).fill(PASSWORD)
    enrol.get_by_label("Type the password again").fill(PASSWORD)
    enrol.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(secret).now())
    enrol.get_by_role("button", name="Finish setting up").click()
    expect(enrol.get_by_role("heading", name="Your account is ready")).to_be_visible()
    scan(enrol, "55-enrolled")
    newcomer.close()

    world.totp["sam.carter"] = secret
    world._used["sam.carter"] = 1  # the enrolment used the current code
    sam = Person(chromium, base, world, "sam.carter")
    expect(sam.page.get_by_role("link", name="Find a child")).to_be_visible()
    assert sam.page.url.endswith("/search")
    sam.close()


def test_a_trawl_through_the_pages_shows_on_the_alerts_page(chromium: object, server: Served) -> None:
    from directory.db import unit_of_work
    from tests.fixtures.builders import make_child

    base, world, engine = server
    with unit_of_work(engine) as s:
        children = [
            make_child(s, names=[{"given": f"Kid{i}", "family": "Browse"}], date_of_birth="2014-02-03")
            for i in range(16)
        ]
    hana = Person(chromium, base, world, "hana")
    hana.search("Kid1", "Browse", "3", "2", "2014")
    for child in children:
        hana.page.goto(f"/children/{child}")
        question = hana.page.get_by_role("button", name="Continue")
        if question.count():
            hana.page.locator('input[name="purpose"]').first.check()
            question.click()
        expect(hana.page.get_by_role("heading", level=1)).to_contain_text(re.compile("Kid|Browse"))
    hana.close()

    aud = Person(chromium, base, world, "aud")
    aud.page.goto("/audit/alerts")
    expect(aud.page.get_by_role("heading", name="Possible trawling: Hana")).to_be_visible()
    expect(
        aud.page.get_by_text("Opened the records of 15 different children within 5 minutes.")
    ).to_be_visible()
    expect(aud.page.locator("#alert-triggers")).to_contain_text(
        "15 or more different children within 5 minutes"
    )
    scan(aud.page, "56-audit-alerts")
    aud.close()


def test_audit_search_by_name_and_by_nhs_number(chromium: object, server: Served) -> None:
    import sqlalchemy as sa

    base, world, engine = server
    olivia = world.children["olivia"]
    with engine.connect() as conn:
        nhs = conn.execute(
            sa.text("SELECT value FROM child_identifier WHERE child_id = :c AND system = 'nhs'"),
            {"c": olivia.hex if engine.dialect.name == "sqlite" else olivia},
        ).scalar_one()
    aud = Person(chromium, base, world, "aud")
    page = aud.page
    page.goto("/audit")
    scan(page, "57-audit-search")
    page.get_by_role("button", name="Search the log").click()  # nothing given: said plainly
    expect(page.locator(".govuk-error-summary")).to_contain_text("Enter the child's details")
    scan(page, "58-audit-search-errors")

    page.get_by_label("Given name").fill("Olivia")
    page.get_by_label("Family name").fill("Smith")
    page.locator("#dob-day").fill("27")
    page.locator("#dob-month").fill("3")
    page.locator("#dob-year").fill("2017")
    page.get_by_role("button", name="Search the log").click()
    expect(
        page.get_by_role("heading", name=re.compile("What happened to Olivia Smith's record"))
    ).to_be_visible()
    expect(page.get_by_text("Recorded an involvement").first).to_be_visible()
    assert str(olivia) not in page.content() and page.url.removeprefix(base) == "/audit"
    scan(page, "59-audit-by-name")

    page.goto("/audit")
    page.get_by_label("Or their NHS number").fill(f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}")
    page.get_by_role("button", name="Search the log").click()
    expect(
        page.get_by_role("heading", name=re.compile("What happened to Olivia Smith's record"))
    ).to_be_visible()
    assert nhs not in page.url
    scan(page, "60-audit-by-nhs-number")
    aud.close()
