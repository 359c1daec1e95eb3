"""The early intervention panel in Debian's Chromium (issue #18 part 4): Pat sends a completed
multi-agency CAF to panel from the card, the locality team (Lena) finds it in the panel queue, records
the decision (an error round first) and sees the suggested members invited; Hana accepts her
invitation; every page scanned by axe-core.

Run with: CI=true .venv/bin/python -m pytest -q -p no:cacheprovider tests/web/test_browser_panel.py
"""

from __future__ import annotations

from playwright.sync_api import expect
from sqlmodel import Session

from directory import service
from directory.models import CafComplete, CafSignal, CafStart, ConsentCreate, Role, utcnow
from tests.fixtures.builders import actor
from tests.web.test_browser import Person, Served, chromium, server  # noqa: F401 (the fixtures)


def _completed_caf(served: Served) -> None:
    """Pat's CAF for Olivia, completed with a multi-agency outcome (through the domain)."""
    _, world, engine = served
    pat = actor(Role.PRACTITIONER, subject="pat", practitioner_id=world.practitioners["pat"])
    olivia = world.children["olivia"]
    now = utcnow()
    with Session(engine, expire_on_commit=False) as s:
        caf = service.signal_caf(
            s,
            actor=pat,
            child_id=olivia,
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=30,
            now=now,
        )
        consent = service.record_consent(
            s,
            actor=pat,
            child_id=olivia,
            data=ConsentCreate(scope="caf", given_by_kind="parent_carer", given_by_name="Jane Smith"),
        )
        service.start_caf(s, actor=pat, caf_id=caf.id, data=CafStart(consent_id=consent.id), now=now)
        service.complete_caf(
            s, actor=pat, caf_id=caf.id, data=CafComplete(outcome="multi_agency_response"), now=now
        )
        s.commit()


def test_a_caf_sent_to_panel_and_the_decision_recorded(chromium: object, server: Served) -> None:  # noqa: F811
    base, world, _ = server
    _completed_caf(server)
    pat = Person(chromium, base, world, "pat")
    pat.search("Olivia", "Smith", "27", "3", "2017")
    pat.page.get_by_role("link", name="Olivia Smith").click()
    pat.page.get_by_role("link", name="Send to the early intervention panel").click()
    pat.check("panel-01-send")
    pat.page.get_by_role("button", name="Send to the panel").click()
    expect(pat.page.get_by_text("The CAF is sent to the locality's early intervention panel")).to_be_visible()
    pat.check("panel-02-card-sent")

    lena = Person(chromium, base, world, "lena")
    lena.search("Olivia", "Smith", "27", "3", "2017")  # (a purpose for the reads to come)
    lena.page.get_by_role("link", name="Panel queue").first.click()
    expect(lena.page.get_by_role("link", name="Olivia Smith", exact=True)).to_be_visible()
    lena.check("panel-03-queue")
    lena.page.get_by_role("link", name="Record the decision for Olivia Smith").click()
    lena.page.get_by_role("button", name="Record the decision").click()
    expect(lena.page.get_by_text("Say whether a risk of harm was identified").first).to_be_visible()
    expect(lena.page.get_by_text("Choose the level of need the panel benchmarks").first).to_be_visible()
    lena.check("panel-04-decision-errors")
    page = lena.page
    page.get_by_role("group", name="Did the panel identify a risk of harm?").get_by_label("No").check()
    page.get_by_role("group", name="Was level of need 3 or 4 screened?").get_by_label("Yes").check()
    page.get_by_role("group", name="Is a Team Around the Child needed?").get_by_label("Yes").check()
    page.get_by_label("Level 3").check()
    page.get_by_label("Supervision").check()
    page.get_by_label("Member 1", exact=True).select_option(label="Hana Begum, health visitor")
    page.get_by_label("Role of member 1").fill("health visitor")
    page.get_by_label("Member 2", exact=True).select_option(label="Dee Walsh, youth worker")
    page.get_by_label("Role of member 2").fill("youth worker")
    lena.check("panel-05-decision-form")
    page.get_by_role("button", name="Record the decision").click()
    expect(page.get_by_text("The panel's decision is recorded")).to_be_visible()
    suggestions = page.locator("#suggestions")
    expect(suggestions.get_by_text("Hana Begum")).to_be_visible()
    expect(suggestions.get_by_text("Dee Walsh")).to_be_visible()
    expect(suggestions.get_by_text("Invited").first).to_be_visible()  # the decision became invitations
    lena.check("panel-06-decision")
    page.goto("/panel")
    expect(page.get_by_text("No CAF is waiting for the panel")).to_be_visible()
    # Hana finds the invitation among her requests and accepts it: she joins the Team Around the Child
    hana = Person(chromium, base, world, "hana")
    hana.page.goto("/requests")
    cards = hana.page.locator(".app-request")
    invitation = cards.filter(has_text="The early intervention panel suggested you")
    expect(invitation).to_be_visible()
    hana.check("panel-07-invitation")
    invitation.get_by_role("button", name="Accept").click()
    expect(hana.page.get_by_text("Nothing is waiting for your answer.")).to_be_visible()
    hana.check("panel-08-invitation-accepted")
    pat.close()
    lena.close()
    hana.close()
