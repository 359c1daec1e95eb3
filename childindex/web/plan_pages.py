"""A TAC's plan on the pages: forms add an action, change one, and record a review (the card's TAC
section shows the plan: childindex/web/plan_card.py). Each form checks every field
in one round and calls the domain's use case (directory/service/plan.py); nothing is decided here.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from sqlmodel import Session

from childindex.web.card_actions import Action, _as_non_holder, _caf_of, _make_routes, _part
from childindex.web.forms import FormErrors, date_field, text
from directory import repository as repo
from directory.errors import NotFound
from directory.models import (
    ActionChange,
    ActionCreate,
    ActionStatus,
    Actor,
    Assessment,
    Child,
    ChildCard,
    ReviewCreate,
    ReviewOutcome,
    Tac,
    TacAction,
    utcnow,
)
from directory.models.plan import AREA_LABELS, FAMILY, PLAN_DOMAINS, TITLE_MAX
from directory.permissions import caf_standing, require_caf_change
from directory.service import plan

router = APIRouter(include_in_schema=False)

TITLE_HINT = (
    f"At most {TITLE_MAX} characters, for example 'Book a hearing test'. No case notes, names or details "
    "about the child or family: those stay in your own service's records."
)
STATUSES = [
    (ActionStatus.OPEN.value, "Open"),
    (ActionStatus.DONE.value, "Done"),
    (ActionStatus.DROPPED.value, "Dropped"),
]
OUTCOMES = [
    (ReviewOutcome.RECONVENE.value, "Reconvene and revise the plan"),
    (ReviewOutcome.NEEDS_MET.value, "The child's needs are met: close the CAF and the Team Around the Child"),
]
YES_NO = [("yes", "Yes"), ("no", "No")]


def _tac_of(db: Session, actor: Actor, caf: Assessment) -> Tac:
    """The CAF's TAC, once the actor may see its plan and change it: refused before any field is read
    (a shielded child's TAC is, to those who may not see it, not there)."""
    tac = repo.tac_for_caf(db, caf.id)
    if tac is None:
        raise NotFound("This CAF has no Team Around the Child yet: add its members first.")
    plan.visible_tac(db, actor, tac.id)
    child = repo.get(db, Child, caf.child_id)
    if caf_standing(db, actor, caf, child) is None:
        require_caf_change(db, actor, caf, child, reason=None, doing="change this TAC's plan")
    return tac


def _convened_on(tac: Tac) -> date:
    # the domain refuses a plan for a TAC not yet convened, with its own words
    return tac.convened_at.date() if tac.convened_at else date.max


def _reason(
    db: Session, actor: Actor, caf: Assessment, form: dict[str, Any], errors: dict[str, str]
) -> str | None:
    try:
        return _as_non_holder(db, actor, caf, form)
    except FormErrors as exc:
        errors.update(exc.errors)
        return None


def _date(
    form: dict[str, Any], prefix: str, label: str, errors: dict[str, str], *, required: bool
) -> date | None:
    try:
        return date_field(form, prefix, label, required=required)
    except FormErrors as exc:
        errors.update(exc.errors)
        return None


def _add_action(
    db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request
) -> str:
    caf = _caf_of(db, child_id, form)
    tac = _tac_of(db, actor, caf)
    errors: dict[str, str] = {}
    reason = _reason(db, actor, caf, form, errors)
    title = text(form, "title")
    if title is None:
        errors["title"] = "Enter what is to be done"
    elif len(title) > TITLE_MAX:
        errors["title"] = f"What is to be done must be {TITLE_MAX} characters or fewer"
    area = text(form, "area")
    if area not in AREA_LABELS:
        errors["area"] = "Choose the area of need"
    owner_text = text(form, "owner")
    owner: uuid.UUID | str | None = owner_text if owner_text == FAMILY else _uuid(owner_text)
    if owner is None:
        errors["owner"] = "Choose who does it"
    elif (wrong := plan.owner_problem(db, tac, owner)) is not None:
        errors["owner"] = wrong
    due = _date(form, "due", "the date it is due by", errors, required=True)
    if due is not None and (late := plan.date_problem(due, _convened_on(tac))) is not None:
        errors["due"] = late
    if errors:
        raise FormErrors(errors)
    data = ActionCreate.model_validate(
        {"title": title, "area": area, "owner": owner, "due_date": due, "reason": reason}
    )
    plan.add_action(db, actor=actor, tac_id=tac.id, data=data, now=utcnow())
    return "The action is added to the plan."


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value or "")
    except ValueError:
        return None


