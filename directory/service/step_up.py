"""Step up and step down between early help and children's social care.

Whoever may change a CAF steps it up: a referral notice is queued, in the same transaction, for each
configured channel of the social care front door (delivered and retried by interop/front_door.py),
and the CAF's TAC becomes the core group (same members) until it is stepped down. A social worker
steps a case down: the core group of an open stepped-up CAF reverts to a TAC, or, when the child has
no open CAF, a CAF and TAC are opened from the step-down (`came_from = 'step_down'`); either way the
Lead Professional is handed to an early-help practitioner through the hand-over use case.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from directory import repository as repo
from directory.errors import Conflict, InvalidInput, NotAllowed, RuleBroken
from directory.models import (
    OPEN_CAF_STATUSES,
    Actor,
    Assessment,
    CafSignal,
    CafStart,
    CafStatus,
    FrontDoorNotice,
    HandOver,
    Role,
    StepUp,
    Tac,
    TacMemberIn,
    TacStatus,
    TacUpdate,
)
from directory.models.panel import StepDownIn, StepUpIn
from directory.permissions import ask_contact, how_to_reach
from directory.service.caf import (
    _caf_conflict,
    _caf_to_change,
    _made_known,
    signal_caf,
    start_caf,
    update_tac,
)
from directory.service.common import active_child, audit_change, new_version
from directory.service.requests import request_hand_over

SOCIAL_CARE = frozenset({Role.CHILD_PROTECTION})
"""The roles of children's social care, who step a case down (the directory has no separate social
worker role: a social worker's grant has the child_protection role)."""

CHANNELS = ("webhook", "email")
STEP_DOWN = "step_down"


def open_step_up(session: Session, caf_id: uuid.UUID) -> StepUp | None:
    """The CAF's step-up that has not been stepped down (its TAC is the core group), if any."""
    return session.exec(
        select(StepUp).where(StepUp.caf_id == caf_id, StepUp.stepped_down_at.is_(None))  # type: ignore[union-attr]
    ).first()


