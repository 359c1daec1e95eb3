"""Sessions in Chromium (issue #20): the GOV.UK time-out warning and "Stay signed in"; a form left to time
out is held and given back after signing in again, on the page asked for; suspended while signed in ->
told why. axe (any impact) and 320 px on each page. A server of its own with one-minute sessions."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.fixtures.auth_builders import PASSWORD
from tests.web.browser_checks import look
from tests.web.test_browser import Person, Served, chromium, serve  # noqa: F401 (the fixture)

IDLE, WARN = 60, 50  # the warning opens 10 s after a page loads; the session ends 60 s after


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The app with short page sessions, served by uvicorn on a seeded SQLite file."""
    yield from serve(tmp_path_factory, web_session_idle_seconds=IDLE, web_timeout_warning_seconds=WARN)


def test_the_time_out_warning_and_stay_signed_in(chromium: object, short: Served) -> None:  # noqa: F811
    base, world, _ = short
    pat = Person(chromium, base, world, "pat")
    page = pat.page
    expect(page.get_by_role("heading", name="Find a child")).to_be_visible()
    dialog = page.get_by_role("dialog", name="You will be signed out soon")
    expect(dialog).to_be_visible(timeout=(IDLE - WARN + 5) * 1000)
    expect(dialog.get_by_role("button", name="Stay signed in")).to_be_focused()
    look(page, "b-timeout-warning")
    dialog.get_by_role("button", name="Stay signed in").click()
    expect(dialog).to_be_hidden()
    left = page.evaluate("fetch('/session/left').then(r => r.json()).then(j => j.seconds)")
    assert left > WARN, left  # renewed: the whole idle time again
    pat.close()


def test_a_timed_out_form_comes_back_after_signing_in(chromium: object, short: Served) -> None:  # noqa: F811
    base, world, _ = short
    hana = Person(chromium, base, world, "hana")
    page = hana.page
    olivia = world.children["olivia"]
    page.goto(f"/children/{olivia}/involvement-new")  # asks the purpose first, then goes on to the form
    page.get_by_label("I am working with the child or family now").check()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Record an involvement")).to_be_visible()
    page.get_by_label("Role with the child").fill("Family support 9")  # ... and then a meeting
    expect(page).to_have_url(f"{base}/signed-out", timeout=(IDLE + 20) * 1000)
    assert "Family" not in page.url and "?" not in page.url
    expect(page.locator("#signed-out-reason")).to_contain_text(
        "You were signed out because you had not used the service for 1 minute"
    )
    expect(page.get_by_text("What you had entered on the form has been kept")).to_be_visible()
    look(page, "b-signed-out-timeout")
    page.get_by_role("button", name="Sign in again").click()
    page.get_by_label("Username").fill("hana")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Code from your authenticator app").fill(world.code("hana"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Why are you looking at this record?")).to_be_visible()
    look(page, "b-purpose-then-form")
    page.get_by_label("I am working with the child or family now").check()
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(f"{base}/children/{olivia}/involvement-new")
    expect(page.get_by_label("Role with the child")).to_have_value("Family support 9")
    expect(page.get_by_text("What you had entered is filled in again")).to_be_visible()
    look(page, "b-form-kept")
    hana.close()


def test_suspended_while_signed_in(chromium: object, short: Served) -> None:  # noqa: F811
    base, world, engine = short
    dee = Person(chromium, base, world, "dee")
    page = dee.page
    expect(page.get_by_role("heading", name="Find a child")).to_be_visible()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE access_grant SET status = 'suspended', status_reason = 'pending an investigation' "
                "WHERE subject = 'dee'"
            )
        )
    page.goto("/search")
    expect(page.get_by_role("heading", name="You were signed out")).to_be_visible()
    expect(page.locator("#signed-out-reason")).to_contain_text(
        re.compile("suspended since .*pending an investigation")
    )
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    look(page, "b-signed-out-suspended")
    dee.close()
