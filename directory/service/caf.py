"""The CAF's life cycle, its Lead Professional and its Team Around the Child, in one place: every
surface (the app API, the pages, FHIR) changes a CAF through these use cases.

A CAF is signalled (its initiator holds the Lead Professional role), started with a consent,
completed with an outcome and closed (a signal is withdrawn, or lapses when it expires). There is
never more than one open CAF for a child: a second signal is refused, naming whom to ask. Its
holders are told whenever someone else changes it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from directory import audit, notices
from directory import repository as repo
from directory.errors import CafAlreadyOpen, Conflict, ConsentRequired, InvalidInput, NotFound, RuleBroken
from directory.models import (
    OPEN_CAF_STATUSES,
    Actor,
    Assessment,
    CafClose,
    CafComplete,
    CafSignal,
    CafStart,
    CafStatus,
    Child,
    Consent,
    ConsentScope,
    HandOver,
    LeadProfessionalAssignment,
    Practitioner,
    Tac,
    TacConvene,
    TacMember,
    TacStatus,
    TacUpdate,
)
from directory.reach import require_within_reach
from directory.service.access import (
    Standing,
    acting_practitioner,
    active_practitioner,
    caf_parties,
    holder_to_ask,
    how_to_reach,
    on_behalf,
    require_caf_change,
)
from directory.service.common import (
    active_child,
    audit_change,
    changed,
    consent_covers,
    load_child,
    new_version,
)


def _caf_conflict(session: Session, caf: Assessment, child: Child, actor: Actor) -> CafAlreadyOpen:
    holder, named = holder_to_ask(session, actor, caf, child)
    if not named:
        # Naming the holder would say who works with a shielded child and where, or that a child sees
        # a sensitive service: refer to the local delivery team instead.
        why = (
            "The record is shielded, so whoever holds it is not named here: ask" if child.shielded else "Ask"
        )
        return CafAlreadyOpen(
            f"A CAF is already open for this child. {why} {holder.name}{how_to_reach(holder)} to put you "
            "in touch with whoever holds it, and join it instead of starting another.",
            caf_id=str(caf.id),
            caf_status=caf.status,
            holder=holder.model_dump(),
        )
    state = {
        "signalled": "has signalled that they are starting one",
        "in_progress": "is carrying one out",
        "completed": "completed one that is not yet closed",
    }[caf.status]
    how = " or ".join(x for x in (holder.phone, holder.email) if x) or "through their organisation"
    return CafAlreadyOpen(
        f"A CAF is already open for this child: {holder.name} ({holder.role}, "
        f"{holder.organisation}) {state}. Contact them on {how} and join it instead of "
        "starting another.",
        caf_id=str(caf.id),
        caf_status=caf.status,
        holder=holder.model_dump(),
    )


def lapse_expired_signal(session: Session, *, child_id: uuid.UUID, now: datetime) -> bool:
    """Turn a child's overdue signal of intent into 'expired'; True when one lapsed."""
    caf = repo.open_caf(session, child_id, for_update=True)
    if caf is None or caf.status != CafStatus.SIGNALLED.value:
        return False
    if caf.signal_expires_at is None or caf.signal_expires_at > now:
        return False
    _expire(session, caf, now)
    return True


def _expire(session: Session, caf: Assessment, now: datetime) -> None:
    caf.status = CafStatus.EXPIRED.value
    caf.closed_at = now
    caf.closed_reason = "the signal of intent expired before a CAF was started"
    new_version(caf, now)
    session.add(caf)
    lead = repo.current_lead(session, caf.child_id)
    if lead is not None:
        lead.ended_at = now
        session.add(lead)
    session.flush()


def expire_signals(session: Session, *, actor: Actor, now: datetime) -> int:
    """Expire every overdue signal of intent (the periodic sweep)."""
    overdue = repo.expired_signals(session, now)
    for caf in overdue:
        _expire(session, caf, now)
    if overdue:
        audit.append(session, actor=actor, action="caf.expire-signals", detail={"count": len(overdue)})
    return len(overdue)


