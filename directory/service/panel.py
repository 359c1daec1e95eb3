"""The early intervention panel: a completed CAF whose outcome calls for a multi-agency response is
sent to the child's locality panel by whoever may change it; the child's local delivery team sees its
localities' panel queue and records the panel's decision, whose suggested members become TAC
invitations (`_invite_suggested`). Codes and short fields only (docs/panel.md)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from directory import audit
from directory import repository as repo
from directory.errors import Conflict, InvalidInput, NotAllowed, NotFound
from directory.models import (
    Actor,
    Assessment,
    CafOutcome,
    CafStatus,
    Child,
    ChildName,
    Locality,
    PanelReferral,
    PanelSuggestion,
    Role,
)
from directory.models.panel import (
    PanelDecision,
    PanelReferralRead,
    PanelSend,
    PanelStatus,
    SuggestedMember,
    SuggestionRead,
    SuggestionStatus,
)
from directory.names import names_shown
from directory.permissions import (
    SHIELD_VIEWERS,
    ask_contact,
    caf_parties,
    caf_standing,
    covers_child,
    how_to_reach,
    is_locality_team,
)
from directory.service.access import active_practitioner
from directory.service.caf import _caf_to_change, _made_known
from directory.service.common import active_child, audit_change, load_child, new_version
from directory.service.requests import invite_to_tac
from directory.visibility import may_read_record

PANEL_TEAM = frozenset({Role.LOCAL_DELIVERY_TEAM, Role.DIRECTORY_ADMIN})
"""Who sees a panel queue and records decisions (the child's own team: permissions.is_locality_team)."""

SAFEGUARDING_ADVICE = (
    "The panel identified a risk of harm: follow your safeguarding procedures and refer to children's "
    "social care now. No Team Around the Child is suggested."
)


def send_to_panel(
    session: Session, *, actor: Actor, caf_id: uuid.UUID, data: PanelSend, now: datetime
) -> PanelReferral:
    """Send a completed CAF calling for a multi-agency response to the child's locality panel."""
    change = _caf_to_change(session, actor, caf_id, reason=data.reason, doing="send this CAF to panel")
    caf, child = change.caf, change.child
    active_child(session, caf.child_id, actor=actor)
    if caf.status != CafStatus.COMPLETED.value or caf.outcome != CafOutcome.MULTI_AGENCY_RESPONSE.value:
        raise Conflict(
            "Only a completed CAF whose outcome calls for a multi-agency response goes to panel; "
            f"this one is {caf.status.replace('_', ' ')}"
            f"{' with outcome ' + caf.outcome.replace('_', ' ') if caf.outcome else ''}.",
            caf_status=caf.status,
        )
    if _referral_for(session, caf.id) is not None:
        raise Conflict("This CAF has already been sent to panel.", caf_id=str(caf.id))
    referral = PanelReferral(
        caf_id=caf.id,
        child_id=child.id,
        locality_id=child.locality_id,
        sent_by=actor.subject,
        sent_by_practitioner_id=actor.practitioner_id,
        sent_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(referral)
            session.flush()
    except IntegrityError:  # lost the race: someone sent it a moment before
        raise Conflict("This CAF has already been sent to panel.", caf_id=str(caf.id)) from None
    by = _made_known(
        session, actor, change, action="caf.panel.send", what="sent to panel", reason=data.reason
    )
    audit_change(
        session,
        actor,
        "caf.panel.send",
        child.id,
        {"caf_id": caf.id.hex, "referral_id": referral.id.hex, **by},
        note=data.reason,
    )
    return referral


def _referral_for(session: Session, caf_id: uuid.UUID, *, for_update: bool = False) -> PanelReferral | None:
    stmt = select(PanelReferral).where(PanelReferral.caf_id == caf_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.exec(stmt).first()


def _require_panel_team(session: Session, actor: Actor, child: Child) -> None:
    """The child's own local delivery team (or a directory admin covering the child) decides."""
    if is_locality_team(session, actor, child):
        return
    if actor.role == Role.DIRECTORY_ADMIN and covers_child(session, actor, child):
        return
    ask = ask_contact(session, child)
    raise NotAllowed(
        f"Only the child's local delivery team records the panel's decision. Ask {ask.name}"
        f"{how_to_reach(ask)}.",
        ask=ask.model_dump(),
    )


def _check_decision(session: Session, data: PanelDecision) -> None:
    """The decision's own rules: a risk of harm suggests no TAC; suggestions only with a TAC, once each,
    of active practitioners."""
    if data.risk_of_harm and (data.tac_needed or data.suggested_members):
        raise InvalidInput(
            "The panel identified a risk of harm: the decision is to follow safeguarding procedures, "
            "so no Team Around the Child is suggested. Untick 'TAC needed' and remove the members.",
            field="tac_needed",
        )
    if data.suggested_members and not data.tac_needed:
        raise InvalidInput(
            "Members are suggested only when a Team Around the Child is needed.", field="suggested_members"
        )
    ids = [m.practitioner_id for m in data.suggested_members]
    if len(set(ids)) != len(ids):
        raise InvalidInput("A practitioner is suggested twice; name each once.", field="suggested_members")
    for member in data.suggested_members:
        active_practitioner(session, member.practitioner_id)


def decide_panel(
    session: Session, *, actor: Actor, caf_id: uuid.UUID, data: PanelDecision, now: datetime
) -> PanelReferral:
    """Record the panel's decision on a CAF sent to panel; its suggested members become invitations."""
    caf = repo.get(session, Assessment, caf_id)
    if caf is None:
        raise NotFound("No CAF has that id.")
    child = load_child(session, caf.child_id)
    _require_panel_team(session, actor, child)
    active_child(session, child.id, actor=actor)
    referral = _referral_for(session, caf.id, for_update=True)
    if referral is None:
        raise Conflict(
            "This CAF has not been sent to panel: its holder sends it once it is completed with a "
            "multi-agency outcome.",
            caf_id=str(caf.id),
        )
    if referral.status != PanelStatus.WAITING.value:
        raise Conflict("The panel's decision on this CAF is already recorded.", referral_id=str(referral.id))
    _check_decision(session, data)
    referral.status = PanelStatus.DECIDED.value
    referral.decided_at = now
    referral.decided_by = actor.subject
    referral.risk_of_harm = data.risk_of_harm
    referral.need_level_3_4_screened = data.need_level_3_4_screened
    referral.tac_needed = data.tac_needed
    referral.practitioner_support = data.practitioner_support.value
    referral.level_benchmark = data.level_benchmark
    referral.reason = data.reason
    new_version(referral, now)
    session.add(referral)
    session.flush()
    _invite_suggested(session, actor=actor, referral=referral, members=data.suggested_members, now=now)
    audit_change(
        session,
        actor,
        "caf.panel.decision",
        child.id,
        {
            "caf_id": caf.id.hex,
            "referral_id": referral.id.hex,
            "risk_of_harm": str(data.risk_of_harm).lower(),
            "tac_needed": str(data.tac_needed).lower(),
            "level": str(data.level_benchmark),
        },
        note=data.reason,
    )
    return referral


def _invite_suggested(
    session: Session,
    *,
    actor: Actor,
    referral: PanelReferral,
    members: Sequence[SuggestedMember],
    now: datetime,
) -> list[PanelSuggestion]:
    """The one place the panel's suggested members become TAC invitations (directory/service/requests.py):
    each suggestion is recorded, and each suggested practitioner not yet in the TAC is invited, to accept
    or decline. A current member (or whoever records the decision) is recorded as suggested only."""
    rows = []
    caf = repo.get(session, Assessment, referral.caf_id)
    members_now = caf_parties(session, caf).members if caf is not None else set()
    for member in members:
        row = PanelSuggestion(
            referral_id=referral.id,
            child_id=referral.child_id,
            practitioner_id=member.practitioner_id,
            role=member.role,
            created_at=now,
        )
        if (
            referral.tac_needed
            and member.practitioner_id not in members_now
            and member.practitioner_id != (actor.practitioner_id)
        ):
            invite_to_tac(
                session,
                actor=actor,
                caf_id=referral.caf_id,
                practitioner_id=member.practitioner_id,
                role=member.role,
                reason="The early intervention panel suggested you for the Team Around the Child.",
                now=now,
                source="panel",
            )
            row.status = SuggestionStatus.INVITED.value
        session.add(row)
        rows.append(row)
    session.flush()
    return rows


# --------------------------------------------------------------------------- reading


def _suggestions(
    session: Session, referral_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[SuggestionRead]]:
    """The suggestions of these referrals, in the order they were made."""
    out: dict[uuid.UUID, list[SuggestionRead]] = {r: [] for r in referral_ids}
    if not referral_ids:
        return out
    rows = session.exec(
        select(PanelSuggestion)
        .where(col(PanelSuggestion.referral_id).in_(list(referral_ids)))
        .order_by(col(PanelSuggestion.created_at), col(PanelSuggestion.id))
    ).all()
    for row in rows:
        out[row.referral_id].append(SuggestionRead.model_validate(row))
    return out


def _read(
    referral: PanelReferral, suggestions: list[SuggestionRead], localities: dict[uuid.UUID, str]
) -> PanelReferralRead:
    return PanelReferralRead(
        id=referral.id,
        caf_id=referral.caf_id,
        child_id=referral.child_id,
        locality=localities.get(referral.locality_id) if referral.locality_id else None,
        status=referral.status,
        sent_at=referral.sent_at,
        decided_at=referral.decided_at,
        risk_of_harm=referral.risk_of_harm,
        need_level_3_4_screened=referral.need_level_3_4_screened,
        tac_needed=referral.tac_needed,
        practitioner_support=referral.practitioner_support,
        level_benchmark=referral.level_benchmark,
        advice=SAFEGUARDING_ADVICE if referral.risk_of_harm else None,
        suggestions=suggestions,
    )


def _locality_codes(session: Session) -> dict[uuid.UUID, str]:
    return {loc.id: loc.code for loc in session.exec(select(Locality)).all()}


def referral_read(session: Session, referral: PanelReferral) -> PanelReferralRead:
    """A referral with its decision and suggestions (codes and ids only)."""
    return _read(referral, _suggestions(session, [referral.id])[referral.id], _locality_codes(session))


def read_referral(session: Session, *, actor: Actor, caf_id: uuid.UUID) -> PanelReferralRead:
    """The panel referral of a CAF: for the child's locality team, and whoever may change the CAF."""
    caf = repo.get(session, Assessment, caf_id)
    if caf is None:
        raise NotFound("No CAF has that id.")
    child = load_child(session, caf.child_id)
    if not may_read_record(child, actor):
        raise NotFound("No CAF has that id.")
    if caf_standing(session, actor, caf, child) is None:
        _require_panel_team(session, actor, child)
    referral = _referral_for(session, caf.id)
    if referral is None:
        raise NotFound("This CAF has not been sent to panel.", caf_id=str(caf.id))
    audit.append(
        session,
        actor=actor,
        action="caf.panel.read",
        target_type="child",
        target_id=child.id,
        detail={"caf_id": caf.id.hex, "referral_id": referral.id.hex},
    )
    return referral_read(session, referral)


def panel_queue(
    session: Session, *, actor: Actor, status: str = PanelStatus.WAITING.value, limit: int = 100
) -> list[tuple[PanelReferralRead, str]]:
    """The referrals of the actor's localities (all of them for a grant without localities), oldest
    first, each with the child's name as this actor may see it. Every child listed is audited."""
    if actor.role not in PANEL_TEAM:
        raise NotAllowed("Only a local delivery team sees a panel queue.")
    stmt = (
        select(PanelReferral, Child)
        .join(Child, col(Child.id) == col(PanelReferral.child_id))
        .where(PanelReferral.status == status)
        .order_by(col(PanelReferral.sent_at), col(PanelReferral.id))
        .limit(limit)
    )
    if actor.localities:
        codes = list(actor.localities)
        stmt = stmt.where(
            col(Child.locality_id).in_(select(Locality.id).where(col(Locality.code).in_(codes)))
        )
    found = [(r, c) for r, c in session.exec(stmt).all() if may_read_record(c, actor)]
    listed = [child.id for _, child in found]
    names: dict[uuid.UUID, list[ChildName]] = {c: [] for c in listed}
    if listed:
        for n in session.exec(select(ChildName).where(col(ChildName.child_id).in_(listed))).all():
            names[n.child_id].append(n)
    suggestions = _suggestions(session, [r.id for r, _ in found])
    localities = _locality_codes(session)
    out = []
    for referral, child in found:
        ordered = sorted(names[child.id], key=lambda n: repo.name_order(n.use, n.until))
        shown = names_shown(ordered, shielded=child.shielded, entitled=actor.role in SHIELD_VIEWERS)
        name = f"{shown[0].given} {shown[0].family}".strip() if shown else "(no name recorded)"
        out.append((_read(referral, suggestions[referral.id], localities), name))
    audit.append(
        session,
        actor=actor,
        action="caf.panel.queue",
        detail={"status": status, "count": len(out)},
        children=listed,
    )
    return out
