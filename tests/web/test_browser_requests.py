"""Requests in Chromium (issue #18): a Lead Professional hand-over declined, then another accepted;
an ask to join the Team Around the Child accepted. Each page is scanned with axe-core."""

from __future__ import annotations

import uuid

from playwright.sync_api import expect
from sqlalchemy.engine import Engine
from sqlmodel import Session

from directory import service
from directory.db import unit_of_work
from directory.models import CafSignal, CafStart, ConsentCreate, utcnow
from tests.fixtures.builders import actor
from tests.web.test_browser import Person, Served, check_page, chromium, server  # noqa: F401
from tests.web.world import World

__all__ = ["check_page"]


def _open_caf(engine: Engine, world: World, child: str, holder: str) -> uuid.UUID:
    """A CAF in progress for the child, held by `holder` (seeded through the domain)."""
    who = actor(subject=holder, practitioner_id=world.practitioners[holder])
    with unit_of_work(engine) as s:
        caf = service.signal_caf(
            s,
            actor=who,
            child_id=world.children[child],
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=utcnow(),
        )
        consent = service.record_consent(
            s,
            actor=who,
            child_id=world.children[child],
            data=ConsentCreate(scope="caf", given_by_kind="parent_carer", given_by_name="A parent"),
        )
        service.start_caf(s, actor=who, caf_id=caf.id, data=CafStart(consent_id=consent.id), now=utcnow())
        return caf.id


def _lead(engine: Engine, child: uuid.UUID) -> uuid.UUID | None:
    with Session(engine) as s:
        lead = service.repo.current_lead(s, child)
        return lead.practitioner_id if lead else None


def _ask_hand_over(pat: Person, to: str, why: str) -> None:
    pat.page.get_by_role("link", name="Hand over Lead Professional").click()
    pat.page.get_by_label("Who takes over as Lead Professional?").select_option(label=to)
    pat.page.get_by_label("Why is the role handed over?").fill(why)
    pat.page.get_by_role("button", name="Hand over the role").click()


def test_a_hand_over_declined_then_another_accepted(chromium: object, server: Served) -> None:  # noqa: F811
    base, world, engine = server
    olivia = world.children["olivia"]
    _open_caf(engine, world, "olivia", "pat")
    pat = Person(chromium, base, world, "pat")
    pat.search("Olivia", "Smith", "27", "3", "2017")
    pat.page.get_by_role("link", name="Olivia Smith").click()
    card_url = pat.page.url
    _ask_hand_over(pat, "Hana Begum, health visitor", "Hana sees the family weekly")
    expect(pat.page.get_by_text("Hana Begum (Demoshire Health) is asked to take on").first).to_be_visible()
    pat.page.goto(card_url)
    expect(pat.page.get_by_text("is asked to take on the Lead Professional role")).to_be_visible()
    pat.check("requests-01-card-hand-over-asked")
    assert _lead(engine, olivia) == world.practitioners["pat"]  # Pat stays until it is accepted

    hana = Person(chromium, base, world, "hana")
    hana.page.get_by_role("link", name="Your requests").click()
    expect(hana.page.get_by_role("heading", name="Take on the Lead Professional role")).to_be_visible()
    expect(hana.page.get_by_text("Hana sees the family weekly")).to_be_visible()
    hana.check("requests-02-requests-to-answer")
    hana.page.get_by_role("button", name="Decline").click()
    expect(hana.page.get_by_text("You declined the request")).to_be_visible()
    expect(hana.page.get_by_text("Nothing is waiting for your answer")).to_be_visible()
    hana.check("requests-03-declined")
    assert _lead(engine, olivia) == world.practitioners["pat"]
    pat.page.goto(card_url)
    expect(pat.page.get_by_text("is asked to take on the Lead Professional role")).to_have_count(0)

    _ask_hand_over(pat, "Dee Walsh, youth worker", "the young person asked for Dee")
    dee = Person(chromium, base, world, "dee")
    dee.page.goto("/requests")
    expect(dee.page.get_by_text("the young person asked for Dee")).to_be_visible()
    dee.page.get_by_role("button", name="Accept").click()
    expect(dee.page.get_by_text("You are now the Lead Professional")).to_be_visible()
    dee.check("requests-04-accepted")
    assert _lead(engine, olivia) == world.practitioners["dee"]
    pat.page.goto(card_url)
    expect(pat.page.get_by_text("Dee Walsh").first).to_be_visible()
    expect(pat.page.get_by_text("is asked to take on the Lead Professional role")).to_have_count(0)
    for person in (pat, hana, dee):
        person.close()


def test_an_ask_to_join_the_team_accepted(chromium: object, server: Served) -> None:  # noqa: F811
    base, world, engine = server
    _open_caf(engine, world, "amara", "pat")
    hana = Person(chromium, base, world, "hana")
    hana.search("Amara", "Smith", "11", "11", "2019")
    hana.page.get_by_role("link", name="Amara Smith").click()
    card_url = hana.page.url
    expect(hana.page.get_by_label("Your role in the Team Around the Child")).to_have_value("health visitor")
    hana.check("requests-05-card-ask-to-join")
    hana.page.get_by_role("button", name="Ask to join the Team Around the Child").click()
    expect(hana.page.get_by_text("You asked to join the Team Around the Child")).to_be_visible()
    expect(hana.page.get_by_text("its holder has not answered yet")).to_be_visible()

    pat = Person(chromium, base, world, "pat")
    pat.page.goto("/requests")
    expect(pat.page.get_by_role("heading", name="Asks to join the Team Around the Child")).to_be_visible()
    expect(pat.page.get_by_text("Hana Begum").first).to_be_visible()
    pat.check("requests-06-ask-to-join-to-answer")
    pat.page.get_by_role("button", name="Accept").click()
    expect(pat.page.get_by_text("They are now a member of the Team Around the Child")).to_be_visible()
    hana.page.goto(card_url)
    expect(hana.page.get_by_role("heading", name="Team Around the Child")).to_be_visible()
    expect(hana.page.get_by_role("cell", name="Hana Begum, health visitor", exact=True)).to_be_visible()
    expect(hana.page.get_by_role("button", name="Ask to join the Team Around the Child")).to_have_count(0)
    hana.check("requests-07-member")
    pat.close()
    hana.close()
