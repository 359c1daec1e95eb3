"""Changes to a child's record from the pages: one confirmation form (GET) and one submission (POST)
per action (signal, start, complete and close a CAF; hand over the Lead Professional role; the TAC;
involvements; consents; the shield). Each calls the domain's use case; nothing is decided here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from auth.deps import RequireScope
from auth.policy import PRACTICE
from childindex.web import form_defaults, involvement_form
from childindex.web.deps import check_csrf, csrf_refused, flash, refused, render, unit_of_work
from childindex.web.forms import FormData, FormErrors, M, build, collect, date_field, many, text
from childindex.web.practice import SHIELD_ROLES
from directory import repository as repo
from directory import service
from directory.errors import CafAlreadyOpen, DomainError, NotAllowed, NotFound
from directory.http.config import practice
from directory.models import (
    Actor,
    Assessment,
    CafClose,
    CafComplete,
    CafOutcome,
    CafSignal,
    CafStart,
    Child,
    ChildCard,
    Consent,
    ConsentCreate,
    ConsentScope,
    ConsentWithdraw,
    HandOver,
    Involvement,
    InvolvementEnd,
    Practitioner,
    Role,
    ShieldClear,
    ShieldSet,
    TacConvene,
    TacMemberIn,
    TacUpdate,
    utcnow,
)

router = APIRouter(include_in_schema=False)

OUTCOMES = [
    (CafOutcome.NO_FURTHER_ACTION, "No further action"),
    (CafOutcome.NEEDS_MET_IN_SERVICE, "Needs met within the service"),
    (CafOutcome.MULTI_AGENCY_RESPONSE, "Multi-agency response needed (Team Around the Child)"),
    (CafOutcome.STEPPED_UP_TO_SOCIAL_CARE, "Stepped up to social care"),
]
CONSENT_SCOPES = [
    (ConsentScope.CAF, "An early help assessment (CAF) and the sharing it needs"),
    (ConsentScope.INFORMATION_SHARING, "Sharing information between services"),
    (ConsentScope.SENSITIVE_SEXUAL_HEALTH, "Recording a sexual health service"),
    (ConsentScope.SENSITIVE_SUBSTANCE_MISUSE, "Recording a substance misuse service"),
    (ConsentScope.SENSITIVE_MENTAL_HEALTH, "Recording a mental health service"),
    (ConsentScope.SENSITIVE_ALL, "Recording any sensitive service"),
]


@dataclass(frozen=True)
class Action:
    """One change to a child's record: a confirmation form (GET) and its submission (POST)."""

    slug: str
    title: str
    template: str
    perform: Callable[[Session, Actor, uuid.UUID, dict[str, Any], Request], str]
    extra: Callable[[Session, Actor, ChildCard, Request], dict[str, Any]] | None = None
    roles: frozenset[Role] = PRACTICE  # who may open and submit it (the route's policy)
    on_shielded: bool = False  # offered even when the card hides a shielded record's details
    # the answers the form opens with: what the signed-in person most likely means (issue #20)
    defaults: Callable[[Session, Actor, ChildCard, date], dict[str, Any]] | None = None


def _caf_of(db: Session, child_id: uuid.UUID, form: dict[str, Any]) -> Assessment:
    try:
        caf_id = uuid.UUID(text(form, "caf_id") or "")
    except ValueError:
        raise NotFound("This form does not name a CAF; go back to the record and start again.") from None
    caf = repo.get(db, Assessment, caf_id)
    if caf is None or caf.child_id != child_id:
        raise NotFound("That CAF is not this child's; go back to the record and start again.")
    return caf  # type: ignore[no-any-return]


def _item_of(db: Session, model: type, child_id: uuid.UUID, form: dict[str, Any]) -> Any:
    try:
        item_id = uuid.UUID(text(form, "item") or "")
    except ValueError:
        raise NotFound("This form does not say which entry; go back to the record.") from None
    row = repo.get(db, model, item_id)
    if row is None or row.child_id != child_id:
        raise NotFound("That entry is not on this child's record; go back to the record.")
    return row


def _signal(db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request) -> str:
    errors: dict[str, str] = {}
    if not text(form, "not_safeguarding"):
        errors["not_safeguarding"] = "Confirm that the child is not at risk of significant harm"
    if errors:
        raise FormErrors(errors)
    # The practitioner is the signed-in one (the domain refuses anyone not linked to a record).
    data = CafSignal(no_risk_of_significant_harm=True)
    service.signal_caf(
        db,
        actor=actor,
        child_id=child_id,
        data=data,
        signal_days=practice(request).signal_expiry_days,
        now=utcnow(),
    )
    return (
        "You have signalled that a CAF is starting. Everyone who looks at this record now sees "
        "it and who to contact. Next, record the family's consent and then start the assessment."
    )