def core_group_tacs(session: Session, tac_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these TACs are a core group now (for the card and FHIR)."""
    if not tac_ids:
        return set()
    rows = session.exec(
        select(StepUp.tac_id).where(
            StepUp.tac_id.in_(list(tac_ids)),  # type: ignore[union-attr]
            StepUp.stepped_down_at.is_(None),  # type: ignore[union-attr]
        )
    ).all()
    return {r for r in rows if r is not None}


def step_up(
    session: Session,
    *,
    actor: Actor,
    caf_id: uuid.UUID,
    data: StepUpIn,
    channels: Sequence[str],
    now: datetime,
) -> StepUp:
    """Step an open CAF up to children's social care: queue the front door's referral notices and make
    its TAC the core group. `channels`: the front door's configured channels ('webhook', 'email')."""
    change = _caf_to_change(
        session, actor, caf_id, reason=data.reason, doing="step this CAF up to social care"
    )
    caf, child = change.caf, change.child
    active_child(session, child.id, actor=actor)
    if caf.status not in {s.value for s in OPEN_CAF_STATUSES}:
        raise Conflict(f"Only an open CAF steps up; this one is {caf.status}.", caf_status=caf.status)
    wanted = [c for c in CHANNELS if c in channels]
    if not wanted:
        ask = ask_contact(session, child)
        raise RuleBroken(
            "No social care front door is configured here, so a step-up cannot be sent: phone your "
            f"children's social care front door now, and tell {ask.name}{how_to_reach(ask)} and your "
            "directory administrator (settings CHILDINDEX_FRONT_DOOR_WEBHOOK or CHILDINDEX_FRONT_DOOR_EMAIL)."
        )
    if open_step_up(session, caf.id) is not None:
        raise Conflict(
            "This CAF is already stepped up to social care: its TAC is the core group until social care "
            "steps it down.",
            caf_id=str(caf.id),
        )
    tac = repo.tac_for_caf(session, caf.id, for_update=True)
    tac = tac if tac is not None and tac.status != TacStatus.CLOSED.value else None
    row = StepUp(
        child_id=child.id,
        caf_id=caf.id,
        tac_id=tac.id if tac else None,
        stepped_up_by=actor.subject,
        referrer_id=actor.practitioner_id,
        stepped_up_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # lost the race: stepped up a moment before
        raise Conflict("This CAF is already stepped up to social care.", caf_id=str(caf.id)) from None
    for channel in wanted:
        session.add(
            FrontDoorNotice(
                step_up_id=row.id, child_id=child.id, channel=channel, next_attempt_at=now, created_at=now
            )
        )
    _bump(session, caf, tac, now)
    by = _made_known(
        session, actor, change, action="caf.step-up", what="stepped up to social care", reason=data.reason
    )
    detail = {"caf_id": caf.id.hex, "step_up_id": row.id.hex, **({"tac_id": tac.id.hex} if tac else {}), **by}
    audit_change(session, actor, "caf.step-up", child.id, detail, note=data.reason)
    return row


def _bump(session: Session, caf: Assessment, tac: Tac | None, now: datetime) -> None:
    """A new version of the CAF and its TAC (FHIR's `_since` and meta.versionId see the change)."""
    new_version(caf, now)
    session.add(caf)
    if tac is not None:
        new_version(tac, now)
        session.add(tac)
    session.flush()


def _require_social_care(actor: Actor) -> None:
    if actor.role not in SOCIAL_CARE:
        raise NotAllowed(
            "Only children's social care (a social worker) steps a case down to early help. If you think "
            "the case should step down, ask the child's social worker."
        )


def step_down(
    session: Session, *, actor: Actor, child_id: uuid.UUID, data: StepDownIn, signal_days: int, now: datetime
) -> Assessment:
    """A social worker steps a case down to early help; returns the CAF that carries it on."""
    _require_social_care(actor)
    child = active_child(session, child_id, actor=actor)
    caf = repo.open_caf(session, child.id, for_update=True)
    if caf is not None:
        stepped = open_step_up(session, caf.id)
        if stepped is None:
            raise _caf_conflict(session, caf, child, actor)  # one open CAF per child: join that one
        return _revert_core_group(session, actor, caf, stepped, data, now)
    return _open_from_step_down(session, actor, child.id, data, signal_days, now)


def _hand_to_lead(session: Session, actor: Actor, caf: Assessment, data: StepDownIn, now: datetime) -> None:
    """Add the named members (and the new Lead Professional) to the TAC, then hand the role over."""
    lead = repo.current_lead(session, caf.child_id)
    members = [TacMemberIn(practitioner_id=m.practitioner_id, role=m.role) for m in data.members]
    if data.lead_practitioner_id not in {m.practitioner_id for m in members}:
        members.append(TacMemberIn(practitioner_id=data.lead_practitioner_id, role="Lead Professional"))
    if caf.status != CafStatus.SIGNALLED.value:  # (a signalled CAF has no TAC yet)
        update = TacUpdate(add_members=members, reason=data.reason)
        update_tac(session, actor=actor, caf_id=caf.id, data=update, now=now)
    if lead is None or lead.practitioner_id != data.lead_practitioner_id:
        # by acceptance, as every hand-over: the early-help practitioner takes it up (service/requests.py)
        request_hand_over(
            session,
            actor=actor,
            caf_id=caf.id,
            data=HandOver(to_practitioner_id=data.lead_practitioner_id, reason=data.reason),
            now=now,
            source="step-down",
        )


def _revert_core_group(
    session: Session, actor: Actor, caf: Assessment, stepped: StepUp, data: StepDownIn, now: datetime
) -> Assessment:
    """The core group of a stepped-up CAF reverts to a TAC; the Lead Professional goes to early help."""
    stepped.stepped_down_at = now
    stepped.stepped_down_by = actor.subject
    session.add(stepped)
    session.flush()
    _hand_to_lead(session, actor, caf, data, now)
    tac = repo.tac_for_caf(session, caf.id)
    _bump(session, caf, None, now)
    _audit_step_down(session, actor, caf, tac, "reverted")
    return caf


def _open_from_step_down(
    session: Session, actor: Actor, child_id: uuid.UUID, data: StepDownIn, signal_days: int, now: datetime
) -> Assessment:
    """Open a CAF and TAC for a child that social care steps down, recording where it came from."""
    if data.consent_id is None:
        raise InvalidInput(
            "A CAF opened from a step-down needs the family's consent: record a consent with scope 'caf' "
            "and give its id.",
            field="consent_id",
        )
    # Social care has judged that the child is no longer at risk of significant harm: that is the step-down.
    caf = signal_caf(
        session,
        actor=actor,
        child_id=child_id,
        data=CafSignal(no_risk_of_significant_harm=True),
        signal_days=signal_days,
        now=now,
    )
    caf.came_from = STEP_DOWN
    session.add(caf)
    session.flush()
    start_caf(session, actor=actor, caf_id=caf.id, data=CafStart(consent_id=data.consent_id), now=now)
    _hand_to_lead(session, actor, caf, data, now)
    _audit_step_down(session, actor, caf, repo.tac_for_caf(session, caf.id), "opened")
    return caf


def _audit_step_down(session: Session, actor: Actor, caf: Assessment, tac: Tac | None, how: str) -> None:
    detail = {"caf_id": caf.id.hex, "how": how, **({"tac_id": tac.id.hex} if tac else {})}
    audit_change(session, actor, "caf.step-down", caf.child_id, detail)