def signal_caf(
    session: Session,
    *,
    actor: Actor,
    child_id: uuid.UUID,
    data: CafSignal,
    signal_days: int,
    now: datetime,
) -> Assessment:
    """Signal the intent to start a CAF, as the signed-in practitioner (a connected system: for one of
    its own); refuse, naming the holder, when one is open."""
    if not data.no_risk_of_significant_harm:
        raise InvalidInput(
            "A CAF is not the route when a child may be at risk of significant harm: follow your "
            "safeguarding procedures and refer to children's social care now. Signal a CAF only once you "
            "have confirmed that the child is not at risk of significant harm.",
            field="no_risk_of_significant_harm",
        )
    child = active_child(session, child_id, actor=actor)
    practitioner = acting_practitioner(session, actor, data.practitioner_id, doing="signal a CAF")
    lapse_expired_signal(session, child_id=child.id, now=now)
    existing = repo.open_caf(session, child.id)
    if existing is not None:
        raise _caf_conflict(session, existing, child, actor)
    caf = Assessment(
        child_id=child.id,
        status=CafStatus.SIGNALLED.value,
        initiator_id=practitioner.id,
        lead_practitioner_id=practitioner.id,
        signalled_at=now,
        signal_expires_at=now + timedelta(days=signal_days),
    )
    try:
        with session.begin_nested():
            session.add(caf)
            session.flush()
    except IntegrityError:
        # Lost the race: another practitioner's CAF committed first. Name them.
        winner = repo.open_caf(session, child.id)
        if winner is None:
            raise
        raise _caf_conflict(session, winner, child, actor) from None
    session.add(
        LeadProfessionalAssignment(
            child_id=child.id,
            assessment_id=caf.id,
            practitioner_id=practitioner.id,
            reason="CAF initiator is Lead Professional until a TAC or panel appoints one",
            assigned_by=actor.subject,
            started_at=now,
        )
    )
    session.flush()
    audit_change(
        session, actor, "caf.signal", child.id, {"caf_id": caf.id.hex, **on_behalf(actor, practitioner)}
    )
    return caf


def _load_caf(session: Session, caf_id: uuid.UUID) -> Assessment:
    caf = repo.get(session, Assessment, caf_id, for_update=True)
    if caf is None:
        raise NotFound("No CAF has that id.")
    return caf  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _CafChange:
    """A CAF about to change, the child, who the actor is to it, and who held it before the change."""

    caf: Assessment
    child: Child
    standing: Standing
    holders: tuple[uuid.UUID, ...]


def _caf_to_change(
    session: Session, actor: Actor, caf_id: uuid.UUID, *, reason: str | None, doing: str
) -> _CafChange:
    """The CAF, locked, once the actor may change it (see permissions.require_caf_change)."""
    caf = _load_caf(session, caf_id)
    child = load_child(session, caf.child_id)
    require_within_reach(session, actor, child, writing=True)  # before naming whom to ask
    standing = require_caf_change(session, actor, caf, child, reason=reason, doing=doing)
    return _CafChange(caf, child, standing, caf_parties(session, caf).holders)


def _made_known(
    session: Session, actor: Actor, change: _CafChange, *, action: str, what: str, reason: str | None
) -> dict[str, str]:
    """Tell the CAF's holders when someone else changed it; the audit detail of who it was."""
    if change.standing == Standing.HOLDER:
        return {}
    notices.tell(
        session, actor=actor, caf=change.caf, to=change.holders, action=action, what=what, reason=reason
    )
    return {"by": change.standing.value}


def start_caf(
    session: Session, *, actor: Actor, caf_id: uuid.UUID, data: CafStart, now: datetime
) -> Assessment:
    """Start a signalled CAF; needs a current consent from a parent/carer or competent young person."""
    change = _caf_to_change(session, actor, caf_id, reason=data.reason, doing="start this CAF")
    caf = change.caf
    active_child(session, caf.child_id, actor=actor)
    if caf.status == CafStatus.SIGNALLED.value and caf.signal_expires_at and caf.signal_expires_at <= now:
        raise RuleBroken(
            "The signal of intent for this CAF expired before it was started; signal again to start one.",
            caf_id=str(caf.id),
        )
    if caf.status != CafStatus.SIGNALLED.value:
        raise Conflict(f"Only a signalled CAF can be started; this one is {caf.status}.")
    consent = repo.get(session, Consent, data.consent_id, for_update=True)
    if consent is None or consent.child_id != caf.child_id:
        raise ConsentRequired(
            "A CAF is done with consent: record the consent of a parent/carer or of the "
            "young person (where competent) for this child first."
        )
    if not consent_covers(consent, ConsentScope.CAF.value):
        raise ConsentRequired(
            "The consent given does not cover a CAF or was withdrawn: record a consent with "
            "scope 'caf' from a parent/carer or the competent young person."
        )
    caf.status = CafStatus.IN_PROGRESS.value
    caf.consent_id = consent.id
    caf.started_at = now
    new_version(caf, now)
    session.add(caf)
    session.flush()
    by = _made_known(session, actor, change, action="caf.start", what="started", reason=data.reason)
    audit_change(session, actor, "caf.start", caf.child_id, {"caf_id": caf.id.hex, **by})
    return caf