def _as_non_holder(db: Session, actor: Actor, caf: Assessment, form: dict[str, Any]) -> str | None:
    """The reason for a change to a CAF the actor does not hold, confirmed on the form (the domain
    refuses it without one); None for one of its holders."""
    child = repo.get(db, Child, caf.child_id)
    standing = service.caf_standing(db, actor, caf, child)
    if standing is None or standing == service.Standing.HOLDER:
        return None  # (one who may not change it at all is refused by the use case)
    errors = {}
    if not text(form, "reason"):
        errors["reason"] = "Give the reason for this change: the practitioner who holds the CAF is told"
    if not text(form, "confirm_not_holder"):
        errors["confirm_not_holder"] = "Confirm that you are changing a CAF someone else holds"
    if errors:
        raise FormErrors(errors)
    return text(form, "reason")


def _start(db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request) -> str:
    caf = _caf_of(db, child_id, form)
    errors: dict[str, str] = {}  # every problem in one round (childindex/web/forms.py)
    reason = collect(errors, _as_non_holder, db, actor, caf, form)
    data = build(
        CafStart,
        {"consent_id": text(form, "consent_id"), "reason": reason},
        {"consent_id": "the consent"},
        chosen=("consent_id",),
        errors=errors,
    )
    service.start_caf(db, actor=actor, caf_id=caf.id, data=data, now=utcnow())
    return "The CAF is in progress."


def _complete(db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request) -> str:
    caf = _caf_of(db, child_id, form)
    errors: dict[str, str] = {}
    reason = collect(errors, _as_non_holder, db, actor, caf, form)
    data = build(
        CafComplete,
        {"outcome": text(form, "outcome"), "reason": reason},
        {"outcome": "the outcome"},
        chosen=("outcome",),
        errors=errors,
    )
    service.complete_caf(db, actor=actor, caf_id=caf.id, data=data, now=utcnow())
    return "The CAF is completed. It stays open until it is closed."


def _close(db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request) -> str:
    caf = _caf_of(db, child_id, form)
    errors: dict[str, str] = {}
    collect(errors, _as_non_holder, db, actor, caf, form)
    data = build(CafClose, {"reason": text(form, "reason")}, {"reason": "the reason"}, errors=errors)
    closed = service.close_caf(db, actor=actor, caf_id=caf.id, data=data, now=utcnow())
    return "The signal was withdrawn." if closed.status == "withdrawn" else "The CAF is closed."


def _hand_over(db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request) -> str:
    caf = _caf_of(db, child_id, form)
    errors: dict[str, str] = {}
    collect(errors, _as_non_holder, db, actor, caf, form)
    data = build(
        HandOver,
        {"to_practitioner_id": text(form, "to_practitioner_id"), "reason": text(form, "reason")},
        {"to_practitioner_id": "the new Lead Professional", "reason": "the reason for the hand-over"},
        chosen=("to_practitioner_id",),
        errors=errors,
    )
    outcome = service.request_hand_over(
        db, actor=actor, caf_id=caf.id, data=data, now=utcnow(), source="pages"
    )
    practitioner, org = repo.practitioner_contact(db, data.to_practitioner_id)
    if outcome.assignment is not None:
        return f"You are now the Lead Professional ({org.name})."
    return (
        f"{practitioner.name} ({org.name}) is asked to take on the Lead Professional role. They become "
        "Lead Professional when they accept; until then the current one stays."
    )


def _tac(db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request) -> str:
    caf = _caf_of(db, child_id, form)
    errors: dict[str, str] = {}
    reason = collect(errors, _as_non_holder, db, actor, caf, form)
    add = []
    for pid in many(form, "add"):
        practitioner = repo.get(db, Practitioner, uuid.UUID(pid)) if _is_uuid(pid) else None
        if practitioner is None:
            raise NotFound("One of the practitioners chosen is not in the directory.")
        add.append(TacMemberIn(practitioner_id=practitioner.id, role=practitioner.role))
    data = build(
        TacUpdate,
        {
            "add_members": add,
            "remove_practitioner_ids": [uuid.UUID(p) for p in many(form, "remove") if _is_uuid(p)],
            "next_review_date": collect(errors, date_field, form, "review", "the next review date"),
            "family_participating": text(form, "family") == "yes" if text(form, "family") else None,
            "reason": reason,
        },
        {
            "reason": "the reason",
            "next_review_date": "the next review date",
            "add_members": "the members to add",
            "remove_practitioner_ids": "the members to remove",
        },
        errors=errors,
        keys={"next_review_date": "review", "add_members": "add", "remove_practitioner_ids": "remove"},
    )
    service.update_tac(db, actor=actor, caf_id=caf.id, data=data, now=utcnow())
    return "The Team Around the Child is updated."


