"""The read model: a child's involvement card as this actor may see it, what they may change on
it, and who has looked at it.

The card withholds what the actor may not see, and what would give it away: a shielded child's
whereabouts and services, a sensitive service and the practitioners who work in one (see
directory.permissions).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from directory import audit
from directory import repository as repo
from directory.errors import NotAllowed
from directory.merge_moves import merged_into_ids
from directory.models import (
    OPEN_CAF_STATUSES,
    AccessLogEntry,
    Actor,
    AddressRead,
    Assessment,
    CafRead,
    Child,
    ChildCard,
    ConsentRead,
    Contact,
    HandOverRead,
    IdentifierRead,
    InvolvementRead,
    InvolvementStatus,
    LeadProfessionalAssignment,
    LeadProfessionalRead,
    Locality,
    NameRead,
    Organisation,
    RecordStatus,
    RelatedPersonRead,
    Role,
    ShieldNotice,
    TacMemberRead,
    TacRead,
    TacStatus,
)
from directory.names import names_shown
from directory.reach import require_within_reach
from directory.service.access import (
    ACCESS_LOG_READERS,
    Standing,
    ask_contact,
    caf_standing,
    holder_to_ask,
    how_to_reach,
    may_change_involvement,
    may_see_consent,
    may_see_practitioner,
    may_see_sensitive,
    may_see_shielded,
    may_withdraw_consent,
)
from directory.service.caf import lapse_expired_signal
from directory.service.common import age_on, audit_change, load_child, require_purpose
from directory.service.step_up import core_group_tacs
from directory.visibility import require_readable

_Seen = Callable[[uuid.UUID | None], bool]
"""Whether the actor may see that a practitioner works with the child."""


@dataclass(frozen=True)
class YourPart:
    """What the actor may do on a child's record, for the pages to offer only that."""

    caf_standing: Standing | None  # None: they may not change the open CAF (or there is none)
    caf_holder: Contact | None  # whom to ask about the CAF (its holder, or the local delivery team)
    involvements: frozenset[uuid.UUID]  # they may end or confirm these
    consents: frozenset[uuid.UUID]  # they may withdraw these


def your_part(session: Session, *, actor: Actor, child_id: uuid.UUID) -> YourPart:
    """What this actor may change on a child's record (see directory.permissions); reads only."""
    child = load_child(session, child_id)
    require_readable(child, actor)
    caf = repo.open_caf(session, child.id)
    standing = caf_standing(session, actor, caf, child) if caf is not None else None
    holder = holder_to_ask(session, actor, caf, child)[0] if caf is not None else None
    rows = repo.involvements_with_service(session, child.id)
    return YourPart(
        caf_standing=standing,
        caf_holder=holder,
        involvements=frozenset(i.id for i, *_ in rows if may_change_involvement(session, actor, i, child)),
        consents=frozenset(
            c.id
            for c in repo.consents(session, child.id)
            if c.withdrawn_at is None and may_withdraw_consent(session, actor, c, child)
        ),
    )


def build_card(
    session: Session, *, actor: Actor, child: Child, now: datetime, fallback_team: Contact
) -> ChildCard:
    """Assemble the involvement card as this actor may see it (no audit: see read_card); a record
    they may not read at all (directory.visibility) is answered as an unknown id."""
    require_readable(child, actor)
    require_within_reach(session, actor, child, writing=False)
    entitled = may_see_shielded(child, actor)
    card = _identity(session, child, now)
    caf = repo.open_caf(session, child.id) or repo.latest_caf(session, child.id)
    ask = ask_contact(session, child, fallback_team)
    if not entitled:
        card.names = names_shown(card.names, shielded=True, entitled=False)
        _withhold_whereabouts(card, caf, ask)
        return card
    _add_whereabouts(session, card, child)
    rows = repo.involvements_with_service(session, child.id, include_ended=True)
    people = _people_on_record(session, child, caf, rows)
    sensitive = repo.sensitive_practitioners(session, list(people))

    def seen(practitioner_id: uuid.UUID | None) -> bool:
        return practitioner_id is not None and may_see_practitioner(actor, practitioner_id, sensitive)

    card.involvements = _involvements(actor, rows, seen)
    card.highest_level_of_need = max((i.level_of_need for i in card.involvements), default=None)
    if caf is not None:
        _add_caf(session, card, caf, ask, seen, me=actor.practitioner_id)
    lead = repo.current_lead(session, child.id)
    if lead is not None and seen(lead.practitioner_id):
        card.lead_professional = LeadProfessionalRead(
            practitioner_id=lead.practitioner_id,
            contact=_contact(session, lead.practitioner_id),
            since=lead.started_at,
            reason=lead.reason,
        )
    covered = [inv for inv, *_ in rows]
    card.consents = [
        ConsentRead.of(c) for c in repo.consents(session, child.id) if may_see_consent(actor, c, covered)
    ]
    return card


