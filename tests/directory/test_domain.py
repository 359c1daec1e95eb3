"""The practice rules, enforced by the domain and by the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session

from directory import repository as repo
from directory import service
from directory.errors import (
    CafAlreadyOpen,
    Conflict,
    ConsentRequired,
    InvalidInput,
    NotAllowed,
    NotFound,
    RuleBroken,
)
from directory.glance import Contactable, at_a_glance
from directory.models import (
    Assessment,
    CafClose,
    CafComplete,
    CafSignal,
    CafStart,
    Child,
    ConsentCreate,
    ConsentWithdraw,
    Contact,
    HandOver,
    InvolvementCreate,
    InvolvementEnd,
    LeadProfessionalAssignment,
    Organisation,
    Practitioner,
    Role,
    ShieldSet,
    Tac,
    TacConvene,
    TacMemberIn,
    TacUpdate,
    utcnow,
)
from directory.service import lifecycle
from tests.fixtures.builders import actor, make_child, make_locality, make_practitioner, make_service

TEAM = Contact(name="Early Help Hub", phone="01632 960000")


def _consent(session: Session, child_id: uuid.UUID, scope: str = "caf") -> uuid.UUID:
    return service.record_consent(
        session,
        actor=actor(),
        child_id=child_id,
        data=ConsentCreate(scope=scope, given_by_kind="parent_carer", given_by_name="Jane Smith"),
    ).id


def _signal(
    session: Session, child_id: uuid.UUID, practitioner_id: uuid.UUID, *, days: int = 14, now=None
) -> Assessment:
    return service.signal_caf(
        session,
        actor=actor(practitioner_id=practitioner_id),
        child_id=child_id,
        data=CafSignal(no_risk_of_significant_harm=True),
        signal_days=days,
        now=now or utcnow(),
    )


def test_second_caf_is_refused_naming_the_holder(session: Session) -> None:
    child = make_child(session)
    first = make_practitioner(session, name="Priya Patel", role="health visitor", phone="07700 900555")
    second = make_practitioner(session, name="Tom Jones")
    _signal(session, child, first.id)
    with pytest.raises(CafAlreadyOpen) as err:
        _signal(session, child, second.id)
    assert "Priya Patel" in err.value.message
    assert "07700 900555" in err.value.message
    assert err.value.data["holder"]["name"] == "Priya Patel"


def test_second_caf_on_a_shielded_child_refers_instead_of_naming_the_holder(session: Session) -> None:
    make_locality(session, code="EAST", areas=("OX4 1",))
    child = make_child(session)
    first = make_practitioner(session, name="Priya Patel", role="health visitor", phone="07700 900555")
    second = make_practitioner(session, name="Tom Jones")
    _signal(session, child, first.id)
    service.set_shield(
        session, actor=actor(Role.DESIGNATED_PRACTITIONER), child_id=child, data=ShieldSet(reason="refuge")
    )
    with pytest.raises(CafAlreadyOpen) as err:
        _signal(session, child, second.id)
    assert "Priya Patel" not in err.value.message and "07700 900555" not in err.value.message
    assert "East Early Help Team" in err.value.message
    assert err.value.data["holder"]["name"] == "East Early Help Team"
    # A designated practitioner may see who holds it.
    with pytest.raises(CafAlreadyOpen) as err:
        service.signal_caf(
            session,
            actor=actor(Role.DESIGNATED_PRACTITIONER, practitioner_id=second.id),
            child_id=child,
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=utcnow(),
        )
    assert "Priya Patel" in err.value.message


def test_database_refuses_a_second_open_caf_on_its_own(session: Session) -> None:
    child = make_child(session)
    p = make_practitioner(session)
    _signal(session, child, p.id)
    session.commit()
    with pytest.raises(IntegrityError):
        session.add(
            Assessment(
                child_id=child,
                status="in_progress",
                initiator_id=p.id,
                lead_practitioner_id=p.id,
                consent_id=_consent(session, child),
            )
        )
        session.flush()


def test_database_refuses_an_open_caf_without_lead_or_started_without_consent(session: Session) -> None:
    child = make_child(session)
    p = make_practitioner(session)
    session.commit()
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(Assessment(child_id=child, status="signalled", initiator_id=p.id))
        session.flush()
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(
            Assessment(child_id=child, status="in_progress", initiator_id=p.id, lead_practitioner_id=p.id)
        )
        session.flush()


def test_signal_expires_unless_started(session: Session) -> None:
    child = make_child(session)
    p = make_practitioner(session)
    past = utcnow() - timedelta(days=20)
    caf = _signal(session, child, p.id, now=past)
    assert caf.signal_expires_at == past + timedelta(days=14)
    with pytest.raises(RuleBroken, match="expired"):
        service.start_caf(
            session,
            actor=actor(practitioner_id=p.id),
            caf_id=caf.id,
            data=CafStart(consent_id=_consent(session, child)),
            now=utcnow(),
        )
    # A new signal is allowed: the old one lapses first.
    other = make_practitioner(session, name="Other")
    new = _signal(session, child, other.id)
    assert new.status == "signalled"
    session.refresh(caf)
    assert caf.status == "expired"


def test_expire_sweep(session: Session) -> None:
    child = make_child(session)
    p = make_practitioner(session)
    _signal(session, child, p.id, days=1, now=utcnow() - timedelta(days=2))
    assert service.expire_signals(session, actor=actor(Role.DIRECTORY_ADMIN), now=utcnow()) == 1
    assert service.expire_signals(session, actor=actor(Role.DIRECTORY_ADMIN), now=utcnow()) == 0


def test_caf_start_needs_consent(session: Session) -> None:
    child = make_child(session)
    p = make_practitioner(session)
    caf = _signal(session, child, p.id)
    sharing = _consent(session, child, scope="information_sharing")
    with pytest.raises(ConsentRequired, match="scope 'caf'"):
        service.start_caf(
            session,
            actor=actor(practitioner_id=p.id),
            caf_id=caf.id,
            data=CafStart(consent_id=sharing),
            now=utcnow(),
        )
    with pytest.raises(ConsentRequired):
        service.start_caf(
            session,
            actor=actor(practitioner_id=p.id),
            caf_id=caf.id,
            data=CafStart(consent_id=uuid.uuid4()),
            now=utcnow(),
        )
    consent = _consent(session, child)
    started = service.start_caf(
        session,
        actor=actor(practitioner_id=p.id),
        caf_id=caf.id,
        data=CafStart(consent_id=consent),
        now=utcnow(),
    )
    assert started.status == "in_progress" and started.consent_id == consent


def test_young_person_consent_needs_competence(session: Session) -> None:
    child = make_child(session)
    with pytest.raises(InvalidInput, match="competent"):
        service.record_consent(
            session,
            actor=actor(),
            child_id=child,
            data=ConsentCreate(scope="caf", given_by_kind="young_person", given_by_name="Olivia"),
        )
    consent = service.record_consent(
        session,
        actor=actor(),
        child_id=child,
        data=ConsentCreate(
            scope="caf", given_by_kind="young_person", given_by_name="Olivia", young_person_competent=True
        ),
    )
    assert consent.given_by_kind == "young_person"


def test_initiator_is_lead_and_hand_over_is_recorded(session: Session) -> None:
    child = make_child(session)
    a = make_practitioner(session, name="Ann Lead")
    b = make_practitioner(session, name="Ben Next")
    caf = _signal(session, child, a.id)
    card = service.build_card(
        session, actor=actor(), child=session.get(Child, child), now=utcnow(), fallback_team=TEAM
    )
    assert card.lead_professional and card.lead_professional.contact.name == "Ann Lead"
    service.hand_over_lead(
        session,
        actor=actor(subject="manager", practitioner_id=a.id),
        caf_id=caf.id,
        data=HandOver(to_practitioner_id=b.id, reason="TAC appointed Ben"),
        now=utcnow(),
    )
    card = service.build_card(
        session, actor=actor(), child=session.get(Child, child), now=utcnow(), fallback_team=TEAM
    )
    assert card.lead_professional and card.lead_professional.contact.name == "Ben Next"
    last = card.lead_professional_history[-1]
    assert (last.from_practitioner, last.to_practitioner, last.reason, last.by) == (
        "Ann Lead",
        "Ben Next",
        "TAC appointed Ben",
        "manager",
    )
    current = session.exec(
        sa.select(LeadProfessionalAssignment).where(
            LeadProfessionalAssignment.child_id == child, LeadProfessionalAssignment.ended_at.is_(None)
        )
    ).all()
    assert len(current) == 1


def test_database_allows_only_one_current_lead(session: Session) -> None:
    child = make_child(session)
    a = make_practitioner(session)
    caf = _signal(session, child, a.id)
    session.commit()
    with pytest.raises(IntegrityError):
        session.add(
            LeadProfessionalAssignment(
                child_id=child, assessment_id=caf.id, practitioner_id=a.id, reason="x", assigned_by="x"
            )
        )
        session.flush()


def test_closing_caf_ends_lead_and_tac(session: Session) -> None:
    child = make_child(session)
    people = [make_practitioner(session, name=f"P{i}") for i in range(3)]
    caf = _signal(session, child, people[0].id)
    service.start_caf(
        session,
        actor=actor(practitioner_id=people[0].id),
        caf_id=caf.id,
        data=CafStart(consent_id=_consent(session, child)),
        now=utcnow(),
    )
    tac = service.update_tac(
        session,
        actor=actor(practitioner_id=people[0].id),
        caf_id=caf.id,
        now=utcnow(),
        data=TacUpdate(add_members=[TacMemberIn(practitioner_id=p.id, role="member") for p in people]),
    )
    service.close_caf(
        session,
        actor=actor(practitioner_id=people[0].id),
        caf_id=caf.id,
        data=CafClose(reason="needs met"),
        now=utcnow(),
    )
    session.refresh(tac)
    assert tac.status == "closed"
    card = service.build_card(
        session, actor=actor(), child=session.get(Child, child), now=utcnow(), fallback_team=TEAM
    )
    assert card.lead_professional is None and card.caf and card.caf.status == "closed"


def test_tac_needs_more_than_two_practitioners(session: Session) -> None:
    child = make_child(session)
    people = [make_practitioner(session, name=f"P{i}") for i in range(4)]
    caf = _signal(session, child, people[0].id)
    service.start_caf(
        session,
        actor=actor(practitioner_id=people[0].id),
        caf_id=caf.id,
        data=CafStart(consent_id=_consent(session, child)),
        now=utcnow(),
    )
    service.complete_caf(
        session,
        actor=actor(practitioner_id=people[0].id),
        caf_id=caf.id,
        data=CafComplete(outcome="multi_agency_response"),
        now=utcnow(),
    )
    tac = service.update_tac(
        session,
        actor=actor(practitioner_id=people[0].id),
        caf_id=caf.id,
        now=utcnow(),
        data=TacUpdate(add_members=[TacMemberIn(practitioner_id=p.id, role="member") for p in people[:2]]),
    )
    review = date.today() + timedelta(days=42)
    with pytest.raises(RuleBroken, match="more than two"):
        service.convene_tac(
            session,
            actor=actor(practitioner_id=people[0].id),
            tac_id=tac.id,
            data=TacConvene(next_review_date=review),
            now=utcnow(),
        )
    service.update_tac(
        session,
        actor=actor(practitioner_id=people[0].id),
        caf_id=caf.id,
        now=utcnow(),
        data=TacUpdate(add_members=[TacMemberIn(practitioner_id=people[2].id, role="youth worker")]),
    )
    convened = service.convene_tac(
        session,
        actor=actor(practitioner_id=people[0].id),
        tac_id=tac.id,
        data=TacConvene(next_review_date=review),
        now=utcnow(),
    )
    assert convened.status == "convened"
    with pytest.raises(RuleBroken, match="more than two"):
        service.update_tac(
            session,
            actor=actor(practitioner_id=people[0].id),
            caf_id=caf.id,
            now=utcnow(),
            data=TacUpdate(remove_practitioner_ids=[people[2].id]),
        )


def test_database_refuses_convening_a_small_tac(session: Session) -> None:
    child = make_child(session)
    p = make_practitioner(session)
    caf = _signal(session, child, p.id)
    service.start_caf(
        session,
        actor=actor(practitioner_id=p.id),
        caf_id=caf.id,
        data=CafStart(consent_id=_consent(session, child)),
        now=utcnow(),
    )
    tac = Tac(child_id=child, assessment_id=caf.id)
    session.add(tac)
    session.commit()
    with pytest.raises(DBAPIError, match="more than two practitioners"):
        session.execute(sa.update(Tac).where(Tac.id == tac.id).values(status="convened"))
        session.flush()


def test_sensitive_involvement_needs_consent_and_withdrawal_hides_it(session: Session) -> None:
    child = make_child(session)
    team = actor(Role.LOCAL_DELIVERY_TEAM, subject="hub")
    svc = make_service(
        session,
        name="Sexual Health Clinic",
        service_type="sexual_health",
        level_of_need=2,
        tier="specialist",
        sensitive=True,
        sensitive_category="sexual_health",
    )
    body = {"service_id": svc.id, "role": "nurse", "level_of_need": 2, "start_date": date.today()}
    with pytest.raises(ConsentRequired):
        service.record_involvement(session, actor=team, child_id=child, data=InvolvementCreate(**body))
    caf_consent = _consent(session, child, "caf")
    with pytest.raises(ConsentRequired, match="does not cover"):
        service.record_involvement(
            session, actor=team, child_id=child, data=InvolvementCreate(**body, consent_id=caf_consent)
        )
    consent = _consent(session, child, "sensitive:sexual_health")
    service.record_involvement(
        session, actor=team, child_id=child, data=InvolvementCreate(**body, consent_id=consent)
    )

    def visible(role: Role) -> int:
        card = service.build_card(
            session, actor=actor(role), child=session.get(Child, child), now=utcnow(), fallback_team=TEAM
        )
        return sum(1 for i in card.involvements if i.sensitive)

    assert visible(Role.DESIGNATED_PRACTITIONER) == 1
    assert visible(Role.PRACTITIONER) == 0  # role may not see it
    service.withdraw_consent(session, actor=actor(), consent_id=consent, data=ConsentWithdraw(reason="asked"))
    assert visible(Role.DESIGNATED_PRACTITIONER) == 0  # hidden at once, for everyone


def test_database_refuses_sensitive_without_consent(session: Session) -> None:
    from directory.models import Involvement

    child = make_child(session)
    svc = make_service(session)
    session.commit()
    with pytest.raises(IntegrityError):
        session.add(
            Involvement(
                child_id=child,
                service_id=svc.id,
                role="x",
                level_of_need=2,
                start_date=date.today(),
                sensitive=True,
                recorded_by="x",
            )
        )
        session.flush()


def test_shielded_record_hides_location_from_most_users(session: Session) -> None:
    make_locality(session, code="EAST", areas=("OX4 1",))
    child = make_child(session)
    svc = make_service(session)
    service.record_involvement(
        session,
        actor=actor(Role.LOCAL_DELIVERY_TEAM),
        child_id=child,
        data=InvolvementCreate(
            service_id=svc.id, role="health visitor", level_of_need=1, start_date=date.today()
        ),
    )
    with pytest.raises(NotAllowed):
        service.set_shield(
            session, actor=actor(Role.PRACTITIONER), child_id=child, data=ShieldSet(reason="x")
        )
    service.set_shield(
        session,
        actor=actor(Role.DESIGNATED_PRACTITIONER),
        child_id=child,
        data=ShieldSet(reason="family fleeing violence"),
    )
    row = session.get(Child, child)
    other = service.build_card(session, actor=actor(), child=row, now=utcnow(), fallback_team=TEAM)
    assert other.address is None and other.involvements == [] and other.related_people == []
    assert other.shield_notice and other.shield_notice.ask.name == "East Early Help Team"
    designated = service.build_card(
        session, actor=actor(Role.DESIGNATED_PRACTITIONER), child=row, now=utcnow(), fallback_team=TEAM
    )
    assert designated.address and designated.address.postcode == "OX4 1AB"
    assert len(designated.involvements) == 1


def test_child_protection_override_is_audited_as_such(session: Session) -> None:
    child = make_child(session)
    service.set_shield(
        session, actor=actor(Role.DESIGNATED_PRACTITIONER), child_id=child, data=ShieldSet(reason="refuge")
    )
    card = service.read_card(
        session,
        actor=actor(Role.CHILD_PROTECTION, shield_override_reason="s47 enquiry"),
        child_id=child,
        now=utcnow(),
        fallback_team=TEAM,
    )
    assert card.address is not None
    from directory.audit import who_looked

    actions = [e.action for e in who_looked(session, child_id=child)]
    assert "child.read.shield-override" in actions and "alert.shield-override" in actions


def test_age_range_is_pre_birth_to_nineteen(session: Session) -> None:
    today = date.today()
    make_child(session, date_of_birth=None, expected_delivery_date=(today + timedelta(days=60)).isoformat())
    nineteen = today.replace(year=today.year - 19) - timedelta(days=100)
    make_child(session, date_of_birth=nineteen.isoformat())
    with pytest.raises(RuleBroken, match="19 inclusive"):
        make_child(session, date_of_birth=today.replace(year=today.year - 21).isoformat())
    with pytest.raises(InvalidInput, match="future"):
        make_child(session, date_of_birth=(today + timedelta(days=3)).isoformat())
    with pytest.raises(InvalidInput):
        make_child(session, date_of_birth=None)


def test_aged_out_records_are_archived_not_deleted(session: Session) -> None:
    today = date.today()
    child = make_child(
        session, date_of_birth=(today.replace(year=today.year - 19) - timedelta(days=10)).isoformat()
    )
    later = datetime.combine(today.replace(year=today.year + 1), time(12), tzinfo=UTC)
    report = lifecycle.run_lifecycle(
        session, actor=actor(Role.DIRECTORY_ADMIN), rules=lifecycle.LifecycleRules(), now=later
    )
    assert report.archived_aged_out == 1
    row = session.get(Child, child)
    assert row is not None and row.status == "archived"
    p = make_practitioner(session)
    # a practitioner may not read an archived record: its refusal is an unknown id's
    with pytest.raises(NotFound, match="No child record has that id"):
        _signal(session, child, p.id)


def test_identifiers_are_unique_per_system(session: Session) -> None:
    make_child(session, identifiers=[{"system": "nhs", "value": "9434765919"}])
    with pytest.raises(Conflict, match="already holds"):
        make_child(session, identifiers=[{"system": "nhs", "value": "943 476 5919"}])
    with pytest.raises(InvalidInput, match="modulus-11"):
        make_child(session, identifiers=[{"system": "nhs", "value": "9434765918"}])


def test_card_read_requires_purpose(session: Session) -> None:
    child = make_child(session)
    with pytest.raises(InvalidInput, match="purpose"):
        service.read_card(
            session, actor=actor(purpose=None), child_id=child, now=utcnow(), fallback_team=TEAM
        )


def test_at_a_glance_loads_a_page_of_hits_as_the_per_child_queries_would(session: Session) -> None:
    """The search hits' summaries, loaded for many children at once, agree child by child with the
    one-child queries: open CAF and its holder, current Lead Professional, and the count and highest
    level of need of active involvements that are not sensitive."""
    busy, quiet, other = make_child(session), make_child(session), make_child(session)
    team = actor(Role.LOCAL_DELIVERY_TEAM, subject="hub")
    holder = make_practitioner(session, name="Priya Patel")
    _signal(session, busy, holder.id)
    services = [make_service(session, name=f"Service {i}") for i in range(4)]
    for svc, level, sensitive in zip(services, (1, 3, 4, 2), (False, False, True, False), strict=True):
        involvement = service.record_involvement(
            session,
            actor=team,
            child_id=busy,
            data=InvolvementCreate(
                service_id=svc.id,
                role="worker",
                level_of_need=level,
                start_date=date.today() - timedelta(days=30),
                sensitive=sensitive,
                consent_id=_consent(session, busy, scope="sensitive:all") if sensitive else None,
            ),
        )
        if level == 2:  # ended: not counted
            service.end_involvement(
                session,
                actor=team,
                involvement_id=involvement.id,
                data=InvolvementEnd(end_date=date.today()),
            )
    service.record_involvement(
        session,
        actor=team,
        child_id=other,
        data=InvolvementCreate(
            service_id=services[0].id, role="worker", level_of_need=1, start_date=date.today()
        ),
    )
    glances = at_a_glance(session, [busy, quiet, other, uuid.uuid4()])
    assert set(glances) == {busy, quiet, other}  # an unknown id is simply absent
    for child_id, glance in glances.items():
        caf, lead = repo.open_caf(session, child_id), repo.current_lead(session, child_id)
        active = [r for r in repo.involvements_with_service(session, child_id) if not r[0].sensitive]
        child, names = session.get(Child, child_id), repo.child_names(session, child_id)
        address = repo.current_address(session, child_id)
        assert child is not None and (glance.status, glance.shielded, glance.sex) == (
            child.status,
            child.shielded,
            child.sex,
        )
        assert (glance.date_of_birth, glance.locality_id) == (child.date_of_birth, child.locality_id)
        assert glance.name == ((names[0].given, names[0].family) if names else None)
        assert glance.postcode == (address.postcode if address else None)
        assert glance.caf_status == (caf.status if caf else None)

        def contactable(p: tuple[Practitioner, Organisation]) -> Contactable:
            return Contactable(p[0].name, p[1].name, p[0].phone or p[1].phone, p[0].id, False)

        assert glance.caf_holder == (
            contactable(repo.practitioner_contact(session, caf.lead_practitioner_id or caf.initiator_id))
            if caf
            else None
        )
        assert glance.lead == (
            contactable(repo.practitioner_contact(session, lead.practitioner_id)) if lead else None
        )
        assert glance.services_involved == len(active)
        assert glance.highest_level_of_need == max((r[0].level_of_need for r in active), default=None)
    assert glances[busy].services_involved == 2 and glances[busy].highest_level_of_need == 3
    assert glances[busy].caf_holder is not None and glances[busy].caf_holder.name == "Priya Patel"
    crowd = [make_child(session) for _ in range(11)]
    paged = at_a_glance(session, [*crowd, busy, quiet])  # more than a page of ten ids
    assert set(paged) == {*crowd, busy, quiet}
    assert (paged[busy], paged[quiet]) == (glances[busy], glances[quiet])
    assert glances[quiet].caf_status is None and glances[quiet].services_involved == 0