def _convene(db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request) -> str:
    caf = _caf_of(db, child_id, form)
    tac = repo.tac_for_caf(db, caf.id)
    if tac is None:
        raise NotFound("This CAF has no Team Around the Child yet: add its members first.")
    errors: dict[str, str] = {}
    reason = collect(errors, _as_non_holder, db, actor, caf, form)
    review = collect(errors, date_field, form, "review", "the next review date", required=True)
    data = build(
        TacConvene,
        {"next_review_date": review, "reason": reason},
        {"next_review_date": "the next review date", "reason": "the reason"},
        errors=errors,
        keys={"next_review_date": "review"},
    )
    service.convene_tac(db, actor=actor, tac_id=tac.id, data=data, now=utcnow())
    return "The Team Around the Child is convened. The local delivery team is told."


def _end_involvement(
    db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request
) -> str:
    involvement = _item_of(db, Involvement, child_id, form)
    errors: dict[str, str] = {}
    end = collect(errors, date_field, form, "end", "the end date", required=True)
    data = build(
        InvolvementEnd,
        {"end_date": end, "reason": text(form, "reason")},
        {"end_date": "the end date", "reason": "the reason"},
        errors=errors,
        keys={"end_date": "end"},
    )
    service.end_involvement(db, actor=actor, involvement_id=involvement.id, data=data)
    return "The involvement is ended."


def _consent(db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request) -> str:
    data = build(
        ConsentCreate,
        {
            "scope": text(form, "scope"),
            "given_by_kind": text(form, "given_by_kind"),
            "given_by_name": text(form, "given_by_name"),
            "related_person_id": text(form, "related_person_id"),
            "young_person_competent": True if text(form, "competent") else None,
        },
        {
            "scope": "what the consent covers",
            "given_by_kind": "who gave the consent",
            "given_by_name": "the name of the person who gave consent",
        },
    )
    service.record_consent(db, actor=actor, child_id=child_id, data=data)
    return "The consent is recorded."


def _withdraw(db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request) -> str:
    consent = _item_of(db, Consent, child_id, form)
    data = build(ConsentWithdraw, {"reason": text(form, "reason")}, {"reason": "the reason"})
    service.withdraw_consent(db, actor=actor, consent_id=consent.id, data=data)
    return "The consent is withdrawn. Anything it covered is hidden at once."


def _confirmed(form: dict[str, Any], model: type[M], unconfirmed: str, reason_label: str) -> M:
    """A reason model from the form, reporting a missing reason and a missing confirmation together."""
    errors: dict[str, str] = {}
    try:
        data = build(model, {"reason": text(form, "reason")}, {"reason": reason_label})
    except FormErrors as exc:
        errors.update(exc.errors)
    if not text(form, "confirm"):
        errors["confirm"] = unconfirmed
    if errors:
        raise FormErrors(errors)
    return data


def _shield(db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request) -> str:
    data = _confirmed(
        form, ShieldSet, "Confirm that the record should be shielded", "why the record is shielded"
    )
    service.set_shield(db, actor=actor, child_id=child_id, data=data)
    return (
        "The record is shielded. Only designated practitioners now see its address, contacts and the "
        "services involved; everyone else is told whom to ask."
    )


def _unshield(db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request) -> str:
    data = _confirmed(
        form, ShieldClear, "Confirm that it is safe to lift the shield", "why the shield is lifted"
    )
    service.clear_shield(db, actor=actor, child_id=child_id, data=data)
    return "The shield is lifted. Everyone allowed to see the record now sees its address and contacts."


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _part(db: Session, actor: Actor, card: ChildCard, request: Request) -> dict[str, Any]:
    return {"part": service.your_part(db, actor=actor, child_id=card.id)}


def _people(db: Session, actor: Actor, card: ChildCard, request: Request) -> dict[str, Any]:
    return {"practitioners": repo.practitioners(db), **_part(db, actor, card, request)}


