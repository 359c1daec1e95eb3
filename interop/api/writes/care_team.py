"""CareTeam writes: form the TAC of a child's open CAF, change its members, hand over the Lead
Professional, change its review date, convene it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from directory import repository as drepo
from directory import service
from directory.models import Assessment, Tac, TacConvene, TacMemberIn, TacUpdate, utcnow
from interop import mapping as m
from interop import picture
from interop import systems as S
from interop.api.context import Ctx, resource_id
from interop.api.writes.common import (
    Written,
    conditional,
    domain_input,
    hand_over,
    same_id,
    same_patient,
    shown,
    visible,
)
from interop.outcome import FhirError, mapped


def create_care_team(ctx: Ctx, body: dict[str, Any], *, if_none_exist: str | None = None) -> Written:
    """Form the TAC of the child's open CAF (status proposed) or form and convene it (active)."""
    ctx.need("CareTeam", "c")
    t = mapped(m.care_team_in, body)
    found = conditional(ctx, "CareTeam", if_none_exist)
    if found is not None:
        return found
    service.lapse_expired_signal(ctx.session, child_id=t.child_id, now=utcnow())
    caf = drepo.open_caf(ctx.session, t.child_id, for_update=True)
    if caf is None:
        raise FhirError(
            409,
            "conflict",
            "A TAC is formed from the child's open CAF, and this child has none: "
            "signal and start one first (Flag).",
            where="CareTeam.subject",
        )
    existing = drepo.tac_for_caf(ctx.session, caf.id)
    if existing is not None:
        raise FhirError(
            409,
            "conflict",
            f"This child's CAF already has a TAC: CareTeam/{existing.id}. Change it with PUT.",
            where="CareTeam",
        )
    tac = _apply_team(ctx, caf, None, t)
    ctx.pictures.forget(caf.child_id)
    return shown(ctx, 201, "CareTeam", str(tac.id), caf.child_id)


def update_care_team(ctx: Ctx, rid: str, body: dict[str, Any], *, expected: int | None) -> Written:
    """Change a TAC's members, its Lead Professional (a formal hand-over) or review date; convene it."""
    ctx.need("CareTeam", "u")
    same_id("CareTeam", rid, body)
    t = mapped(m.care_team_in, body)
    child_id, _current = visible(ctx, "CareTeam", rid)
    same_patient("CareTeam", t.child_id, child_id, "CareTeam.subject")
    tac = ctx.session.get(Tac, resource_id(rid, "CareTeam"))
    assert tac is not None
    service.check_version("TAC", picture.care_team_version(ctx.session, tac)[0], expected)
    caf = ctx.session.get(Assessment, tac.assessment_id)
    assert caf is not None
    _apply_team(ctx, caf, tac, t)
    ctx.pictures.forget(child_id)
    return shown(ctx, 200, "CareTeam", rid, child_id)


def _apply_team(ctx: Ctx, caf: Assessment, tac: Tac | None, t: m.CareTeamIn) -> Tac:
    """Bring a TAC to what a CareTeam says: add members, hand over the LP, remove members, convene."""
    now = utcnow()
    if t.status == "closed":
        raise FhirError(
            422,
            "business-rule",
            "A TAC closes with its CAF: close the CAF (PUT its Flag with code caf-closed).",
            where="CareTeam.status",
        )
    if tac is not None and tac.status == "convened" and t.status == "forming":
        raise FhirError(
            422, "business-rule", "A convened TAC cannot go back to proposed.", where="CareTeam.status"
        )
    current = {x.practitioner_id for x in drepo.tac_members(ctx.session, tac.id)} if tac else set()
    tac = _add_and_amend(ctx, caf, tac, t, current, now)
    hand_over(ctx, caf, t.lead_practitioner_id, t.reason, default="appointed by the TAC")
    wanted = dict(t.members)
    remove = [p for p in current if p not in wanted]
    if remove:
        data = domain_input(
            TacUpdate, "CareTeam.participant", remove_practitioner_ids=remove, reason=t.reason
        )
        tac = service.update_tac(ctx.session, actor=ctx.actor, caf_id=caf.id, data=data, now=now)
    if t.status == "convened" and tac.status == "forming":
        tac = _convene(ctx, tac, t, now)
    return tac


def _add_and_amend(
    ctx: Ctx, caf: Assessment, tac: Tac | None, t: m.CareTeamIn, current: set[uuid.UUID], now: datetime
) -> Tac:
    """Form the TAC, or add the participants new to it and change its review date and the family's
    part, when the CareTeam says something new."""
    add = [TacMemberIn(practitioner_id=p, role=r[:80]) for p, r in t.members if p not in current]
    review = t.next_review_date if tac is None or t.next_review_date != tac.next_review_date else None
    family = (
        t.family_participating
        if tac is None
        or (t.family_participating is not None and t.family_participating != tac.family_participating)
        else None
    )
    if tac is None or add or review is not None or family is not None:
        data = domain_input(
            TacUpdate,
            "CareTeam",
            add_members=add,
            next_review_date=review,
            family_participating=family,
            reason=t.reason,
        )
        return service.update_tac(ctx.session, actor=ctx.actor, caf_id=caf.id, data=data, now=now)
    return tac


def _convene(ctx: Ctx, tac: Tac, t: m.CareTeamIn, now: datetime) -> Tac:
    """Convene a forming TAC, on the review date given or the one it has."""
    when = t.next_review_date or tac.next_review_date
    if when is None:
        raise FhirError(
            400,
            "required",
            f"A TAC is convened with a review date: give the extension {S.EXT_NEXT_REVIEW}.",
            where="CareTeam.extension",
        )
    return service.convene_tac(
        ctx.session,
        actor=ctx.actor,
        tac_id=tac.id,
        data=domain_input(TacConvene, "CareTeam", next_review_date=when, reason=t.reason),
        now=now,
    )