def complete_caf(
    session: Session, *, actor: Actor, caf_id: uuid.UUID, data: CafComplete, now: datetime
) -> Assessment:
    """Record that the assessment is complete and its outcome; the CAF stays open until closed."""
    change = _caf_to_change(session, actor, caf_id, reason=data.reason, doing="record this CAF's outcome")
    caf = change.caf
    if caf.status != CafStatus.IN_PROGRESS.value:
        raise Conflict(f"Only a CAF in progress can be completed; this one is {caf.status}.")
    caf.status = CafStatus.COMPLETED.value
    caf.completed_at = now
    caf.outcome = data.outcome.value
    new_version(caf, now)
    session.add(caf)
    session.flush()
    by = _made_known(
        session, actor, change, action="caf.complete", what="recorded the outcome of", reason=data.reason
    )
    audit_change(
        session, actor, "caf.complete", caf.child_id, {"caf_id": caf.id.hex, "outcome": caf.outcome, **by}
    )
    return caf


def close_caf(
    session: Session, *, actor: Actor, caf_id: uuid.UUID, data: CafClose, now: datetime
) -> Assessment:
    """Close a CAF (or withdraw a signal); ends its TAC and the Lead Professional role."""
    change = _caf_to_change(session, actor, caf_id, reason=data.reason, doing="close this CAF")
    caf = change.caf
    if caf.status not in {s.value for s in OPEN_CAF_STATUSES}:
        raise Conflict(f"This CAF is already {caf.status}.")
    tac = repo.tac_for_caf(session, caf.id, for_update=True)
    if tac is not None and tac.status != TacStatus.CLOSED.value:
        tac.status = TacStatus.CLOSED.value
        tac.closed_at = now
        changed(tac, now)
        session.add(tac)
    caf.status = (
        CafStatus.WITHDRAWN.value if caf.status == CafStatus.SIGNALLED.value else CafStatus.CLOSED.value
    )
    caf.closed_at = now
    caf.closed_reason = data.reason
    new_version(caf, now)
    session.add(caf)
    lead = repo.current_lead(session, caf.child_id)
    if lead is not None:
        lead.ended_at = now
        session.add(lead)
    session.flush()
    what = "withdrew the signal of" if caf.status == CafStatus.WITHDRAWN.value else "closed"
    by = _made_known(session, actor, change, action="caf.close", what=what, reason=data.reason)
    audit_change(
        session, actor, "caf.close", caf.child_id, {"caf_id": caf.id.hex, "status": caf.status, **by}
    )
    return caf


def hand_over_lead(
    session: Session, *, actor: Actor, caf_id: uuid.UUID, data: HandOver, now: datetime
) -> LeadProfessionalAssignment:
    """Hand the Lead Professional role over: from, to, when, why and by whom are recorded."""
    change = _caf_to_change(
        session, actor, caf_id, reason=data.reason, doing="hand over this CAF's Lead Professional role"
    )
    caf = change.caf
    if caf.status not in {s.value for s in OPEN_CAF_STATUSES}:
        raise Conflict("The Lead Professional can change only while the CAF or TAC is open.")
    to = active_practitioner(session, data.to_practitioner_id)
    assignment = assign_lead(session, caf=caf, to=to, reason=data.reason, by=actor.subject, now=now)
    by = _made_known(
        session,
        actor,
        change,
        action="lead-professional.hand-over",
        what="handed over the Lead Professional role of",
        reason=data.reason,
    )
    audit_change(session, actor, "lead-professional.hand-over", caf.child_id, {"caf_id": caf.id.hex, **by})
    return assignment


def assign_lead(
    session: Session, *, caf: Assessment, to: Practitioner, reason: str, by: str, now: datetime
) -> LeadProfessionalAssignment:
    """End the current Lead Professional's spell and start `to`'s (a hand-over, or one accepted:
    directory/service/requests.py); the CAF is locked by the caller."""
    current = repo.current_lead(session, caf.child_id)
    if current is not None and current.practitioner_id == to.id:
        raise Conflict(f"{to.name} is already the Lead Professional.")
    if current is not None:
        current.ended_at = now
        session.add(current)
        session.flush()
    assignment = LeadProfessionalAssignment(
        child_id=caf.child_id,
        assessment_id=caf.id,
        practitioner_id=to.id,
        from_practitioner_id=current.practitioner_id if current else None,
        reason=reason,
        assigned_by=by,
        started_at=now,
    )
    session.add(assignment)
    caf.lead_practitioner_id = to.id
    new_version(caf, now)
    session.add(caf)
    session.flush()
    return assignment


