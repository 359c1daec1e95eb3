"""Change a child's details from the pages: the form (filled with the record as the reader may see
it), a check-your-answers step listing each change, then the change itself through the domain's one
use case (service.change_child), made against the version the form was opened at: if someone else
changed the record meanwhile, the form comes back with the record as it now stands and says so.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from auth.deps import RequireScope
from auth.policy import PRACTICE
from childindex.web.deps import check_csrf, csrf_refused, flash, refused, render, unit_of_work
from childindex.web.forms import FormData, FormErrors, build, date_field, text
from directory import repository as repo
from directory import service
from directory.errors import DomainError, InvalidInput, NotAllowed, NotFound, StaleVersion
from directory.http.config import practice
from directory.identifiers import normalise_postcode
from directory.models import Actor, Child, ChildCard, ChildChange, Role, Sex, utcnow

router = APIRouter(include_in_schema=False)

ROLES = PRACTICE | {Role.DATA_MANAGER}
SEXES = [(Sex.FEMALE, "Female"), (Sex.MALE, "Male"), (Sex.OTHER, "Other"), (Sex.UNKNOWN, "Not known")]
SCHOOL_KINDS = ("school", "early_years")
GP_KINDS = ("gp_practice",)
ADDRESS = ("line1", "line2", "town", "postcode")
FIELDS = (
    "version",
    "given",
    "middle",
    "family",
    "sex",
    *ADDRESS,
    "school_id",
    "gp_practice_id",
    "carer_name",
    "carer_relationship",
    "carer_pr",
    *(f"{p}-{part}" for p in ("dob", "born") for part in ("day", "month", "year")),
)
PEOPLE = ("end_", "pr_")  # per parent or carer on the record: ended; parental responsibility
STALE = (
    "Someone changed this record after you opened the form (it is now at version {version}). The form "
    "now shows the record as it stands: check it and make your change again."
)

_reading = Depends(RequireScope("directory.write", roles=ROLES, rate_limited=True))
_writing = Depends(RequireScope("directory.write", roles=ROLES))
_history_reader = Depends(RequireScope("directory.search", roles=ROLES, rate_limited=True))


def _record(
    db: Session, request: Request, actor: Actor, child_id: uuid.UUID
) -> tuple[ChildCard, dict[str, str]]:
    """The card as this reader may see it (an audited read) and the form's values from it."""
    card = service.read_card(
        db, actor=actor, child_id=child_id, now=utcnow(), fallback_team=practice(request).fallback_team
    )
    if card.status != "active":  # an archived or sealed record, read by whom may: read only
        raise InvalidInput("This record is not active: nothing more can be recorded on it.")
    child: Child = repo.get(db, Child, child_id)
    official = card.names[0] if card.names else None
    values = {
        "version": str(child.version),
        "given": official.given if official else "",
        "middle": (official.middle or "") if official else "",
        "family": official.family if official else "",
        "sex": card.sex,
    }
    if card.date_of_birth is not None:
        d = card.date_of_birth
        values.update({"dob-day": str(d.day), "dob-month": str(d.month), "dob-year": str(d.year)})
    if card.shield_notice is None:  # whereabouts only for those who may see them
        if card.address is not None:
            values.update({k: getattr(card.address, k) or "" for k in ADDRESS})
        values["school_id"] = str(child.school_id or "")
        values["gp_practice_id"] = str(child.gp_practice_id or "")
        values.update(
            {f"pr_{p.id}": "yes" if p.parental_responsibility else "no" for p in card.related_people}
        )
    return card, values


