"""The involvement form in Chromium (issue #20): recorded with its defaults in one click; every problem
in one round, in plain words; axe (any impact) and 320 px on each page."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.web.browser_checks import look
from tests.web.test_browser import Person, Served, chromium, server  # noqa: F401 (fixtures)


def _to_form(person: Person, child: object) -> None:
    page = person.page
    page.goto(f"/children/{child}")
    page.get_by_label("I am working with the child or family now").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("link", name="Record an involvement").click()
    expect(page.get_by_role("heading", name="Record an involvement")).to_be_visible()


def test_an_involvement_with_its_defaults_in_one_click(chromium: object, server: Served) -> None:  # noqa: F811
    base, world, _ = server
    pat = Person(chromium, base, world, "pat")
    _to_form(pat, world.children["amara"])
    page = pat.page
    expect(page.get_by_label("Cowley SEN support (your organisation)")).to_be_checked()
    expect(page.get_by_label(re.compile("You: Pat Okafor, SENCO, Cowley Primary School"))).to_be_checked()
    expect(page.get_by_label("Role with the child")).to_have_value("SENCO")
    look(page, "b-involvement-defaults")
    page.get_by_role("radio", name="Someone else").check()  # names carry role and organisation
    expect(page.get_by_label("If someone else, who?")).to_contain_text("Sam Carter, class teacher")
    page.get_by_label(re.compile("You: Pat Okafor")).check()
    page.get_by_role("button", name="Record the involvement").click()  # the one click
    expect(page.get_by_text("The involvement is recorded.")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Cowley SEN support")
    pat.close()


def test_every_problem_in_one_round_in_plain_words(chromium: object, server: Served) -> None:  # noqa: F811
    base, world, _ = server
    hana = Person(chromium, base, world, "hana")
    _to_form(hana, world.children["olivia"])
    page = hana.page
    page.get_by_role("radio", name="Another service").check()
    page.get_by_role("radio", name="Someone else").check()
    page.get_by_label("Role with the child").fill("")
    page.get_by_label("Day").fill("31")
    page.get_by_label("Month").fill("2")
    page.get_by_role("button", name="Record the involvement").click()
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_be_visible()
    for said in (
        "Choose the service",
        "Choose the practitioner who is working with the child",
        "Enter your role with the child",
        "The start date must be a real date",
    ):
        expect(summary).to_contain_text(said)
    assert not re.search(r"Input should|valid integer|Value error", page.content())
    look(page, "b-involvement-errors")
    summary.get_by_role("link", name="Enter your role with the child").click()
    expect(page.get_by_label("Role with the child")).to_be_focused()
    hana.close()
