"""A TAC's plan in Chromium (issue #18 item 6): the holder adds an action (first with every mistake
at once), then records a review that reconvenes; axe-core scans each page."""

from __future__ import annotations

from datetime import date, timedelta

from playwright.sync_api import expect
from sqlmodel import Session

from directory import service
from directory.models import CafSignal, CafStart, ConsentCreate, TacConvene, TacMemberIn, TacUpdate, utcnow
from tests.fixtures.builders import actor
from tests.web.test_browser import Person, Served, check_page, chromium, server  # noqa: F401 (fixtures)


def _convened_tac(served: Served) -> None:
    """Pat holds Olivia's CAF in progress, with a convened TAC of Pat, Hana and Dee."""
    _, world, engine = served
    pat = world.practitioners["pat"]
    as_pat = actor(subject="pat", practitioner_id=pat)
    olivia = world.children["olivia"]
    now = utcnow()
    with Session(engine, expire_on_commit=False) as s:
        caf = service.signal_caf(
            s,
            actor=as_pat,
            child_id=olivia,
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=now,
        )
        consent = service.record_consent(
            s,
            actor=as_pat,
            child_id=olivia,
            data=ConsentCreate(scope="caf", given_by_kind="parent_carer", given_by_name="Jane Smith"),
        )
        service.start_caf(s, actor=as_pat, caf_id=caf.id, data=CafStart(consent_id=consent.id), now=now)
        members = [
            TacMemberIn(practitioner_id=world.practitioners[k], role="member") for k in ("pat", "hana", "dee")
        ]
        tac = service.update_tac(s, actor=as_pat, caf_id=caf.id, data=TacUpdate(add_members=members), now=now)
        review = TacConvene(next_review_date=date.today() + timedelta(days=28))
        service.convene_tac(s, actor=as_pat, tac_id=tac.id, data=review, now=now)
        s.commit()


def _fill_date(page: object, prefix: str, day: date) -> None:
    page.locator(f"#{prefix}-day").fill(str(day.day))  # type: ignore[attr-defined]
    page.locator(f"#{prefix}-month").fill(str(day.month))  # type: ignore[attr-defined]
    page.locator(f"#{prefix}-year").fill(str(day.year))  # type: ignore[attr-defined]


def test_add_an_action_and_record_a_review_that_reconvenes(chromium: object, server: Served) -> None:  # noqa: F811
    base, world, _ = server
    _convened_tac(server)
    pat = Person(chromium, base, world, "pat")
    pat.search("Olivia", "Smith", "27", "3", "2017")
    pat.page.get_by_role("link", name="Olivia Smith").click()
    expect(pat.page.get_by_text("No actions recorded yet")).to_be_visible()
    pat.check("plan-01-card")

    pat.page.get_by_role("link", name="Add an action").click()
    expect(pat.page.get_by_text("No case notes, names or details")).to_be_visible()
    pat.check("plan-02-action-form")
    pat.page.get_by_label("What is to be done?").fill("x" * 81)
    pat.page.get_by_role("button", name="Add the action").click()
    summary = pat.page.locator(".govuk-error-summary")
    for message in (
        "80 characters or fewer",
        "Choose the area of need",
        "Choose who does it",
        "Enter the date",
    ):
        expect(summary.get_by_text(message)).to_be_visible()
    pat.check("plan-03-action-errors")
    pat.page.get_by_label("What is to be done?").fill("Book a hearing test")
    pat.page.get_by_label("Which area of need does it serve?").select_option(label="General health")
    pat.page.get_by_label("Who does it?").select_option(label="Hana Begum, health visitor")
    _fill_date(pat.page, "due", date.today() + timedelta(days=14))
    pat.page.get_by_role("button", name="Add the action").click()
    expect(pat.page.get_by_text("The action is added to the plan")).to_be_visible()
    plan = pat.page.locator("#tac-plan")
    expect(plan.get_by_text("Book a hearing test")).to_be_visible()
    expect(plan.get_by_text("Hana Begum")).to_be_visible()
    pat.check("plan-04-card-with-action")

    pat.page.get_by_role("link", name="Record a review").click()
    pat.check("plan-05-review-form")
    _fill_date(pat.page, "held", date.today())
    pat.page.get_by_label("Reconvene and revise the plan").check()
    later = date.today() + timedelta(days=56)
    _fill_date(pat.page, "next", later)
    pat.page.locator("#family").get_by_label("Yes").check()
    pat.page.get_by_role("button", name="Record the review").click()
    expect(pat.page.get_by_text("The review is recorded. The next review is on")).to_be_visible()
    expect(pat.page.get_by_text(f"Next review: {later.day} {later:%B %Y}")).to_be_visible()
    expect(pat.page.locator("#tac-last-review")).to_contain_text("the family has a copy of the plan")
    check_page(pat.page, "plan-06-card-after-review")
    pat.close()
