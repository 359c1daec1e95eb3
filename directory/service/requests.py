"""Requests about a CAF that someone else answers (issue #18), one mechanism for three kinds:

- **A Lead Professional hand-over** is asked by whoever may change the CAF (permissions'
  `require_caf_change`) and accepted or declined by the practitioner it names; until then the current
  Lead Professional stays. A CAF has at most one pending hand-over: a new one *replaces* the pending
  one (the holder who named the wrong person, or someone now on leave, fixes it in one step; the
  replaced request can no longer be accepted). Naming yourself takes the role at once. On acceptance
  the new Lead Professional joins the CAF's open TAC, if they are not in it (a convened TAC must
  hold its Lead Professional, and accepting is their agreement to take part).
- **An ask to join** a CAF's Team Around the Child is made by a practitioner who can read the
  child's record, and answered by the CAF's holder or Lead Professional; a shielded child's holder
  is never named to an asker who may not see them. The TAC is formed when the ask is accepted.
- **An invitation** to join the TAC is made by whoever may change the CAF (or the early intervention
  panel's decision) and answered by the invited practitioner.

Every step writes an audit event (the contract of issue #18: ids only) in the same transaction; the
people are told from those events (no notice is written here). Answers lock the CAF first, then the
request, so that of many answers at once exactly one takes effect.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, or_, select

from directory import audit
from directory import repository as repo
from directory.errors import Conflict, InvalidInput, NotAllowed, NotFound
from directory.models import (
    OPEN_CAF_STATUSES,
    Actor,
    Assessment,
    CafRequest,
    CafStatus,
    Child,
    Contact,
    HandOver,
    JoinAsk,
    LeadProfessionalAssignment,
    RequestAnswer,
    RequestKind,
    RequestRead,
    RequestStatus,
    Role,
    Tac,
    TacMember,
    TacStatus,
)
from directory.permissions import NOT_LINKED
from directory.service.access import (
    Standing,
    active_practitioner,
    caf_parties,
    may_see_practitioner,
    may_see_shielded,
    require_caf_change,
)
from directory.service.caf import assign_lead, hand_over_lead
from directory.service.common import active_child, audit_change, load_child, new_version

HAND_OVER_DOING = "hand over this CAF's Lead Professional role"
INVITE_DOING = "invite someone to this CAF's Team Around the Child"
_OPEN = frozenset(s.value for s in OPEN_CAF_STATUSES)
_TAC_OPEN = frozenset({CafStatus.IN_PROGRESS.value, CafStatus.COMPLETED.value})


@dataclass(frozen=True)
class HandOverOutcome:
    """A hand-over asked for: the pending request, or (naming yourself) the assignment made at once."""

    request: CafRequest | None = None
    assignment: LeadProfessionalAssignment | None = None


def _locked_caf(session: Session, caf_id: uuid.UUID) -> Assessment:
    caf = repo.get(session, Assessment, caf_id, for_update=True)
    if caf is None:
        raise NotFound("No CAF has that id.")
    return caf  # type: ignore[no-any-return]


def _by(standing: Standing) -> dict[str, str]:
    """The audit detail's `by` when the actor is not a holder (their holders are told)."""
    return {} if standing == Standing.HOLDER else {"by": standing.value}


def _pending(
    session: Session, caf_id: uuid.UUID, kinds: Sequence[str], who: uuid.UUID | None
) -> CafRequest | None:
    stmt = select(CafRequest).where(
        CafRequest.assessment_id == caf_id,
        CafRequest.status == RequestStatus.PENDING.value,
        col(CafRequest.kind).in_(list(kinds)),
    )
    if who is not None:
        stmt = stmt.where(CafRequest.practitioner_id == who)
    return session.exec(stmt).first()


def _requester(actor: Actor) -> uuid.UUID | None:
    return actor.practitioner_id if actor.role != Role.SYSTEM else None


# --------------------------------------------------------------------------- asking