# --------------------------------------------------------------------------- Team Around the Child


def update_tac(session: Session, *, actor: Actor, caf_id: uuid.UUID, data: TacUpdate, now: datetime) -> Tac:
    """Form a TAC for an open CAF or change its members and review date."""
    change = _caf_to_change(
        session, actor, caf_id, reason=data.reason, doing="change this CAF's Team Around the Child"
    )
    caf = change.caf
    if caf.status not in (CafStatus.IN_PROGRESS.value, CafStatus.COMPLETED.value):
        raise Conflict("A TAC is formed from a CAF that has started and is not closed.")
    tac = repo.tac_for_caf(session, caf.id, for_update=True)
    if tac is None:
        tac = Tac(child_id=caf.child_id, assessment_id=caf.id)
        session.add(tac)
        session.flush()
    elif tac.status == TacStatus.CLOSED.value:
        raise Conflict("This TAC is closed.")
    current = {m.practitioner_id: m for m in repo.tac_members(session, tac.id)}
    for member in data.add_members:
        active_practitioner(session, member.practitioner_id)
        if member.practitioner_id not in current:
            row = TacMember(
                tac_id=tac.id, practitioner_id=member.practitioner_id, role=member.role, joined_at=now
            )
            session.add(row)
            current[member.practitioner_id] = row
    remaining = len(current) - len({p for p in data.remove_practitioner_ids if p in current})
    if tac.status == TacStatus.CONVENED.value and remaining < 3:
        raise RuleBroken("A convened TAC needs more than two practitioners; add someone first.")
    lead = repo.current_lead(session, caf.child_id)
    for practitioner_id in data.remove_practitioner_ids:
        if practitioner_id not in current:
            raise NotFound("That practitioner is not a member of this TAC.")
        if lead is not None and lead.practitioner_id == practitioner_id:
            raise RuleBroken("Hand over the Lead Professional role before they leave the TAC.")
        current[practitioner_id].left_at = now
        session.add(current[practitioner_id])
    if data.next_review_date is not None:
        if data.next_review_date < now.date():
            raise InvalidInput("The next review date is in the past.")
        tac.next_review_date = data.next_review_date
    if data.family_participating is not None:
        tac.family_participating = data.family_participating
    new_version(tac, now)
    session.add(tac)
    session.flush()
    by = _made_known(
        session,
        actor,
        change,
        action="tac.update",
        what="changed the Team Around the Child of",
        reason=data.reason,
    )
    audit_change(session, actor, "tac.update", caf.child_id, {"tac_id": tac.id.hex, **by})
    return tac


def convene_tac(session: Session, *, actor: Actor, tac_id: uuid.UUID, data: TacConvene, now: datetime) -> Tac:
    """Mark a TAC convened: it needs more than two practitioners and a review date."""
    found = repo.get(session, Tac, tac_id)
    if found is None:
        raise NotFound("No TAC has that id.")
    change = _caf_to_change(
        session,
        actor,
        found.assessment_id,
        reason=data.reason,
        doing="convene this CAF's Team Around the Child",
    )
    tac = repo.get(session, Tac, tac_id, for_update=True)
    assert tac is not None
    if tac.status != TacStatus.FORMING.value:
        raise Conflict(f"This TAC is already {tac.status}.")
    members = repo.tac_members(session, tac.id)
    if len(members) < 3:
        raise RuleBroken(
            f"A TAC needs more than two practitioners before it is convened; it has "
            f"{len(members)}. Add members first.",
            members=len(members),
        )
    if data.next_review_date < now.date():
        raise InvalidInput("The next review date is in the past.")
    lead = repo.current_lead(session, tac.child_id)
    if lead is not None and lead.practitioner_id not in {m.practitioner_id for m in members}:
        raise RuleBroken("The Lead Professional must be a member of the TAC.")
    tac.status = TacStatus.CONVENED.value
    tac.convened_at = now
    tac.next_review_date = data.next_review_date
    new_version(tac, now)
    session.add(tac)
    session.flush()
    by = _made_known(
        session,
        actor,
        change,
        action="tac.convene",
        what="convened the Team Around the Child of",
        reason=data.reason,
    )
    audit_change(session, actor, "tac.convene", tac.child_id, {"tac_id": tac.id.hex, **by})
    return tac  # type: ignore[no-any-return]
