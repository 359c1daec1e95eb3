"""A Team Around the Child's plan: its actions and its reviews, on every surface (the app API, the
pages, FHIR) through these use cases.

Who may change a plan is who may change its CAF (permissions.require_caf_change: its holders, TAC
members, the child's local delivery team, a directory admin; anyone but a holder gives a reason and
the holders are told). A plan belongs to a convened TAC: nothing is due, and no review held, before
the day it was convened. A review either finds the child's needs met, and closes the CAF and its TAC
(service.caf.close_caf), or reconvenes with the next review's date, which the TAC's
`next_review_date` follows.

A shielded child's plan is, to anyone who may not see the record's practitioners, not there (as an
unknown TAC id); an action's owner who works in a sensitive service is not named to those who may
not see them (directory.permissions).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session

from directory import audit
from directory import repository as repo
from directory.errors import Conflict, InvalidInput, NotFound, RuleBroken
from directory.models import (
    ActionChange,
    ActionCreate,
    ActionRead,
    ActionStatus,
    Actor,
    CafClose,
    Child,
    ReviewCreate,
    ReviewOutcome,
    ReviewRead,
    Tac,
    TacAction,
    TacReview,
    TacStatus,
)
from directory.models.plan import AREA_LABELS, FAMILY
from directory.permissions import may_see_practitioner, may_see_shielded
from directory.plan_repository import actions_of, reviews_of

# One home for the CAF's change rule and its telling of holders: the CAF use cases' own steps.
from directory.service.caf import _caf_to_change, _CafChange, _made_known, close_caf
from directory.service.card import _contact
from directory.service.common import (
    active_child,
    audit_change,
    changed,
    load_child,
    new_version,
    require_purpose,
)
from directory.visibility import require_readable

NEEDS_MET_REASON = "The TAC's review found the child's needs met."
"""The reason recorded when a review closes the CAF (no free text from the form)."""


def _no_such_tac() -> NotFound:
    return NotFound("No TAC has that id.")


def visible_tac(session: Session, actor: Actor, tac_id: uuid.UUID, *, for_update: bool = False) -> Tac:
    """The TAC, when this actor may see its plan: a shielded child's TAC is, to anyone who may not see
    the record's practitioners, an unknown id (as is a record they may not read at all)."""
    tac = repo.get(session, Tac, tac_id, for_update=for_update)
    if tac is None:
        raise _no_such_tac()
    child: Child = load_child(session, tac.child_id)
    require_readable(child, actor)
    if not may_see_shielded(child, actor):
        raise _no_such_tac()
    return tac  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _PlanChange:
    tac: Tac
    change: _CafChange
    convened_on: date


def _plan_to_change(
    session: Session, actor: Actor, tac_id: uuid.UUID, *, reason: str | None, doing: str
) -> _PlanChange:
    """The TAC (locked, with its CAF) once the actor may change its plan and it has one to change."""
    found = visible_tac(session, actor, tac_id)
    active_child(session, found.child_id, actor=actor)
    change = _caf_to_change(session, actor, found.assessment_id, reason=reason, doing=doing)
    tac: Tac = repo.get(session, Tac, tac_id, for_update=True)
    if tac.status == TacStatus.CLOSED.value:
        raise Conflict("This TAC is closed: its plan no longer changes.")
    if tac.convened_at is None:
        raise RuleBroken(
            "A TAC's plan is agreed when it meets: convene the TAC first, then record its actions and "
            "reviews."
        )
    return _PlanChange(tac, change, tac.convened_at.date())


def date_problem(day: date, convened_on: date, *, what: str = "An action's date") -> str | None:
    """What is wrong with a plan's date: before the TAC was convened (None: nothing)."""
    if day < convened_on:
        return f"{what} cannot be before the TAC was convened ({convened_on.strftime('%-d %B %Y')})."
    return None


def owner_problem(session: Session, tac: Tac, owner: uuid.UUID | str) -> str | None:
    """What is wrong with an action's owner: not a current member of the TAC (None: a member, or the
    family)."""
    if owner == FAMILY or owner in {m.practitioner_id for m in repo.tac_members(session, tac.id)}:
        return None
    return (
        "Whoever does an action is a current member of this TAC or the family: add them to the TAC "
        "first, or give the action to the family."
    )