ACTIONS = [
    Action("caf-signal", "Signal that you are starting a CAF", "actions/caf_signal.html", _signal),
    Action(
        "caf-start",
        "Start the CAF",
        "actions/caf_start.html",
        _start,
        _part,
        defaults=form_defaults.the_only_caf_consent,
    ),
    Action("caf-complete", "Record the CAF's outcome", "actions/caf_complete.html", _complete, _part),
    Action("caf-close", "Close the CAF", "actions/caf_close.html", _close, _part),
    Action(
        "lead-professional",
        "Hand over the Lead Professional role",
        "actions/hand_over.html",
        _hand_over,
        _people,
    ),
    Action("tac", "Team Around the Child", "actions/tac.html", _tac, _people),
    Action("tac-convene", "Convene the Team Around the Child", "actions/tac_convene.html", _convene, _part),
    Action(
        "involvement-new",
        "Record an involvement",
        "actions/involvement_new.html",
        involvement_form.record,
        involvement_form.catalogue,
        defaults=involvement_form.defaults,  # my service, me, today (childindex/web/involvement_form.py)
    ),
    Action(
        "involvement-end",
        "End an involvement",
        "actions/involvement_end.html",
        _end_involvement,
        defaults=form_defaults.ended_today,
    ),
    Action("consent-new", "Record a consent", "actions/consent_new.html", _consent),
    Action("consent-withdraw", "Withdraw a consent", "actions/consent_withdraw.html", _withdraw),
    Action("shield", "Shield this record", "actions/shield.html", _shield, roles=SHIELD_ROLES),
    Action(
        "shield-clear",
        "Lift the shield",
        "actions/shield_clear.html",
        _unshield,
        roles=SHIELD_ROLES,
        on_shielded=True,
    ),
]


def _action_page(
    request: Request,
    actor: Actor,
    action: Action,
    child_id: uuid.UUID,
    *,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    conflict: CafAlreadyOpen | None = None,
    status_code: int = 200,
    fresh: bool = False,
) -> Response:
    if actor.purpose is None:  # asked first; then on to this form (after a sign-in, say)
        return RedirectResponse(f"/children/{child_id}?then={action.slug}", status_code=303)
    with unit_of_work(request) as db:
        card = service.read_card(
            db, actor=actor, child_id=child_id, now=utcnow(), fallback_team=practice(request).fallback_team
        )
        extra = action.extra(db, actor, card, request) if action.extra else {}
        if fresh and action.defaults is not None:  # a new form, not one sent back to be put right
            values = {**action.defaults(db, actor, card, utcnow().date()), **values}
    if card.shield_notice is not None and not action.on_shielded:
        return render(
            request,
            "message.html",
            actor=actor,
            title="This record is shielded",
            message=card.shield_notice.message,
            status_code=403,
        )
    return render(
        request,
        action.template,
        actor=actor,
        action=action,
        card=card,
        values=values,
        errors=errors or {},
        conflict=conflict,
        outcomes=OUTCOMES,
        consent_scopes=CONSENT_SCOPES,
        status_code=status_code,
        **extra,
    )


def _next_step(action: Action, child_id: uuid.UUID) -> tuple[str, str] | None:
    """The link a done action's message offers: after a CAF signal, recording the consent it needs."""
    if action.slug == "caf-signal":
        return ("Record the consent", f"/children/{child_id}/consent-new?scope=caf")
    return None


def _make_routes(action: Action, into: APIRouter = router) -> None:
    # A default, not an annotation: each action carries its own policy (who may shield differs).
    allowed = Depends(RequireScope("directory.write", roles=action.roles))
    # The form shows the record: a read, counted as a card read is.
    reading = Depends(RequireScope("directory.write", roles=action.roles, rate_limited=True))

    def form_page(child_id: uuid.UUID, request: Request, actor: Actor = reading) -> Response:
        values = {k: v for k, v in request.query_params.items() if k in ("item", "scope")}
        try:
            return _action_page(request, actor, action, child_id, values=values, fresh=True)
        except DomainError as exc:
            return refused(request, actor, exc, 404 if isinstance(exc, NotFound) else 409)

    def submit(child_id: uuid.UUID, request: Request, form: FormData, actor: Actor = allowed) -> Response:
        if not check_csrf(request, form):
            return csrf_refused(request, actor)
        values = {k: v for k, v in form.items() if k != "csrf_token"}
        try:
            with unit_of_work(request) as db:
                message = action.perform(db, actor, child_id, form, request)
        except FormErrors as exc:
            return _action_page(
                request, actor, action, child_id, values=values, errors=exc.errors, status_code=400
            )
        except CafAlreadyOpen as exc:
            return _action_page(
                request, actor, action, child_id, values=values, conflict=exc, status_code=409
            )
        except DomainError as exc:
            return _action_page(
                request,
                actor,
                action,
                child_id,
                values=values,
                errors={"form": exc.message},
                status_code=403 if isinstance(exc, NotAllowed) else 409,
            )
        flash(request, message, _next_step(action, child_id))
        return RedirectResponse(f"/children/{child_id}", status_code=303)

    name = "web_" + action.slug.replace("-", "_")
    form_page.__doc__ = f"{action.title}: the confirmation form."
    submit.__doc__ = f"{action.title}: carry it out (audited) and go back to the record."
    into.add_api_route(
        f"/children/{{child_id}}/{action.slug}", form_page, methods=["GET"], name=f"{name}_form"
    )
    into.add_api_route(f"/children/{{child_id}}/{action.slug}", submit, methods=["POST"], name=name)


for _action in ACTIONS:
    _make_routes(_action)