def parse_change(
    form: dict[str, Any], was: dict[str, str], card: ChildCard, today: date
) -> tuple[ChildChange, list[str]]:
    """The domain's ChildChange holding only what the form changes (so the access rule is asked about
    those fields alone), and the labels of the changes; or every problem at once."""
    errors: dict[str, str] = {}
    body: dict[str, Any] = {}
    labels: list[str] = []
    name = tuple(text(form, k) or "" for k in ("given", "middle", "family"))
    if name != tuple(was.get(k, "") for k in ("given", "middle", "family")):
        if not name[0]:
            errors["given"] = "Enter the child's given name"
        if not name[2]:
            errors["family"] = "Enter the child's family name"
        body["official_name"] = {"given": name[0], "middle": name[1] or None, "family": name[2]}
        labels.append("Name")
    try:
        if card.date_of_birth is not None:
            dob = date_field(form, "dob", "the date of birth", required=True)
            if dob != card.date_of_birth:
                body["date_of_birth"] = dob
                labels.append("Date of birth")
        else:
            born = date_field(form, "born", "the date of birth")
            if born is not None:
                body["born_on"] = born
                labels.append("Born")
    except FormErrors as exc:
        errors.update(exc.errors)
    for key in ("date_of_birth", "born_on"):
        if body.get(key) is not None:
            try:
                service.validate_birth(date_of_birth=body[key], expected_delivery_date=None, today=today)
            except DomainError as exc:
                errors["dob" if key == "date_of_birth" else "born"] = exc.message
    sex = text(form, "sex")
    if sex not in {s.value for s, _ in SEXES}:
        errors["sex"] = "Select the child's sex, or 'Not known'"
    elif sex != was.get("sex"):
        body["sex"] = sex
        labels.append("Sex")
    if card.shield_notice is None:
        _parse_whereabouts(form, was, body, labels, errors)
    carer = text(form, "carer_name")
    if carer:
        relationship = text(form, "carer_relationship")
        if not relationship:
            errors["carer_relationship"] = (
                "Enter who they are to the child, for example mother or foster carer"
            )
        body["add_related_people"] = [
            {
                "name": carer,
                "relationship": relationship or "",
                "parental_responsibility": text(form, "carer_pr") == "yes",
            }
        ]
        labels.append("A parent or carer to add")
    if errors:
        raise FormErrors(errors)
    # the one translation of validator errors into plain words (childindex/web/forms.py)
    return build(ChildChange, body, keys={"date_of_birth": "dob", "born_on": "born"}), labels


def _parse_whereabouts(
    form: dict[str, Any], was: dict[str, str], body: dict[str, Any], labels: list[str], errors: dict[str, str]
) -> None:
    """The address, school and GP practice parts of the change (shown only to those who may see them)."""
    address = {k: text(form, k) for k in ADDRESS}
    if any((address[k] or "") != was.get(k, "") for k in ADDRESS):
        if not address["line1"]:
            errors["line1"] = "Enter the first line of the address"
        if not address["postcode"]:
            errors["postcode"] = "Enter the postcode"
        elif normalise_postcode(address["postcode"]) is None:
            errors["postcode"] = "Enter a real UK postcode, like OX4 1AB"
        body["address"] = address
        labels.append("Address")
    _parse_people(form, was, body, labels)
    for key, label in (("school_id", "School or setting"), ("gp_practice_id", "GP practice")):
        chosen = text(form, key) or ""
        if chosen != was.get(key, ""):
            try:
                body[key] = str(uuid.UUID(chosen)) if chosen else None
            except ValueError:
                errors[key] = f"Choose the {label.lower()} from the list"
                continue
            labels.append(label)


def _parse_people(form: dict[str, Any], was: dict[str, str], body: dict[str, Any], labels: list[str]) -> None:
    """Parents and carers on the record: those no longer around the child, and parental responsibility
    given or taken (the ids are the card's: the domain refuses any other child's)."""
    ended, responsibility = [], []
    for key in [k for k in was if k.startswith("pr_")]:
        person = key.removeprefix("pr_")
        if text(form, f"end_{person}") == "yes":
            ended.append({"id": person})
        elif (chosen := text(form, key)) in ("yes", "no") and chosen != was[key]:
            responsibility.append({"id": person, "parental_responsibility": chosen == "yes"})
    if ended:
        body["end_related_people"] = ended
    if responsibility:
        body["parental_responsibility"] = responsibility
    if ended or responsibility:
        labels.append("Parents and carers")


def _options(db: Session) -> dict[str, Any]:
    return {
        "schools": [(str(o.id), o.name) for o in repo.organisations_of_kind(db, SCHOOL_KINDS)],
        "gps": [(str(o.id), o.name) for o in repo.organisations_of_kind(db, GP_KINDS)],
    }