def request_hand_over(
    session: Session, *, actor: Actor, caf_id: uuid.UUID, data: HandOver, now: datetime, source: str = "app"
) -> HandOverOutcome:
    """Ask the named practitioner to take the Lead Professional role (see the module doc). Asking again
    for the same practitioner returns the pending request; asking for another replaces it."""
    caf = _locked_caf(session, caf_id)
    child = load_child(session, caf.child_id)
    standing = require_caf_change(session, actor, caf, child, reason=data.reason, doing=HAND_OVER_DOING)
    if caf.status not in _OPEN:
        raise Conflict("The Lead Professional can change only while the CAF or TAC is open.")
    to = active_practitioner(session, data.to_practitioner_id)
    current = repo.current_lead(session, caf.child_id)
    if current is not None and current.practitioner_id == to.id:
        raise Conflict(f"{to.name} is already the Lead Professional.")
    pending = _pending(session, caf.id, [RequestKind.HAND_OVER.value], None)
    if pending is not None and pending.practitioner_id == to.id and actor.practitioner_id != to.id:
        return HandOverOutcome(request=pending)
    if pending is not None:
        pending.status = RequestStatus.REPLACED.value
        pending.answered_at, pending.answered_by = now, actor.subject
        session.add(pending)
        session.flush()
    if actor.role != Role.SYSTEM and actor.practitioner_id == to.id:
        assignment = hand_over_lead(session, actor=actor, caf_id=caf.id, data=data, now=now)
        _into_tac(session, caf, to.id, to.role, now)
        return HandOverOutcome(assignment=assignment)
    request = CafRequest(
        kind=RequestKind.HAND_OVER.value,
        child_id=caf.child_id,
        assessment_id=caf.id,
        practitioner_id=to.id,
        reason=data.reason,
        source=source,
        requester_id=_requester(actor),
        requested_by=actor.subject,
        created_at=now,
    )
    session.add(request)
    session.flush()
    detail = {"caf_id": caf.id.hex, "request_id": request.id.hex, "to": to.id.hex, **_by(standing)}
    if pending is not None:
        detail["replaces"] = pending.id.hex
    audit_change(session, actor, "lead-professional.hand-over.request", caf.child_id, detail)
    return HandOverOutcome(request=request)


def ask_to_join(
    session: Session, *, actor: Actor, caf_id: uuid.UUID, data: JoinAsk, now: datetime, source: str = "app"
) -> CafRequest:
    """Ask the CAF's holder and Lead Professional to let you join its TAC, with the role you would take."""
    if actor.role == Role.SYSTEM:
        raise NotAllowed("A practitioner asks to join a Team Around the Child themselves, signed in.")
    if actor.practitioner_id is None:
        raise NotAllowed(NOT_LINKED)
    me = active_practitioner(session, actor.practitioner_id)
    caf = _locked_caf(session, caf_id)
    active_child(session, caf.child_id, actor=actor)  # a record they may not read is not there
    if caf.status not in _TAC_OPEN:
        raise Conflict(
            "You can ask to join the Team Around the Child of a CAF that has started and is not closed."
        )
    parties = caf_parties(session, caf)
    if me.id in parties.holders:
        raise Conflict("You hold this CAF: add yourself to its Team Around the Child instead.")
    if me.id in parties.members:
        raise Conflict("You are already a member of this CAF's Team Around the Child.")
    _tac_not_closed(session, caf)
    pending = _pending(session, caf.id, [RequestKind.JOIN.value, RequestKind.INVITE.value], me.id)
    if pending is not None and pending.kind == RequestKind.INVITE.value:
        raise Conflict("You are already invited to join this Team Around the Child: accept the invitation.")
    if pending is not None:
        raise Conflict(
            f"You already asked to join on {pending.created_at:%d %B %Y}; the CAF's holder has not "
            "answered yet."
        )
    request = CafRequest(
        kind=RequestKind.JOIN.value,
        child_id=caf.child_id,
        assessment_id=caf.id,
        practitioner_id=me.id,
        role=data.role,
        reason=data.reason,
        source=source,
        requester_id=me.id,
        requested_by=actor.subject,
        created_at=now,
    )
    session.add(request)
    session.flush()
    detail: dict[str, Any] = {
        "caf_id": caf.id.hex,
        "request_id": request.id.hex,
        "to": [h.hex for h in parties.holders],
    }
    audit.append(
        session,
        actor=actor,
        action="tac.join.request",
        target_type="child",
        target_id=caf.child_id,
        detail=detail,
    )
    return request


def invite_to_tac(
    session: Session,
    *,
    actor: Actor,
    caf_id: uuid.UUID,
    practitioner_id: uuid.UUID,
    role: str,
    reason: str | None,
    now: datetime,
    source: str = "tac",
) -> CafRequest:
    """Invite a practitioner to join the CAF's TAC in `role`; they accept or decline. Who may invite is
    who may change the CAF. Inviting someone who already has a pending ask or invitation returns it;
    inviting a current member is refused (Conflict)."""
    role = (role or "").strip()
    if not role or len(role) > 80:
        raise InvalidInput(
            "Give the role they would take in the Team Around the Child (up to 80 characters)."
        )
    caf = _locked_caf(session, caf_id)
    child = load_child(session, caf.child_id)
    standing = require_caf_change(session, actor, caf, child, reason=reason, doing=INVITE_DOING)
    if caf.status not in _TAC_OPEN:
        raise Conflict("A TAC is formed from a CAF that has started and is not closed.")
    invited = active_practitioner(session, practitioner_id)
    if actor.role != Role.SYSTEM and actor.practitioner_id == invited.id:
        raise InvalidInput("You cannot invite yourself: ask to join, or add yourself to the TAC.")
    if invited.id in caf_parties(session, caf).members:
        raise Conflict(f"{invited.name} is already a member of this Team Around the Child.")
    _tac_not_closed(session, caf)
    pending = _pending(session, caf.id, [RequestKind.JOIN.value, RequestKind.INVITE.value], invited.id)
    if pending is not None:
        return pending
    request = CafRequest(
        kind=RequestKind.INVITE.value,
        child_id=caf.child_id,
        assessment_id=caf.id,
        practitioner_id=invited.id,
        role=role,
        reason=reason,
        source=source[:20],
        requester_id=_requester(actor),
        requested_by=actor.subject,
        created_at=now,
    )
    session.add(request)
    session.flush()
    detail = {"caf_id": caf.id.hex, "request_id": request.id.hex, "to": invited.id.hex, **_by(standing)}
    audit_change(session, actor, "tac.invite", caf.child_id, detail)
    return request


