"""The early intervention panel, step up and step down in the pages (docs/panel.md): three card
actions (send to panel, step up, step down: a confirmation form and its submission each, served by
card_actions' machinery), the locality team's panel queue (/panel) and the decision form
(/panel/{caf_id}). Each calls the domain's use case; nothing is decided here."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from auth.deps import RequireScope
from auth.policy import PANEL_READERS
from childindex.panel_api import front_door_of
from childindex.web.card_actions import Action, _as_non_holder, _caf_of, _make_routes, _part
from childindex.web.deps import check_csrf, csrf_refused, flash, refused, render, unit_of_work
from childindex.web.forms import FormData, FormErrors, build, collect, text
from directory import repository as repo
from directory import service
from directory.errors import DomainError, InvalidInput, NotAllowed, NotFound
from directory.http.config import practice
from directory.models import Actor, ChildCard, utcnow
from directory.models.panel import PanelDecision, PanelSend, PractitionerSupport, StepDownIn, StepUpIn
from directory.service import panel, step_up

router = APIRouter(include_in_schema=False)
PanelReader = Annotated[Actor, Depends(RequireScope("directory.search", roles=PANEL_READERS))]
PanelDecider = Annotated[Actor, Depends(RequireScope("directory.write", roles=PANEL_READERS))]
MEMBER_ROWS = 5  # suggested members on the decision form
SUPPORT = [
    (PractitionerSupport.NONE, "None needed"),
    (PractitionerSupport.SUPERVISION, "Supervision"),
    (PractitionerSupport.JOINT_WORKING, "Joint working with an experienced practitioner"),
    (PractitionerSupport.TRAINING, "Training"),
    (PractitionerSupport.ADVICE, "Advice from the local delivery team"),
]
YES_NO = [("yes", "Yes"), ("no", "No")]
LEVELS = [(str(n), f"Level {n}") for n in range(1, 5)]


# --------------------------------------------------------------------------- card actions


def _send(db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request) -> str:
    caf = _caf_of(db, child_id, form)
    errors: dict[str, str] = {}
    reason = collect(errors, _as_non_holder, db, actor, caf, form)
    data = build(PanelSend, {"reason": reason}, {"reason": "the reason"}, errors=errors)
    panel.send_to_panel(db, actor=actor, caf_id=caf.id, data=data, now=utcnow())
    return (
        "The CAF is sent to the locality's early intervention panel. The local delivery team sees it in "
        "its panel queue and records the panel's decision."
    )


def _step_up(db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request) -> str:
    caf = _caf_of(db, child_id, form)
    errors: dict[str, str] = {}  # every problem in one round (childindex/web/forms.py)
    reason = collect(errors, _as_non_holder, db, actor, caf, form)
    if not text(form, "confirm"):
        errors["confirm"] = "Confirm that the case is stepped up to social care"
    data = build(StepUpIn, {"reason": reason}, {"reason": "the reason"}, errors=errors)
    door = front_door_of(request.app.state.settings)
    step_up.step_up(db, actor=actor, caf_id=caf.id, data=data, channels=door.channels, now=utcnow())
    return (
        "The CAF is stepped up: children's social care's front door is sent a referral, and the Team "
        "Around the Child is now the core group until social care steps it down."
    )


def _step_down(db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request) -> str:
    data = build(
        StepDownIn,
        {
            "lead_practitioner_id": text(form, "lead_practitioner_id"),
            "consent_id": text(form, "consent_id"),
            "reason": text(form, "reason"),
        },
        {
            "lead_practitioner_id": "the early help practitioner who becomes Lead Professional",
            "consent_id": "the family's consent",
            "reason": "the reason",
        },
    )
    caf = step_up.step_down(
        db,
        actor=actor,
        child_id=child_id,
        data=data,
        signal_days=practice(request).signal_expiry_days,
        now=utcnow(),
    )
    practitioner, _ = repo.practitioner_contact(db, data.lead_practitioner_id)
    opened = " A CAF and Team Around the Child are opened from the step-down." if caf.came_from else ""
    return f"The case is stepped down to early help.{opened} {practitioner.name} is the Lead Professional."


def _step_down_extra(db: Session, actor: Actor, card: ChildCard, request: Request) -> dict[str, Any]:
    return {
        "practitioners": repo.practitioners(db),
        "caf_consents": [c for c in card.consents if c.current and c.scope == "caf"],
        **_part(db, actor, card, request),
    }


ACTIONS = [
    Action("panel-send", "Send the CAF to the early intervention panel", "panel/send.html", _send, _part),
    Action("step-up", "Step up to children's social care", "panel/step_up.html", _step_up, _part),
    Action(
        "step-down",
        "Step down to early help",
        "panel/step_down.html",
        _step_down,
        _step_down_extra,
        roles=frozenset(step_up.SOCIAL_CARE),
    ),
]
for _action in ACTIONS:
    _make_routes(_action, router)


# --------------------------------------------------------------------------- the panel queue


@router.get("/panel", name="web_panel_queue")
def web_panel_queue(request: Request, actor: PanelReader, status: str = "waiting") -> Response:
    """The panel queue of the team's localities, oldest first. Audited."""
    status = status if status in ("waiting", "decided") else "waiting"
    with unit_of_work(request) as db:
        rows = panel.panel_queue(db, actor=actor, status=status)
    return render(request, "panel/queue.html", actor=actor, rows=rows, status=status)