def _change_action(
    db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request
) -> str:
    caf = _caf_of(db, child_id, form)
    tac = _tac_of(db, actor, caf)
    action_id = _uuid(text(form, "item"))
    if action_id is None:
        raise NotFound("This form does not say which action; go back to the record.")
    errors: dict[str, str] = {}
    reason = _reason(db, actor, caf, form, errors)
    status = text(form, "status")
    if status not in {s for s, _ in STATUSES}:
        errors["status"] = "Choose where the action stands"
    due = _date(form, "due", "the new date", errors, required=False)
    if due is not None and (late := plan.date_problem(due, _convened_on(tac))) is not None:
        errors["due"] = late
    if errors:
        raise FormErrors(errors)
    data = ActionChange.model_validate({"status": status, "due_date": due, "reason": reason})
    plan.change_action(db, actor=actor, tac_id=tac.id, action_id=action_id, data=data, now=utcnow())
    return "The action is changed."


_REVIEW_FIELDS = {"held_on": "held", "next_review_date": "next"}


def _review(db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request) -> str:
    caf = _caf_of(db, child_id, form)
    tac = _tac_of(db, actor, caf)
    errors: dict[str, str] = {}
    reason = _reason(db, actor, caf, form, errors)
    held = _date(form, "held", "the date the review was held", errors, required=True)
    outcome_text = text(form, "outcome")
    outcome = ReviewOutcome(outcome_text) if outcome_text in {o for o, _ in OUTCOMES} else None
    if outcome is None:
        errors["outcome"] = "Choose the review's outcome"
    next_review = _date(form, "next", "the next review date", errors, required=False)
    family = text(form, "family")
    if family not in ("yes", "no"):
        errors["family"] = "Say whether the family has a copy of the plan"
    if held is not None and outcome is not None and "next" not in errors:
        found = plan.review_problems(
            held, outcome, next_review, convened_on=_convened_on(tac), today=utcnow().date()
        )
        errors.update({_REVIEW_FIELDS[k]: v for k, v in found.items()})
    if errors:
        raise FormErrors(errors)
    data = ReviewCreate.model_validate(
        {
            "held_on": held,
            "outcome": outcome,
            "next_review_date": next_review,
            "family_has_plan": family == "yes",
            "reason": reason,
        }
    )
    plan.record_review(db, actor=actor, tac_id=tac.id, data=data, now=utcnow())
    if outcome == ReviewOutcome.NEEDS_MET or next_review is None:
        return (
            "The review is recorded. The child's needs are met: the CAF and its Team Around the Child "
            "are closed."
        )
    return f"The review is recorded. The next review is on {next_review:%-d %B %Y}."


def _plan_form(db: Session, actor: Actor, card: ChildCard, request: Request) -> dict[str, Any]:
    extra = {**_part(db, actor, card, request), "domains": PLAN_DOMAINS, "statuses": STATUSES}
    extra |= {"plan_outcomes": OUTCOMES, "yes_no": YES_NO, "title_hint": TITLE_HINT, "title_max": TITLE_MAX}
    item = _uuid(request.query_params.get("item"))
    if item is not None and card.tac is not None:
        row = repo.get(db, TacAction, item)
        if row is not None and row.tac_id == card.tac.id:
            extra["plan_action"] = plan.actions_shown(db, actor, [row], utcnow().date())[0]
    return extra


PLAN_ACTIONS = [
    Action("tac-action", "Add an action to the plan", "plan/action_new.html", _add_action, _plan_form),
    Action("tac-action-change", "Change an action", "plan/action_change.html", _change_action, _plan_form),
    Action("tac-review", "Record a review of the plan", "plan/review.html", _review, _plan_form),
]

for _action in PLAN_ACTIONS:
    _make_routes(_action, into=router)