# --------------------------------------------------------------------------- answering


def answer_request(
    session: Session, *, actor: Actor, request_id: uuid.UUID, accept: bool, data: RequestAnswer, now: datetime
) -> CafRequest:
    """Accept or decline a request addressed to you. Not yours: 403; already answered, replaced, or its
    CAF closed: 409; either way nothing changes."""
    caf_id = session.exec(select(CafRequest.assessment_id).where(CafRequest.id == request_id)).first()
    if caf_id is None:
        raise NotFound("No request has that id.")
    caf = _locked_caf(session, caf_id)  # the CAF first, then the request: one lock order everywhere
    request: CafRequest = repo.get(session, CafRequest, request_id, for_update=True)
    _require_answerer(session, actor, request, caf)
    if request.status != RequestStatus.PENDING.value:
        raise Conflict(
            f"This request was already {request.status}; nothing changed.", request_status=request.status
        )
    allowed = _OPEN if request.kind == RequestKind.HAND_OVER.value else _TAC_OPEN
    if caf.status not in allowed:
        raise Conflict(f"This CAF is {caf.status.replace('_', ' ')}: the request can no longer be answered.")
    request.status = (RequestStatus.ACCEPTED if accept else RequestStatus.DECLINED).value
    request.answered_at, request.answered_by, request.answer_reason = now, actor.subject, data.reason
    session.add(request)
    session.flush()
    detail = {"caf_id": caf.id.hex, "request_id": request.id.hex}
    if request.kind == RequestKind.HAND_OVER.value:
        _answer_hand_over(session, actor, request, caf, accept, detail, now)
        return request
    if accept:
        tac = _into_tac(session, caf, request.practitioner_id, request.role or "member", now, form=True)
        detail["tac_id"] = tac.id.hex if tac is not None else ""
    prefix = "tac.join" if request.kind == RequestKind.JOIN.value else "tac.invite"
    requester = request.requester_id if request.kind == RequestKind.INVITE.value else request.practitioner_id
    if requester is not None:
        detail["requester"] = requester.hex
    audit_change(session, actor, f"{prefix}.{'accept' if accept else 'decline'}", caf.child_id, detail)
    return request


def _answer_hand_over(
    session: Session,
    actor: Actor,
    request: CafRequest,
    caf: Assessment,
    accept: bool,
    detail: dict[str, str],
    now: datetime,
) -> None:
    if request.requester_id is not None:
        detail["requester"] = request.requester_id.hex
    if not accept:
        detail["to"] = request.practitioner_id.hex
        audit_change(session, actor, "lead-professional.hand-over.decline", caf.child_id, detail)
        return
    to = active_practitioner(session, request.practitioner_id)
    current = repo.current_lead(session, caf.child_id)
    if current is not None:
        detail["from"] = current.practitioner_id.hex
    assign_lead(session, caf=caf, to=to, reason=request.reason or "", by=request.requested_by, now=now)
    _into_tac(session, caf, to.id, to.role, now)
    audit_change(session, actor, "lead-professional.hand-over", caf.child_id, detail)


def _require_answerer(session: Session, actor: Actor, request: CafRequest, caf: Assessment) -> None:
    """Hand-overs and invitations: the named practitioner; asks to join: the CAF's holder or Lead
    Professional (as they are now)."""
    me = actor.practitioner_id if actor.role != Role.SYSTEM else None
    if request.kind == RequestKind.JOIN.value:
        if me is None or me not in caf_parties(session, caf).holders:
            raise NotAllowed(
                "Only the CAF's holder or its Lead Professional can accept or decline an ask to join its "
                "Team Around the Child."
            )
        return
    if me is None or me != request.practitioner_id:
        raise NotAllowed("This request is addressed to someone else: only they can accept or decline it.")


def _tac_not_closed(session: Session, caf: Assessment) -> Tac | None:
    tac = repo.tac_for_caf(session, caf.id, for_update=True)
    if tac is not None and tac.status == TacStatus.CLOSED.value:
        raise Conflict("This TAC is closed.")
    return tac