def _form(
    request: Request,
    actor: Actor,
    child_id: uuid.UUID,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    with unit_of_work(request) as db:
        card, current = _record(db, request, actor, child_id)
        options = _options(db)
    return render(
        request,
        "details_form.html",
        actor=actor,
        card=card,
        values={**current, **(values or {})},
        errors=errors or {},
        sexes=SEXES,
        status_code=status_code,
        **options,
    )


@router.get("/children/{child_id}/details", name="web_child_details_form")
def web_child_details_form(child_id: uuid.UUID, request: Request, actor: Actor = _reading) -> Response:
    """Change a child's details: the form, filled with the record as you may see it (a read, audited)."""
    if actor.purpose is None:
        return RedirectResponse(f"/children/{child_id}", status_code=303)
    try:
        return _form(request, actor, child_id)
    except DomainError as exc:
        return refused(request, actor, exc, 404 if isinstance(exc, NotFound) else 409)


@router.post("/children/{child_id}/details", name="web_child_details")
def web_child_details(
    child_id: uuid.UUID, request: Request, form: FormData, actor: Actor = _writing
) -> Response:
    """Check the changes, then (confirmed) make them against the version the form was opened at."""
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    if actor.purpose is None:
        return RedirectResponse(f"/children/{child_id}", status_code=303)
    values = {
        k: str(v) for k, v in form.items() if isinstance(v, str) and (k in FIELDS or k.startswith(PEOPLE))
    }
    step = text(form, "step") or "check"
    try:
        if step == "change":
            return _form(request, actor, child_id, values=values)
        with unit_of_work(request) as db:
            card, was = _record(db, request, actor, child_id)
            options = _options(db)
        was["version"] = values.get("version", was["version"])
        change, labels = parse_change(form, was, card, date.today())
        if step != "confirm" or not labels:
            return render(
                request,
                "details_check.html",
                actor=actor,
                card=card,
                values=values,
                labels=labels,
                change=change,
                sex_label=dict(SEXES).get(Sex(change.sex)) if change.sex else None,
                org_names=dict(options["schools"] + options["gps"]),
            )
        with unit_of_work(request) as db:
            changed = service.change_child(
                db,
                actor=actor,
                child_id=child_id,
                change=change,
                today=date.today(),
                source="web",
                expected_version=int(values.get("version") or 0),
            )
    except FormErrors as exc:
        return _form(request, actor, child_id, values=values, errors=exc.errors, status_code=400)
    except StaleVersion as exc:
        current = exc.data.get("current_version", "?")
        return _form(
            request, actor, child_id, errors={"form": STALE.format(version=current)}, status_code=409
        )
    except DomainError as exc:
        if isinstance(exc, NotFound) and "child" in exc.message:
            return refused(request, actor, exc, 404)
        status = 403 if isinstance(exc, NotAllowed) else 400
        return _form(
            request, actor, child_id, values=values, errors={"form": exc.message}, status_code=status
        )
    flash(request, f"The record is changed: {', '.join(changed)}." if changed else "Nothing needed changing.")
    return RedirectResponse(f"/children/{child_id}", status_code=303)


@router.get("/children/{child_id}/history", name="web_child_history")
def web_child_history(child_id: uuid.UUID, request: Request, actor: Actor = _history_reader) -> Response:
    """The versions of a child's record: when, by which role, from where, which fields (audited)."""
    if actor.purpose is None:
        return RedirectResponse(f"/children/{child_id}", status_code=303)
    try:
        with unit_of_work(request) as db:
            child, versions = service.child_history(db, actor=actor, child_id=child_id)
            shielded_view = child.shielded and service.may_see_shielded(child, actor)  # the banner
    except DomainError as exc:
        return refused(request, actor, exc, 404 if isinstance(exc, NotFound) else 409)
    return render(
        request,
        "details_history.html",
        actor=actor,
        child_id=child_id,
        versions=reversed(versions),
        shielded_view=shielded_view,
    )