def review_problems(
    held_on: date,
    outcome: ReviewOutcome,
    next_review_date: date | None,
    *,
    convened_on: date,
    today: date,
) -> dict[str, str]:
    """Everything wrong with a review, by field (empty: nothing): the one home of the review's rules."""
    problems: dict[str, str] = {}
    if held_on > today:
        problems["held_on"] = "A review is recorded once it has been held: its date is in the future."
    elif (wrong := date_problem(held_on, convened_on, what="A review")) is not None:
        problems["held_on"] = wrong
    if outcome == ReviewOutcome.RECONVENE:
        if next_review_date is None:
            problems["next_review_date"] = "Give the date of the next review when the TAC reconvenes."
        elif next_review_date <= today:
            problems["next_review_date"] = "The next review date must be in the future."
    elif next_review_date is not None:
        problems["next_review_date"] = (
            "A review that finds the child's needs met closes the TAC: leave out the next review date."
        )
    return problems


def _refuse(problems: dict[str, str]) -> None:
    """Refuse input with every problem found (the first as the message, all of them as `errors`)."""
    if problems:
        field, message = next(iter(problems.items()))
        raise InvalidInput(message, field=field, errors=problems)


def _event(plan: _PlanChange, **more: str) -> dict[str, str]:
    return {"caf_id": plan.change.caf.id.hex, "tac_id": plan.tac.id.hex, **more}


def add_action(
    session: Session, *, actor: Actor, tac_id: uuid.UUID, data: ActionCreate, now: datetime
) -> TacAction:
    """Add an action to a convened TAC's plan: its owner is a TAC member or the family."""
    plan = _plan_to_change(session, actor, tac_id, reason=data.reason, doing="change this TAC's plan")
    problems = {
        "due_date": date_problem(data.due_date, plan.convened_on),
        "owner": owner_problem(session, plan.tac, data.owner),
    }
    _refuse({k: v for k, v in problems.items() if v is not None})
    owner = None if isinstance(data.owner, str) else data.owner
    action = TacAction(
        tac_id=plan.tac.id,
        child_id=plan.tac.child_id,
        title=data.title,
        area=data.area.value,
        owner_practitioner_id=owner,
        due_date=data.due_date,
        created_at=now,
        updated_at=now,
    )
    session.add(action)
    changed(plan.tac, now)  # the CarePlan's lastUpdated and _history follow the TAC's change time
    session.add(plan.tac)
    session.flush()
    by = _made_known(
        session,
        actor,
        plan.change,
        action="tac.action.add",
        what="added an action to the plan of",
        reason=data.reason,
    )
    to = {"to": owner.hex} if owner is not None else {}
    audit_change(
        session, actor, "tac.action.add", plan.tac.child_id, _event(plan, action_id=action.id.hex, **to, **by)
    )
    return action


def change_action(
    session: Session,
    *,
    actor: Actor,
    tac_id: uuid.UUID,
    action_id: uuid.UUID,
    data: ActionChange,
    now: datetime,
) -> TacAction:
    """Mark an action done or dropped (or open again), or move its date."""
    if data.status is None and data.due_date is None:
        raise InvalidInput("Give the action's new status, its new date, or both.")
    plan = _plan_to_change(session, actor, tac_id, reason=data.reason, doing="change this TAC's plan")
    action = repo.get(session, TacAction, action_id, for_update=True)
    if action is None or action.tac_id != plan.tac.id:
        raise NotFound("This TAC's plan has no action with that id.")
    if data.due_date is not None:
        wrong = date_problem(data.due_date, plan.convened_on)
        _refuse({"due_date": wrong} if wrong else {})
        action.due_date = data.due_date
    if data.status is not None:
        action.status = data.status.value
    action.updated_at = now
    action.version += 1
    session.add(action)
    changed(plan.tac, now)
    session.add(plan.tac)
    session.flush()
    by = _made_known(
        session,
        actor,
        plan.change,
        action="tac.action.update",
        what="changed an action in the plan of",
        reason=data.reason,
    )
    to = {"to": action.owner_practitioner_id.hex} if action.owner_practitioner_id else {}
    audit_change(
        session,
        actor,
        "tac.action.update",
        plan.tac.child_id,
        _event(plan, action_id=action.id.hex, status=action.status, **to, **by),
    )
    return action  # type: ignore[no-any-return]