def _into_tac(
    session: Session,
    caf: Assessment,
    practitioner_id: uuid.UUID,
    role: str,
    now: datetime,
    *,
    form: bool = False,
) -> Tac | None:
    """Make the practitioner a member of the CAF's TAC (formed first when `form` and there is none)."""
    tac = _tac_not_closed(session, caf)
    if tac is None:
        if not form:
            return None
        tac = Tac(child_id=caf.child_id, assessment_id=caf.id)
        session.add(tac)
        session.flush()
    if practitioner_id not in {m.practitioner_id for m in repo.tac_members(session, tac.id)}:
        session.add(TacMember(tac_id=tac.id, practitioner_id=practitioner_id, role=role[:80], joined_at=now))
        new_version(tac, now)
        session.add(tac)
        session.flush()
    return tac


# --------------------------------------------------------------------------- reading


def pending_hand_over(session: Session, caf_id: uuid.UUID) -> CafRequest | None:
    """The CAF's pending Lead Professional hand-over, if any (the card shows it)."""
    return _pending(session, caf_id, [RequestKind.HAND_OVER.value], None)


def pending_tac_request(session: Session, caf_id: uuid.UUID, practitioner_id: uuid.UUID) -> CafRequest | None:
    """A practitioner's pending ask to join, or invitation to, the CAF's TAC (the card says so)."""
    return _pending(session, caf_id, [RequestKind.JOIN.value, RequestKind.INVITE.value], practitioner_id)


def may_ask_to_join(session: Session, actor: Actor, caf: Assessment) -> bool:
    """Whether the card offers this actor "Ask to join" (ask_to_join says why not, when asked anyway)."""
    if actor.role == Role.SYSTEM or actor.practitioner_id is None or caf.status not in _TAC_OPEN:
        return False
    parties = caf_parties(session, caf)
    return actor.practitioner_id not in (*parties.holders, *parties.members)


def my_requests(session: Session, *, actor: Actor, limit: int = 200) -> list[RequestRead]:
    """Requests addressed to me (hand-overs and invitations naming me, asks to join a CAF I hold) and
    those I made, newest first."""
    me = actor.practitioner_id
    if me is None or actor.role == Role.SYSTEM:
        raise NotAllowed(NOT_LINKED)
    held = select(Assessment.id).where(
        or_(Assessment.initiator_id == me, Assessment.lead_practitioner_id == me)
    )
    stmt = (
        select(CafRequest)
        .where(
            or_(
                CafRequest.practitioner_id == me,
                CafRequest.requester_id == me,
                col(CafRequest.kind).in_([RequestKind.JOIN.value]) & col(CafRequest.assessment_id).in_(held),
            )
        )
        .order_by(col(CafRequest.created_at).desc())
        .limit(limit)
    )
    return [request_read(session, actor, r) for r in session.exec(stmt).all()]


def request_read(session: Session, actor: Actor, request: CafRequest) -> RequestRead:
    """A request as this actor sees it: a practitioner they may not see (shielded child, sensitive
    service) is not named; a pending request whose CAF has closed shows as lapsed."""
    caf: Assessment = repo.get(session, Assessment, request.assessment_id)
    child: Child = load_child(session, request.child_id)
    status = request.status
    allowed = _OPEN if request.kind == RequestKind.HAND_OVER.value else _TAC_OPEN
    if status == RequestStatus.PENDING.value and caf.status not in allowed:
        status = "lapsed"
    mine = False
    if status == RequestStatus.PENDING.value:
        try:
            _require_answerer(session, actor, request, caf)
            mine = True
        except NotAllowed:
            mine = False
    named = may_see_shielded(child, actor)
    return RequestRead(
        id=request.id,
        kind=request.kind,
        status=status,
        caf_id=request.assessment_id,
        child_id=request.child_id,
        practitioner=_contact(session, actor, request.practitioner_id, named or mine),
        requester=_contact(session, actor, request.requester_id, named or mine),
        role=request.role,
        reason=request.reason,
        created_at=request.created_at,
        answered_at=request.answered_at,
        mine_to_answer=mine,
    )


def _contact(
    session: Session, actor: Actor, practitioner_id: uuid.UUID | None, visible: bool
) -> Contact | None:
    if practitioner_id is None:
        return None
    if practitioner_id != actor.practitioner_id and not (
        visible
        and may_see_practitioner(
            actor, practitioner_id, repo.sensitive_practitioners(session, [practitioner_id])
        )
    ):
        return None
    practitioner, org = repo.practitioner_contact(session, practitioner_id)
    return Contact(
        name=practitioner.name,
        role=practitioner.role,
        organisation=org.name,
        phone=practitioner.phone or org.phone,
        email=practitioner.email or org.email,
    )
