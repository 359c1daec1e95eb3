"""The locality delivery team's worklist (directory/service/worklist.py): each section lists what it
should and nothing else, only the team of that locality reads it, a shielded child's practitioners and
a sensitive involvement stay hidden, and every read is audited with the children it names."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from directory import service
from directory.errors import NotAllowed, NotFound
from directory.models import (
    Actor,
    AuditEvent,
    CafSignal,
    CafStart,
    ConsentCreate,
    HandOver,
    InvolvementCreate,
    Practitioner,
    Role,
    ShieldSet,
    Tac,
    utcnow,
)
from directory.service.worklist import WorkItemRead, WorklistRead, locality_worklist
from directory.worklist import WorklistRules
from tests.fixtures.builders import (
    actor,
    make_child,
    make_locality,
    make_org,
    make_practitioner,
    make_service,
)

TEAM = actor(Role.LOCAL_DELIVERY_TEAM, subject="lena", localities=("CITY",))
RULES = WorklistRules(lapse_within_days=7, unconfirmed_after_days=180)


def _child(session: Session, given: str, postcode: str = "OX4 1AB") -> uuid.UUID:
    address = {"line1": "1 High Street", "town": "Oxford", "postcode": postcode}
    return make_child(session, names=[{"given": given, "family": "Worklist"}], address=address)


def _started(session: Session, child: uuid.UUID, by: uuid.UUID) -> uuid.UUID:
    who = actor(practitioner_id=by)
    caf = service.signal_caf(
        session,
        actor=who,
        child_id=child,
        data=CafSignal(no_risk_of_significant_harm=True),
        signal_days=14,
        now=utcnow(),
    )
    consent = service.record_consent(
        session,
        actor=who,
        child_id=child,
        data=ConsentCreate(scope="caf", given_by_kind="parent_carer", given_by_name="Jane Worklist"),
    )
    service.start_caf(session, actor=who, caf_id=caf.id, data=CafStart(consent_id=consent.id), now=utcnow())
    return caf.id


@dataclass
class Place:
    unagreed: uuid.UUID
    unagreed_caf: uuid.UUID
    agreed: uuid.UUID
    lapsing: uuid.UUID
    far_signal: uuid.UUID
    stale: uuid.UUID
    hidden: uuid.UUID
    north: uuid.UUID
    priya: uuid.UUID


@pytest.fixture
def place(session: Session) -> Place:
    make_locality(session, code="CITY", areas=("OX4",))
    make_locality(session, code="NORTH", areas=("OX5",))
    org = make_org(session, name="Demoshire Health", kind="nhs_trust")
    priya = make_practitioner(session, org, name="Priya Patel", role="health visitor")
    tom = make_practitioner(session, org, name="Tom Jones", role="youth worker")
    nia = make_practitioner(session, org, name="Nia Patel", role="nurse")
    svc = make_service(session, org)
    clinic = make_service(
        session,
        org,
        name="Young People's Sexual Health",
        service_type="sexual_health",
        sensitive=True,
        sensitive_category="sexual_health",
        level_of_need=3,
        tier="aligned",
    )
    unagreed, agreed, lapsing, far_signal, stale, hidden = (
        _child(session, n) for n in ("Una", "Agnes", "Lara", "Fran", "Stella", "Hedda")
    )
    north = _child(session, "Nora", "OX5 1AB")
    unagreed_caf = _started(session, unagreed, priya.id)
    _started(session, north, priya.id)
    caf = _started(session, agreed, priya.id)
    service.hand_over_lead(
        session,
        actor=actor(practitioner_id=priya.id),
        caf_id=caf,
        data=HandOver(to_practitioner_id=tom.id, reason="agreed at the first meeting"),
        now=utcnow(),
    )
    for child, days in ((lapsing, 3), (far_signal, 30)):
        service.signal_caf(
            session,
            actor=actor(practitioner_id=tom.id),
            child_id=child,
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=days,
            now=utcnow(),
        )
    _started(session, hidden, priya.id)
    service.set_shield(
        session, actor=actor(Role.DESIGNATED_PRACTITIONER), child_id=hidden, data=ShieldSet(reason="refuge")
    )
    long_ago = date.today() - timedelta(days=400)
    plain = service.record_involvement(
        session,
        actor=actor(Role.DIRECTORY_ADMIN),
        child_id=stale,
        data=InvolvementCreate(
            service_id=svc.id,
            practitioner_id=tom.id,
            role="youth worker",
            level_of_need=2,
            start_date=long_ago,
        ),
    )
    consent = service.record_consent(
        session,
        actor=actor(),
        child_id=stale,
        data=ConsentCreate(
            scope="sensitive:sexual_health",
            given_by_kind="young_person",
            given_by_name="Stella",
            young_person_competent=True,
        ),
    )
    secret = service.record_involvement(
        session,
        actor=actor(Role.DIRECTORY_ADMIN),
        child_id=stale,
        data=InvolvementCreate(
            service_id=clinic.id,
            practitioner_id=nia.id,
            role="nurse",
            level_of_need=3,
            start_date=long_ago,
            sensitive=True,
            consent_id=consent.id,
        ),
    )
    old = utcnow() - timedelta(days=200)
    for row in (plain, secret):
        row.last_confirmed_at = old
        session.add(row)
    session.flush()
    return Place(unagreed, unagreed_caf, agreed, lapsing, far_signal, stale, hidden, north, priya.id)


def _read(session: Session, who: Actor = TEAM, code: str = "CITY") -> WorklistRead:
    return locality_worklist(session, actor=who, code=code, today=date.today(), now=utcnow(), rules=RULES)


def _section(found: WorklistRead, code: str) -> list[WorkItemRead]:
    return next(s.items for s in found.sections if s.code == code)


def test_each_section_lists_what_needs_acting_on_in_that_locality_only(
    session: Session, place: Place
) -> None:
    found = _read(session)
    unagreed = {i.child_id for i in _section(found, "no-agreed-lead")}
    assert place.unagreed in unagreed and place.hidden in unagreed
    assert place.agreed not in unagreed  # a hand-over agreed the Lead Professional
    assert place.north not in unagreed  # another locality's
    assert [i.child_id for i in _section(found, "signals-lapsing")] == [place.lapsing]
    stale = _section(found, "not-confirmed")
    assert [i.child_id for i in stale] == [place.stale] and stale[0].code == "youth worker"
    assert found.team.name == "City Early Help Team" and found.locality == "CITY"


def test_review_overdue_is_listed(session: Session, place: Place) -> None:
    assert _section(_read(session), "reviews-overdue") == []
    due = date.today() - timedelta(days=3)
    session.add(
        Tac(
            child_id=place.unagreed, assessment_id=place.unagreed_caf, status="convened", next_review_date=due
        )
    )
    session.flush()
    overdue = _section(_read(session), "reviews-overdue")
    assert [i.child_id for i in overdue] == [place.unagreed]
    assert overdue[0].due == date.today() - timedelta(days=3)


def test_what_the_team_may_not_see_stays_hidden(session: Session, place: Place) -> None:
    found = _read(session)
    shielded = next(i for i in _section(found, "no-agreed-lead") if i.child_id == place.hidden)
    assert shielded.who is None and "shielded" in (shielded.withheld or "")
    assert shielded.child_name == "Hedda Worklist"
    listed = {i.code for i in _section(found, "not-confirmed")}
    assert "nurse" not in listed  # the sensitive involvement is left out
    text = found.model_dump_json()
    assert "Sexual" not in text and "nurse" not in text
    # a designated practitioner would see both (so the checks above can fail) -- but only the team reads it
    plain = next(i for i in _section(found, "no-agreed-lead") if i.child_id == place.unagreed)
    assert plain.who is not None and plain.who.name == "Priya Patel"


def test_only_the_localitys_team_reads_it(session: Session, place: Place) -> None:
    with pytest.raises(NotAllowed):
        _read(session, actor(Role.PRACTITIONER))
    with pytest.raises(NotAllowed):
        _read(session, actor(Role.DIRECTORY_ADMIN))
    north_team = actor(Role.LOCAL_DELIVERY_TEAM, subject="nell", localities=("NORTH",))
    with pytest.raises(NotAllowed, match="City Early Help Team"):
        _read(session, north_team)
    with pytest.raises(NotFound):
        _read(session, TEAM, "NOWHERE")
    everywhere = actor(Role.LOCAL_DELIVERY_TEAM, subject="ed", localities=())
    assert _read(session, everywhere, "NORTH").sections


def test_a_read_is_audited_with_the_children_it_names(session: Session, place: Place) -> None:
    found = _read(session)
    event = session.exec(
        select(AuditEvent)
        .where(col(AuditEvent.action) == "worklist.read")
        .order_by(col(AuditEvent.seq).desc())
    ).first()
    assert event is not None
    assert event.actor_subject == "lena" and event.target_type == "locality"
    named = {i.child_id for s in found.sections for i in s.items}
    rows = session.execute(
        sa.text("SELECT child_id FROM audit_subject WHERE seq = :s"), {"s": event.seq}
    ).all()
    assert {uuid.UUID(str(r[0])) for r in rows} == named


def test_a_long_section_lists_the_oldest_and_says_there_are_more(session: Session, place: Place) -> None:
    few = WorklistRules(lapse_within_days=7, unconfirmed_after_days=180, max_items=1)
    found = locality_worklist(session, actor=TEAM, code="CITY", today=date.today(), now=utcnow(), rules=few)
    unagreed = next(s for s in found.sections if s.code == "no-agreed-lead")
    assert len(unagreed.items) == 1 and unagreed.more
    lapsing = next(s for s in found.sections if s.code == "signals-lapsing")
    assert len(lapsing.items) == 1 and not lapsing.more


def test_a_caf_sent_to_panel_is_in_the_panel_queue_until_decided(session: Session, place: Place) -> None:
    from directory.models import CafComplete, CafOutcome
    from directory.models.panel import PanelSend
    from directory.service.panel import send_to_panel

    assert _section(_read(session), "panel-queue") == []
    holder = actor(practitioner_id=place.priya)
    service.complete_caf(
        session,
        actor=holder,
        caf_id=place.unagreed_caf,
        data=CafComplete(outcome=CafOutcome.MULTI_AGENCY_RESPONSE),
        now=utcnow(),
    )
    send_to_panel(session, actor=holder, caf_id=place.unagreed_caf, data=PanelSend(), now=utcnow())
    queued = _section(_read(session), "panel-queue")
    assert [(i.child_id, i.caf_id) for i in queued] == [(place.unagreed, place.unagreed_caf)]
    assert queued[0].who is not None and queued[0].who.name == "Priya Patel"


def test_hand_overs_waiting_and_plan_actions_overdue(session: Session, place: Place) -> None:
    from directory.models import TacAction
    from directory.service.requests import request_hand_over

    found = _read(session)
    assert _section(found, "hand-overs-waiting") == [] and _section(found, "actions-overdue") == []
    tom = next(i.who for i in _section(found, "not-confirmed") if i.who is not None)
    tom_id = session.exec(select(Practitioner.id).where(Practitioner.name == tom.name)).one()
    request_hand_over(
        session,
        actor=actor(practitioner_id=place.priya),
        caf_id=place.unagreed_caf,
        data=HandOver(to_practitioner_id=tom_id, reason="moving schools"),
        now=utcnow(),
    )
    due = date.today() - timedelta(days=2)
    tac = Tac(
        child_id=place.unagreed,
        assessment_id=place.unagreed_caf,
        status="convened",
        next_review_date=date.today(),
    )
    session.add(tac)
    session.flush()
    session.add(
        TacAction(
            tac_id=tac.id,
            child_id=place.unagreed,
            title="Speech therapy referral",
            area="communication",
            owner_practitioner_id=place.priya,
            due_date=due,
        )
    )
    session.add(
        TacAction(
            tac_id=tac.id,
            child_id=place.unagreed,
            title="Done already",
            area="communication",
            due_date=due,
            status="done",
        )
    )
    session.flush()
    found = _read(session)
    waiting = _section(found, "hand-overs-waiting")
    assert [(i.child_id, i.who.name if i.who else None) for i in waiting] == [(place.unagreed, "Tom Jones")]
    overdue = _section(found, "actions-overdue")
    assert [(i.child_id, i.due, i.who.name if i.who else None) for i in overdue] == [
        (place.unagreed, due, "Priya Patel")
    ]
    assert "Speech therapy" not in found.model_dump_json()  # a title stays on the plan, not the worklist