def _identity(session: Session, child: Child, now: datetime) -> ChildCard:
    """The card's part that everyone who may read the record sees: who the child is."""
    names = [NameRead.model_validate(n) for n in repo.child_names(session, child.id)]
    return ChildCard(
        id=child.id,
        status=child.status,
        names=names,
        date_of_birth=child.date_of_birth,
        expected_delivery_date=child.expected_delivery_date,
        age_years=age_on(child.date_of_birth, now.date()) if child.date_of_birth else None,
        sex=child.sex,
        identifiers=[IdentifierRead.model_validate(i) for i in repo.child_identifiers(session, child.id)],
        shielded=child.shielded,
        merged_into_id=child.merged_into_id,
    )


def _withhold_whereabouts(card: ChildCard, caf: Assessment | None, ask: Contact) -> None:
    """A shielded card: whom to ask instead of where the child is and who works with them."""
    card.shield_notice = ShieldNotice(
        message=(
            "This record is shielded: address, contact details and the services involved "
            f"are withheld. Ask {ask.name} to broker contact with the practitioners."
        ),
        ask=ask,
    )
    if caf is not None:
        card.caf = CafRead(
            id=caf.id,
            status=caf.status,
            signalled_at=caf.signalled_at,
            advice=f"Ask {ask.name} before starting an assessment.",
        )


def _add_whereabouts(session: Session, card: ChildCard, child: Child) -> None:
    """The child's address, locality, school, GP practice and the people around them."""
    address = repo.current_address(session, child.id)
    card.address = AddressRead.model_validate(address) if address else None
    locality = repo.get(session, Locality, child.locality_id) if child.locality_id else None
    card.locality = locality.name if locality else None
    card.school = _org_contact(repo.get(session, Organisation, child.school_id) if child.school_id else None)
    card.gp_practice = _org_contact(
        repo.get(session, Organisation, child.gp_practice_id) if child.gp_practice_id else None
    )
    card.related_people = [
        RelatedPersonRead.model_validate(p) for p in repo.related_people(session, child.id)
    ]


def _involvements(actor: Actor, rows: Sequence[repo.InvolvementRow], seen: _Seen) -> list[InvolvementRead]:
    """The active involvements this actor may see, each with whom to contact (the practitioner when
    they may see them, else the service)."""
    involvements: list[InvolvementRead] = []
    for inv, service, org, practitioner, consent in rows:
        if inv.status != InvolvementStatus.ACTIVE.value:
            continue
        if inv.sensitive and not may_see_sensitive(actor, inv, consent):
            continue
        named = practitioner if practitioner is not None and seen(practitioner.id) else None
        contact = Contact(
            name=named.name if named else service.name,
            role=named.role if named else inv.role,
            organisation=org.name,
            phone=(named.phone if named else None) or service.phone or org.phone,
            email=(named.email if named else None) or service.email or org.email,
        )
        involvements.append(
            InvolvementRead(
                id=inv.id,
                service_id=service.id,
                service_name=service.name,
                service_type=service.service_type,
                tier=service.tier,
                role=inv.role,
                level_of_need=inv.level_of_need,
                start_date=inv.start_date,
                end_date=inv.end_date,
                status=inv.status,
                sensitive=inv.sensitive,
                source=inv.source,
                last_confirmed_at=inv.last_confirmed_at,
                contact=contact,
                version=inv.version,
            )
        )
    return involvements


def _add_caf(
    session: Session, card: ChildCard, caf: Assessment, ask: Contact, seen: _Seen, *, me: uuid.UUID | None
) -> None:
    """The CAF (its holder named only when the actor may see them), its hand-overs and its TAC."""
    withheld = f"withheld: ask {ask.name}"
    holder_id = caf.lead_practitioner_id or caf.initiator_id
    open_ = caf.status in {s.value for s in OPEN_CAF_STATUSES}
    holder = _contact(session, holder_id) if seen(holder_id) else None
    advice = None
    if open_ and holder_id is not None and holder_id == me:
        advice = "A CAF is open and you hold it: bring in the others working with the child through its TAC."
    elif open_ and holder is not None:
        advice = f"A CAF is open: contact {holder.name} before starting another assessment, and join it."
    elif open_:
        # Whoever holds it works in a sensitive service: that they hold it would say so.
        advice = (
            f"A CAF is open. Ask {ask.name}{how_to_reach(ask)} to put you in touch with whoever holds "
            "it before starting another assessment, and join it."
        )
    card.caf = CafRead(
        id=caf.id,
        status=caf.status,
        holder=holder,
        signalled_at=caf.signalled_at,
        signal_expires_at=caf.signal_expires_at,
        started_at=caf.started_at,
        completed_at=caf.completed_at,
        closed_at=caf.closed_at,
        outcome=caf.outcome,
        advice=advice,
        came_from=caf.came_from,
    )
    card.lead_professional_history = [
        _hand_over_read(session, h, seen, withheld) for h in repo.lead_history(session, caf.id)
    ]
    tac = repo.tac_for_caf(session, caf.id)
    if tac is not None and tac.status != TacStatus.CLOSED.value:
        card.tac = TacRead(
            id=tac.id,
            status=tac.status,
            family_participating=tac.family_participating,
            convened_at=tac.convened_at,
            next_review_date=tac.next_review_date,
            members=[
                TacMemberRead(
                    practitioner_id=m.practitioner_id,
                    role=m.role,
                    contact=_contact(session, m.practitioner_id),
                )
                for m in repo.tac_members(session, tac.id)
                if seen(m.practitioner_id)
            ],
            core_group=bool(core_group_tacs(session, [tac.id])),
        )


