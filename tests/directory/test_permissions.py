"""Who may act, as whom, on which record (directory/permissions.py), on SQLite and PostgreSQL.

Act as yourself: the practitioner of a signal comes from the sign-in, never from the request; a
system acts only for its own organisation. Act on what is yours: a CAF changes at the hands of its
holders, TAC members, the child's local delivery team or an admin; others give a reason and the
holders are told. Involvements and consents likewise. Sensitive means invisible.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from directory import notices, service
from directory.errors import InvalidInput, NotAllowed, NotFound
from directory.models import (
    Actor,
    Assessment,
    AuditEvent,
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
    Notice,
    Role,
    ShieldSet,
    TacMemberIn,
    TacUpdate,
    utcnow,
)
from tests.fixtures.builders import (
    actor,
    make_child,
    make_locality,
    make_org,
    make_practitioner,
    make_service,
)

TEAM = Contact(name="Early Help Hub", phone="01632 960000")


@dataclass
class Case:
    """A child in EAST with a CAF signalled by Sam (school), started, a TAC of Sam, Tess and Lee."""

    child: uuid.UUID
    caf: uuid.UUID
    sam: uuid.UUID  # SENCO, Cowley School: signalled the CAF (its holder)
    lee: uuid.UUID  # youth worker: a member of the TAC
    tess: uuid.UUID  # health visitor, the trust: a member of the TAC
    olly: uuid.UUID  # class teacher, Cowley School: nothing to do with this CAF
    nia: uuid.UUID  # sexual health nurse, the trust: the child's sensitive involvement
    hv_involvement: uuid.UUID
    sensitive_involvement: uuid.UUID
    caf_consent: uuid.UUID
    sensitive_consent: uuid.UUID


def person(practitioner_id: uuid.UUID, role: Role = Role.PRACTITIONER, **kw: object) -> Actor:
    """A signed-in person linked to their practitioner record."""
    return actor(role, subject=f"p-{practitioner_id.hex[:8]}", practitioner_id=practitioner_id, **kw)


def hub(*localities: str) -> Actor:
    """The local delivery team of these localities (none: the whole authority)."""
    return actor(Role.LOCAL_DELIVERY_TEAM, subject="hub", localities=localities)


@pytest.fixture
def case(session: Session) -> Case:
    make_locality(session, code="EAST", areas=("OX4",))
    make_locality(session, code="WEST", areas=("OX1",))
    school = make_org(session, name="Cowley School", kind="school", urn="123456")
    trust = make_org(session, name="Demoshire Health", kind="nhs_trust", ods_code="RNU")
    youth = make_org(session, name="Youth Service", kind="local_authority")
    hv = make_service(session, trust, name="Health Visiting")
    sexual = make_service(
        session,
        trust,
        name="Young People's Sexual Health",
        service_type="sexual_health",
        level_of_need=2,
        tier="aligned",
        sensitive=True,
        sensitive_category="sexual_health",
    )
    sam = make_practitioner(session, school, name="Sam Carter", role="SENCO", phone="07700 900101").id
    olly = make_practitioner(session, school, name="Olly Stone", role="class teacher").id
    lee = make_practitioner(session, youth, name="Lee Park", role="youth worker").id
    tess = make_practitioner(session, trust, name="Tess Vale", role="health visitor").id
    nia = make_practitioner(
        session, trust, name="Nia Patel", role="sexual health nurse", phone="07700 900254"
    ).id
    child = make_child(session)
    hv_inv = service.record_involvement(
        session,
        actor=person(tess),
        child_id=child,
        data=InvolvementCreate(
            service_id=hv.id,
            practitioner_id=tess,
            role="health visitor",
            level_of_need=1,
            start_date=date.today(),
        ),
    )
    sensitive_consent = service.record_consent(
        session,
        actor=person(nia),
        child_id=child,
        data=ConsentCreate(
            scope="sensitive:sexual_health",
            given_by_kind="young_person",
            given_by_name="Olivia Smith",
            young_person_competent=True,
        ),
    )
    sensitive_inv = service.record_involvement(
        session,
        actor=person(nia),
        child_id=child,
        data=InvolvementCreate(
            service_id=sexual.id,
            practitioner_id=nia,
            role="sexual health nurse",
            level_of_need=2,
            start_date=date.today(),
            consent_id=sensitive_consent.id,
        ),
    )
    caf = service.signal_caf(
        session,
        actor=person(sam),
        child_id=child,
        data=CafSignal(no_risk_of_significant_harm=True),
        signal_days=14,
        now=utcnow(),
    )
    caf_consent = service.record_consent(
        session,
        actor=person(sam),
        child_id=child,
        data=ConsentCreate(scope="caf", given_by_kind="parent_carer", given_by_name="Jane Smith"),
    )
    service.start_caf(
        session, actor=person(sam), caf_id=caf.id, data=CafStart(consent_id=caf_consent.id), now=utcnow()
    )
    service.update_tac(
        session,
        actor=person(sam),
        caf_id=caf.id,
        data=TacUpdate(add_members=[TacMemberIn(practitioner_id=p, role="member") for p in (sam, tess, lee)]),
        now=utcnow(),
    )
    session.flush()
    return Case(
        child=child,
        caf=caf.id,
        sam=sam,
        lee=lee,
        tess=tess,
        olly=olly,
        nia=nia,
        hv_involvement=hv_inv.id,
        sensitive_involvement=sensitive_inv.id,
        caf_consent=caf_consent.id,
        sensitive_consent=sensitive_consent.id,
    )


# --------------------------------------------------------------------------- act as yourself


def _signal(session: Session, who: Actor, child: uuid.UUID, named: uuid.UUID | None = None) -> Assessment:
    return service.signal_caf(
        session,
        actor=who,
        child_id=child,
        data=CafSignal(practitioner_id=named, no_risk_of_significant_harm=True),
        signal_days=14,
        now=utcnow(),
    )


def test_a_person_signals_only_as_themselves(session: Session, case: Case) -> None:
    child = make_child(session, names=[{"given": "Noah", "family": "Brook"}])
    with pytest.raises(NotAllowed, match="as yourself"):
        _signal(session, person(case.olly), child, named=case.nia)  # naming a CAMHS clinician, say
    with pytest.raises(NotAllowed, match="not linked to a practitioner record"):
        _signal(session, actor(Role.PRACTITIONER, subject="unlinked"), child)
    with pytest.raises(NotAllowed, match="not linked"):  # a role does not make an admin a practitioner
        _signal(session, actor(Role.DIRECTORY_ADMIN), child, named=case.sam)
    caf = _signal(session, person(case.olly), child, named=case.olly)  # naming oneself is harmless
    assert (caf.initiator_id, caf.lead_practitioner_id) == (case.olly, case.olly)


def test_a_system_acts_only_for_its_own_organisation_and_says_so(session: Session, case: Case) -> None:
    child = make_child(session, names=[{"given": "Noah", "family": "Brook"}])
    trust_system = actor(Role.SYSTEM, subject="trust-epr", organisation="RNU")  # by ODS code
    with pytest.raises(InvalidInput, match="on behalf of a practitioner"):
        _signal(session, trust_system, child)
    with pytest.raises(NotAllowed, match="its own organisation"):
        _signal(session, trust_system, child, named=case.sam)  # the school's SENCO
    with pytest.raises(NotAllowed, match="its own organisation"):
        _signal(session, actor(Role.SYSTEM, subject="nameless", organisation=None), child, named=case.tess)
    caf = _signal(session, trust_system, child, named=case.tess)
    assert caf.initiator_id == case.tess
    event = session.exec(sa.select(AuditEvent).where(AuditEvent.action == "caf.signal")).scalars().all()[-1]
    assert event.actor_subject == "trust-epr"
    assert json.loads(event.detail or "{}")["on_behalf_of"] == case.tess.hex


def test_a_caf_is_signalled_only_with_no_risk_of_significant_harm(session: Session, case: Case) -> None:
    child = make_child(session, names=[{"given": "Noah", "family": "Brook"}])
    with pytest.raises(InvalidInput, match="significant harm"):
        service.signal_caf(
            session,
            actor=person(case.sam),
            child_id=child,
            data=CafSignal(no_risk_of_significant_harm=False),
            signal_days=14,
            now=utcnow(),
        )
    assert session.exec(sa.select(Assessment).where(Assessment.child_id == child)).first() is None


def test_an_involvement_names_only_the_recorder_or_the_services_own(session: Session, case: Case) -> None:
    hv = service.repo.get(session, service.Involvement, case.hv_involvement).service_id
    child = make_child(session, names=[{"given": "Noah", "family": "Brook"}])

    def record(who: Actor, named: uuid.UUID | None, svc: uuid.UUID = hv) -> object:
        return service.record_involvement(
            session,
            actor=who,
            child_id=child,
            data=InvolvementCreate(
                service_id=svc,
                practitioner_id=named,
                role="health visitor",
                level_of_need=1,
                start_date=date.today(),
            ),
        )

    with pytest.raises(NotAllowed, match="another organisation"):
        record(person(case.olly), case.olly)  # a teacher recording the trust's health visiting
    with pytest.raises(NotAllowed, match="only yourself"):
        record(person(case.nia), case.tess)  # a colleague, even of the same trust
    with pytest.raises(InvalidInput, match="does not work for"):
        record(hub(), case.sam)  # the locality team names only the service's own practitioners
    assert record(hub("EAST"), case.tess) is not None


# --------------------------------------------------------------------------- act on what is yours


def _close(session: Session, who: Actor, caf: uuid.UUID, reason: str = "needs met") -> Assessment:
    return service.close_caf(session, actor=who, caf_id=caf, data=CafClose(reason=reason), now=utcnow())


def test_only_the_cafs_people_change_it_and_others_are_told_whom_to_ask(session: Session, case: Case) -> None:
    for outsider in (
        person(case.olly),
        person(case.nia),
        hub("WEST"),
        actor(Role.DIRECTORY_ADMIN, localities=("WEST",)),
    ):
        for attempt in (
            lambda w: _close(session, w, case.caf),
            lambda w: service.hand_over_lead(
                session,
                actor=w,
                caf_id=case.caf,
                data=HandOver(to_practitioner_id=case.olly, reason="x"),
                now=utcnow(),
            ),
            lambda w: service.complete_caf(
                session,
                actor=w,
                caf_id=case.caf,
                data=CafComplete(outcome="needs_met_in_service", reason="x"),
                now=utcnow(),
            ),
            lambda w: service.update_tac(
                session,
                actor=w,
                caf_id=case.caf,
                data=TacUpdate(remove_practitioner_ids=[case.tess], reason="x"),
                now=utcnow(),
            ),
        ):
            with pytest.raises(NotAllowed) as refused:
                attempt(outsider)
            assert "Sam Carter" in refused.value.message and "07700 900101" in refused.value.message
            assert refused.value.data["ask"]["name"] == "Sam Carter"
    caf = session.get(Assessment, case.caf)
    assert caf is not None and caf.status == "in_progress" and caf.lead_practitioner_id == case.sam


def test_on_a_shielded_record_the_refusal_names_the_locality_team(session: Session, case: Case) -> None:
    service.set_shield(
        session,
        actor=actor(Role.DESIGNATED_PRACTITIONER),
        child_id=case.child,
        data=ShieldSet(reason="refuge"),
    )
    with pytest.raises(NotAllowed) as refused:
        _close(session, person(case.olly), case.caf)
    assert "Sam Carter" not in refused.value.message and "East Early Help Team" in refused.value.message


def test_a_holder_changes_freely_and_anyone_else_gives_a_reason_that_the_holders_are_told(
    session: Session, case: Case
) -> None:
    # Tess (a TAC member), the East hub and an admin may change it, but only with a reason.
    for helper in (person(case.tess), hub("EAST"), actor(Role.DIRECTORY_ADMIN)):
        with pytest.raises(InvalidInput, match="give the reason"):
            service.complete_caf(
                session,
                actor=helper,
                caf_id=case.caf,
                data=CafComplete(outcome="needs_met_in_service"),
                now=utcnow(),
            )
    assert session.exec(sa.select(Notice)).first() is None
    service.complete_caf(
        session,
        actor=person(case.tess),
        caf_id=case.caf,
        data=CafComplete(outcome="multi_agency_response", reason="agreed at the TAC meeting"),
        now=utcnow(),
    )
    told = notices.my_notices(session, actor=person(case.sam))
    assert [(n.action, n.reason) for n in told] == [("caf.complete", "agreed at the TAC meeting")]
    assert "recorded the outcome of a CAF you hold" in told[0].message
    assert notices.unread(session, actor=person(case.tess)) == 0  # the one who acted is not told
    with pytest.raises(NotFound):  # nobody reads another's notices
        notices.mark_read(session, actor=person(case.tess), notice_id=told[0].id, now=utcnow())
    assert notices.mark_read(session, actor=person(case.sam), notice_id=told[0].id, now=utcnow()).read_at
    # The holder needs no reason; nobody is told of their own change.
    service.hand_over_lead(
        session,
        actor=person(case.sam),
        caf_id=case.caf,
        data=HandOver(to_practitioner_id=case.lee, reason="young person prefers Lee"),
        now=utcnow(),
    )
    assert notices.unread(session, actor=person(case.sam)) == 0
    # Lee is now Lead Professional and so a holder too: the hub's close tells both Sam and Lee.
    _close(session, hub(), case.caf, reason="family moved away")
    for holder in (case.sam, case.lee):
        assert [n.action for n in notices.my_notices(session, actor=person(holder), unread_only=True)] == [
            "caf.close"
        ]
    events = session.exec(sa.select(AuditEvent).where(AuditEvent.action == "caf.close")).scalars().all()
    assert json.loads(events[-1].detail or "{}")["by"] == "locality"


def test_a_system_changes_a_caf_only_when_its_organisation_holds_it_or_is_in_the_team(
    session: Session, case: Case
) -> None:
    trust = actor(Role.SYSTEM, subject="trust-epr", organisation="Demoshire Health")
    school = actor(Role.SYSTEM, subject="school-mis", organisation="123456")  # by URN
    other = actor(Role.SYSTEM, subject="other", organisation="Elsewhere")
    with pytest.raises(NotAllowed):
        _close(session, other, case.caf)
    with pytest.raises(InvalidInput, match="give the reason"):  # the trust's Tess is in the TAC
        service.complete_caf(
            session,
            actor=trust,
            caf_id=case.caf,
            data=CafComplete(outcome="needs_met_in_service"),
            now=utcnow(),
        )
    assert _close(session, school, case.caf).status == "closed"  # the school's Sam holds it


def test_involvements_are_ended_by_their_service_or_the_locality_team(session: Session, case: Case) -> None:
    end = InvolvementEnd(end_date=date.today())
    for outsider in (person(case.olly), person(case.sam), hub("WEST")):
        with pytest.raises(NotAllowed, match="Health Visiting's own practitioners"):
            service.end_involvement(session, actor=outsider, involvement_id=case.hv_involvement, data=end)
        with pytest.raises(NotAllowed):
            service.confirm_involvement(session, actor=outsider, involvement_id=case.hv_involvement)
    # A sensitive involvement the caller may not see is not there for them, whatever its id.
    with pytest.raises(NotFound):
        service.end_involvement(
            session, actor=person(case.olly), involvement_id=case.sensitive_involvement, data=end
        )
    service.confirm_involvement(
        session, actor=person(case.nia), involvement_id=case.hv_involvement
    )  # same trust
    service.confirm_involvement(session, actor=hub("EAST"), involvement_id=case.hv_involvement)
    ended = service.end_involvement(
        session, actor=person(case.tess), involvement_id=case.hv_involvement, data=end
    )
    assert ended.status == "ended"


def test_consents_are_withdrawn_by_their_recorder_or_the_locality_team(session: Session, case: Case) -> None:
    why = ConsentWithdraw(reason="the family asked")
    for outsider in (person(case.olly), person(case.tess), hub("WEST")):
        with pytest.raises(NotAllowed, match="whoever recorded this consent"):
            service.withdraw_consent(session, actor=outsider, consent_id=case.caf_consent, data=why)
    with pytest.raises(NotFound):  # a sensitive consent is not even there for them
        service.withdraw_consent(
            session, actor=person(case.olly), consent_id=case.sensitive_consent, data=why
        )
    assert service.withdraw_consent(
        session, actor=hub("EAST"), consent_id=case.caf_consent, data=why
    ).withdrawn_at
    assert service.withdraw_consent(
        session, actor=person(case.nia), consent_id=case.sensitive_consent, data=why
    )


# --------------------------------------------------------------------------- sensitive means invisible


def _card(session: Session, who: Actor, child: uuid.UUID) -> str:
    row = session.get(Child, child)
    assert row is not None
    return service.build_card(
        session, actor=who, child=row, now=utcnow(), fallback_team=TEAM
    ).model_dump_json()


def test_a_sensitive_practitioner_holding_the_caf_is_not_named_to_others(
    session: Session, case: Case
) -> None:
    # Nia (sexual health nurse) becomes Lead Professional and joins the TAC.
    service.update_tac(
        session,
        actor=person(case.sam),
        caf_id=case.caf,
        data=TacUpdate(add_members=[TacMemberIn(practitioner_id=case.nia, role="nurse")]),
        now=utcnow(),
    )
    service.hand_over_lead(
        session,
        actor=person(case.sam),
        caf_id=case.caf,
        data=HandOver(to_practitioner_id=case.nia, reason="the young person asked for Nia"),
        now=utcnow(),
    )
    for who in (person(case.olly), person(case.tess), hub("EAST"), actor(Role.DIRECTORY_ADMIN)):
        shown = _card(session, who, case.child)
        for leak in (
            "Nia Patel",
            "sexual health",
            "sexual_health",
            "07700 900254",
            "the young person asked for Nia",
        ):
            assert leak not in shown, (who.role, leak)
        card = json.loads(shown)
        assert card["caf"]["holder"] is None and card["lead_professional"] is None
        assert "East Early Help Team" in card["caf"]["advice"]
        assert {m["practitioner_id"] for m in card["tac"]["members"]} == {
            str(case.sam),
            str(case.tess),
            str(case.lee),
        }
        assert card["highest_level_of_need"] == 1  # the sensitive involvement's level 2 is not counted
    for who in (person(case.nia), actor(Role.DESIGNATED_PRACTITIONER)):
        card = json.loads(_card(session, who, case.child))
        assert card["lead_professional"]["contact"]["name"] == "Nia Patel"
        assert any(c["scope"] == "sensitive:sexual_health" for c in card["consents"])
    # A second signal names no one either.
    with pytest.raises(service.CafAlreadyOpen) as refused:
        _signal(session, person(case.olly), case.child)
    assert "Nia Patel" not in refused.value.message and "East Early Help Team" in refused.value.message
    # Withdrawing the consent hides the involvement from everyone, and Nia stays unnamed to others.
    service.withdraw_consent(
        session,
        actor=person(case.nia),
        consent_id=case.sensitive_consent,
        data=ConsentWithdraw(reason="asked"),
    )
    assert "Nia Patel" not in _card(session, person(case.olly), case.child)
    designated = json.loads(_card(session, actor(Role.DESIGNATED_PRACTITIONER), case.child))
    assert not any(i["sensitive"] for i in designated["involvements"])


def test_a_practitioner_of_a_sensitive_service_is_not_named_on_other_childrens_records(
    session: Session, case: Case
) -> None:
    """Nia holds a CAF for another child who sees no sensitive service: naming her there would still
    say that child sees a sexual health nurse."""
    other = make_child(session, names=[{"given": "Noah", "family": "Brook"}])
    _signal(session, person(case.nia), other)
    shown = _card(session, person(case.olly), other)
    assert "Nia Patel" not in shown and "sexual health" not in shown
    assert json.loads(shown)["caf"]["status"] == "signalled"