def _decision_page(
    request: Request,
    actor: Actor,
    caf_id: uuid.UUID,
    *,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    with unit_of_work(request) as db:
        referral = panel.read_referral(db, actor=actor, caf_id=caf_id)
        card = service.read_card(
            db,
            actor=actor,
            child_id=referral.child_id,
            now=utcnow(),
            fallback_team=practice(request).fallback_team,
        )
        names = {
            s.practitioner_id: repo.practitioner_contact(db, s.practitioner_id)[0].name
            for s in referral.suggestions
        }
        practitioners = repo.practitioners(db)
    return render(
        request,
        "panel/decision.html",
        actor=actor,
        referral=referral,
        card=card,
        names=names,
        practitioners=practitioners,
        values=values,
        errors=errors or {},
        yes_no=YES_NO,
        levels=LEVELS,
        support=SUPPORT,
        rows=range(1, MEMBER_ROWS + 1),
        status_code=status_code,
    )


@router.get("/panel/{caf_id}", name="web_panel_decision_form")
def web_panel_decision_form(caf_id: uuid.UUID, request: Request, actor: PanelReader) -> Response:
    """A CAF sent to panel: the decision form, or the decision once recorded. Audited."""
    if actor.purpose is None:
        return RedirectResponse("/panel", status_code=303)
    try:
        return _decision_page(request, actor, caf_id, values={})
    except DomainError as exc:
        return refused(request, actor, exc, 404 if isinstance(exc, NotFound) else 403)


def _yes_no(form: dict[str, Any], name: str, question: str, errors: dict[str, str]) -> bool | None:
    value = text(form, name)
    if value not in ("yes", "no"):
        errors[name] = f"Say whether {question}"
        return None
    return value == "yes"


def decision_from_form(form: dict[str, Any]) -> PanelDecision:
    """The decision on the form; every missing or wrong answer reported at once."""
    errors: dict[str, str] = {}
    risk = _yes_no(form, "risk_of_harm", "a risk of harm was identified", errors)
    screened = _yes_no(form, "need_level_3_4_screened", "level of need 3 or 4 was screened", errors)
    tac = _yes_no(form, "tac_needed", "a Team Around the Child is needed", errors)
    level = text(form, "level_benchmark")
    if level not in {v for v, _ in LEVELS}:
        errors["level_benchmark"] = "Choose the level of need the panel benchmarks"
    members = []
    for n in range(1, MEMBER_ROWS + 1):
        who, role = text(form, f"member-{n}"), text(form, f"role-{n}")
        if who and not role:
            errors[f"role-{n}"] = f"Enter the role of suggested member {n}"
        elif role and not who:
            errors[f"member-{n}"] = f"Choose suggested member {n}, or clear their role"
        elif who and role:
            members.append({"practitioner_id": who, "role": role})
    body = {
        "risk_of_harm": risk,
        "need_level_3_4_screened": screened,
        "tac_needed": tac,
        "level_benchmark": level,
        "practitioner_support": text(form, "practitioner_support") or "none",
        "suggested_members": members,
        "reason": text(form, "reason"),
    }
    try:
        data = build(PanelDecision, body, {"practitioner_support": "the support for the practitioner"})
    except FormErrors as exc:
        for field, message in exc.errors.items():  # (a field already reported keeps its own message)
            errors.setdefault("member-1" if field == "suggested_members" else field, message)
        raise FormErrors(errors) from None
    if errors:
        raise FormErrors(errors)
    return data


@router.post("/panel/{caf_id}", name="web_panel_decision")
def web_panel_decision(caf_id: uuid.UUID, request: Request, form: FormData, actor: PanelDecider) -> Response:
    """Record the panel's decision (the child's local delivery team); back to the decision. Audited."""
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    values = {k: v for k, v in form.items() if k != "csrf_token"}
    try:
        data = decision_from_form(form)
        with unit_of_work(request) as db:
            panel.decide_panel(db, actor=actor, caf_id=caf_id, data=data, now=utcnow())
    except FormErrors as exc:
        return _decision_page(request, actor, caf_id, values=values, errors=exc.errors, status_code=400)
    except NotFound as exc:
        return refused(request, actor, exc, 404)
    except DomainError as exc:
        code = 403 if isinstance(exc, NotAllowed) else 400 if isinstance(exc, InvalidInput) else 409
        return _decision_page(
            request, actor, caf_id, values=values, errors={"form": exc.message}, status_code=code
        )
    flash(
        request,
        "The panel's decision is recorded, with the members it suggests for the Team Around the Child.",
    )
    return RedirectResponse(f"/panel/{caf_id}", status_code=303)