def _contact(session: Session, practitioner_id: uuid.UUID) -> Contact:
    """How to reach a practitioner (their organisation's phone and email where they have none)."""
    practitioner, org = repo.practitioner_contact(session, practitioner_id)
    return Contact(
        name=practitioner.name,
        role=practitioner.role,
        organisation=org.name,
        phone=practitioner.phone or org.phone,
        email=practitioner.email or org.email,
    )


def _org_contact(org: Organisation | None) -> Contact | None:
    if org is None:
        return None
    return Contact(name=org.name, organisation=org.name, phone=org.phone, email=org.email)


def _hand_over_read(
    session: Session,
    spell: LeadProfessionalAssignment,
    seen: _Seen,
    withheld: str,
) -> HandOverRead:
    """One hand-over as the card shows it: who is not shown is withheld, and so is what names them."""
    parties = [p for p in (spell.from_practitioner_id, spell.practitioner_id) if p is not None]
    shown = all(seen(p) for p in parties)
    return HandOverRead(
        from_practitioner=None
        if spell.from_practitioner_id is None
        else _contact(session, spell.from_practitioner_id).name
        if seen(spell.from_practitioner_id)
        else withheld,
        to_practitioner=_contact(session, spell.practitioner_id).name
        if seen(spell.practitioner_id)
        else withheld,
        at=spell.started_at,
        reason=spell.reason if shown else withheld,
        by=spell.assigned_by if shown else withheld,
    )


def _people_on_record(
    session: Session,
    child: Child,
    caf: Assessment | None,
    rows: Sequence[repo.InvolvementRow],
) -> set[uuid.UUID]:
    """Every practitioner a card could name: involvements, the CAF's holders and hand-overs, the TAC."""
    people = {inv.practitioner_id for inv, *_ in rows if inv.practitioner_id}
    lead = repo.current_lead(session, child.id)
    if lead is not None:
        people.add(lead.practitioner_id)
    if caf is not None:
        people.update(p for p in (caf.initiator_id, caf.lead_practitioner_id) if p)
        for h in repo.lead_history(session, caf.id):
            people.update(p for p in (h.practitioner_id, h.from_practitioner_id) if p)
        tac = repo.tac_for_caf(session, caf.id)
        if tac is not None:
            people.update(m.practitioner_id for m in repo.tac_members(session, tac.id))
    return people


def read_card(
    session: Session, *, actor: Actor, child_id: uuid.UUID, now: datetime, fallback_team: Contact
) -> ChildCard:
    """The involvement card of a child, audited; overdue signals lapse first."""
    require_purpose(actor)
    child = load_child(session, child_id)
    if child.status == RecordStatus.ACTIVE.value:
        lapse_expired_signal(session, child_id=child.id, now=now)
    card = build_card(session, actor=actor, child=child, now=now, fallback_team=fallback_team)
    reason = actor.shield_override_reason
    if child.shielded and actor.role == Role.CHILD_PROTECTION and reason:
        audit_change(session, actor, "child.read.shield-override", child.id, note=reason)
        audit.append(
            session,
            actor=actor,
            action="alert.shield-override",
            outcome="alert",
            target_type="child",
            target_id=child.id,
        )
    else:
        audit.append(
            session,
            actor=actor,
            action="child.read",
            target_type="child",
            target_id=child.id,
            detail={"shield_withheld": True} if card.shield_notice else None,
        )
    return card


def access_log(session: Session, *, actor: Actor, child_id: uuid.UUID) -> list[AccessLogEntry]:
    """Who has looked at this child's record: an audited read of the audit log."""
    if actor.role not in ACCESS_LOG_READERS:
        raise NotAllowed(
            "Only auditors, directory admins and designated practitioners can see who has looked at a record."
        )
    require_readable(load_child(session, child_id), actor)
    events = audit.who_looked(
        session, child_id=child_id, also=merged_into_ids(session, child_id), role=actor.role
    )
    audit.append(
        session,
        actor=actor,
        action="child.access-log.read",
        target_type="child-access-log",
        target_id=child_id,
    )
    return [AccessLogEntry.model_validate(e) for e in events]