def record_review(
    session: Session, *, actor: Actor, tac_id: uuid.UUID, data: ReviewCreate, now: datetime
) -> TacReview:
    """Record a review: needs met closes the CAF and its TAC; reconvening sets the next review date."""
    plan = _plan_to_change(session, actor, tac_id, reason=data.reason, doing="record a review of this TAC")
    _refuse(
        review_problems(
            data.held_on, data.outcome, data.next_review_date, convened_on=plan.convened_on, today=now.date()
        )
    )
    review = TacReview(
        tac_id=plan.tac.id,
        child_id=plan.tac.child_id,
        held_on=data.held_on,
        outcome=data.outcome.value,
        next_review_date=data.next_review_date,
        family_has_plan=data.family_has_plan,
        recorded_at=now,
    )
    session.add(review)
    plan.tac.next_review_date = data.next_review_date
    new_version(plan.tac, now)
    session.add(plan.tac)
    session.flush()
    by = _made_known(
        session, actor, plan.change, action="tac.review", what="recorded a review of", reason=data.reason
    )
    audit_change(
        session,
        actor,
        "tac.review",
        plan.tac.child_id,
        _event(plan, review_id=review.id.hex, outcome=review.outcome, **by),
    )
    if data.outcome == ReviewOutcome.NEEDS_MET:
        close_caf(
            session, actor=actor, caf_id=plan.change.caf.id, data=CafClose(reason=NEEDS_MET_REASON), now=now
        )
    return review


# --------------------------------------------------------------------------- reading the plan


def _audit_read(session: Session, actor: Actor, tac: Tac, what: str) -> None:
    audit.append(
        session,
        actor=actor,
        action=f"tac.{what}.read",
        target_type="child",
        target_id=tac.child_id,
        detail={"tac_id": tac.id.hex},
    )


def list_actions(session: Session, *, actor: Actor, tac_id: uuid.UUID, today: date) -> list[ActionRead]:
    """A TAC's actions as this actor may see them (owners in a sensitive service withheld); audited."""
    require_purpose(actor)
    tac = visible_tac(session, actor, tac_id)
    rows = actions_of(session, tac.id)
    _audit_read(session, actor, tac, "actions")
    return actions_shown(session, actor, rows, today)


def actions_shown(session: Session, actor: Actor, rows: Sequence[TacAction], today: date) -> list[ActionRead]:
    """Actions as this actor may see them: an owner they may not see is 'withheld', never named."""
    owners = [r.owner_practitioner_id for r in rows if r.owner_practitioner_id is not None]
    sensitive = repo.sensitive_practitioners(session, owners)
    shown = []
    for row in rows:
        owner, owner_id, contact = FAMILY, None, None
        if row.owner_practitioner_id is not None:
            if may_see_practitioner(actor, row.owner_practitioner_id, sensitive):
                owner, owner_id = "practitioner", row.owner_practitioner_id
                contact = _contact(session, owner_id)
            else:
                owner = "withheld"
        shown.append(
            ActionRead(
                id=row.id,
                tac_id=row.tac_id,
                title=row.title,
                area=row.area,
                area_label=AREA_LABELS.get(row.area, row.area),
                owner=owner,
                owner_practitioner_id=owner_id,
                owner_contact=contact,
                due_date=row.due_date,
                status=row.status,
                overdue=row.status == ActionStatus.OPEN.value and row.due_date < today,
                version=row.version,
            )
        )
    return shown


def list_reviews(session: Session, *, actor: Actor, tac_id: uuid.UUID) -> list[ReviewRead]:
    """A TAC's reviews, latest first; audited."""
    require_purpose(actor)
    tac = visible_tac(session, actor, tac_id)
    rows = reviews_of(session, tac.id)
    _audit_read(session, actor, tac, "reviews")
    return [ReviewRead.model_validate(r, from_attributes=True) for r in rows]
