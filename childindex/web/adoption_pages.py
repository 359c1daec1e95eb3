"""Recording an adoption in the pages (the adoption team, issue #22 item 4; docs/lifecycle.md): from
the card of an active record, the adoptive identity and the involvements to carry over (chosen one by
one, none by default), a check-your-answers step, then `service.adoption.adopt` and a page with the
link to the new record. The birth record is then sealed: to everyone outside the adoption team it,
any page that names it and any link to it answer exactly as an unknown id (directory/visibility.py),
and no page outside the team links the two records (the link is shown on the card to the team only:
record_pages.card_extras).
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from auth.deps import RequireScope
from childindex.web.deps import check_csrf, csrf_refused, refused, render, unit_of_work
from childindex.web.forms import FormData, FormErrors, build, date_field, many, text
from childindex.web.record_pages import NOT_ACTIVE, read_only
from directory import service
from directory.errors import DomainError, InvalidInput, NotFound
from directory.http.config import practice
from directory.identifiers import is_valid_nhs_number, normalise_nhs_number, normalise_postcode
from directory.models import Actor, AdoptionCreate, ChildCard, Sex, utcnow
from directory.service import adoption
from directory.visibility import SEALED_READERS

router = APIRouter(include_in_schema=False)

AdoptionOfficer = Annotated[Actor, Depends(RequireScope("directory.write", roles=SEALED_READERS))]

SEXES = [("", "The same as on the birth record"), *((s.value, s.value.capitalize()) for s in Sex)]
FIELDS = (
    "given",
    "middle",
    "family",
    "nhs_number",
    "sex",
    "line1",
    "town",
    "postcode",
    "dob-day",
    "dob-month",
    "dob-year",
)


def carriable(card: ChildCard) -> list[tuple[str, str, bool]]:
    """The involvements the form offers (id, label, whether it can be carried): the card's active
    ones as the officer may see them; a sensitive one cannot be carried (its consent stays behind)."""
    return [
        (str(inv.id), f"{inv.service_name} ({inv.role})", not inv.sensitive)
        for inv in card.involvements
        if inv.status == "active"
    ]


def parse_adoption(form: dict[str, Any], card: ChildCard, today: date) -> AdoptionCreate:
    """The adoptive identity as the form gives it (`AdoptionCreate`), or every problem at once."""
    errors: dict[str, str] = {}
    given, middle, family = (text(form, k) for k in ("given", "middle", "family"))
    if not given:
        errors["given"] = "Enter the child's adoptive given name"
    if not family:
        errors["family"] = "Enter the child's adoptive family name"
    body: dict[str, Any] = {"names": [{"given": given or "", "middle": middle, "family": family or ""}]}
    nhs = text(form, "nhs_number")
    if nhs is not None:
        if not is_valid_nhs_number(nhs):
            errors["nhs_number"] = "Enter a real NHS number of 10 digits, or leave it empty"
        body["nhs_number"] = normalise_nhs_number(nhs)
    try:
        dob = date_field(form, "dob", "the date of birth")
        if dob is not None:
            service.validate_birth(date_of_birth=dob, expected_delivery_date=None, today=today)
            body["date_of_birth"] = dob
    except FormErrors as exc:
        errors.update(exc.errors)
    except DomainError as exc:
        errors["dob"] = exc.message
    sex = text(form, "sex")
    if sex is not None:
        if sex not in {s.value for s in Sex}:
            errors["sex"] = "Select the child's sex, or the same as on the birth record"
        body["sex"] = sex
    _parse_address(form, body, errors)
    offered = {key: ok for key, _, ok in carriable(card)}
    chosen = many(form, "carry")
    if any(not offered.get(c, False) for c in chosen):
        errors["carry"] = "Choose only involvements of this record that can be carried over"
    body["carry_involvements"] = chosen
    if errors:
        raise FormErrors(errors)
    return build(AdoptionCreate, body)


def _parse_address(form: dict[str, Any], body: dict[str, Any], errors: dict[str, str]) -> None:
    """The adoptive address: optional, but a first line and a real postcode when any part is given."""
    line1, town, postcode = (text(form, k) for k in ("line1", "town", "postcode"))
    if not (line1 or town or postcode):
        return
    if not line1:
        errors["line1"] = "Enter the first line of the address, or leave the address empty"
    if not postcode:
        errors["postcode"] = "Enter the postcode, or leave the address empty"
    elif normalise_postcode(postcode) is None:
        errors["postcode"] = "Enter a real UK postcode, like OX4 1AB"
    body["address"] = {"line1": line1 or "", "town": town, "postcode": postcode or ""}


def _card(request: Request, actor: Actor, child_id: uuid.UUID) -> ChildCard:
    with unit_of_work(request) as db:
        card = service.read_card(
            db, actor=actor, child_id=child_id, now=utcnow(), fallback_team=practice(request).fallback_team
        )
    if read_only(card):
        raise InvalidInput(NOT_ACTIVE)
    return card


def _form(
    request: Request,
    actor: Actor,
    child_id: uuid.UUID,
    *,
    values: dict[str, Any],
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    try:
        card = _card(request, actor, child_id)
    except NotFound as exc:
        return refused(request, actor, exc, 404)
    except DomainError as exc:
        return refused(request, actor, exc, 409)
    return render(
        request,
        "records/adoption_form.html",
        actor=actor,
        card=card,
        values=values,
        errors=errors,
        sexes=SEXES,
        involvements=carriable(card),
        status_code=status_code,
    )


@router.get("/children/{child_id}/adoption", name="web_adoption_form")
def web_adoption_form(child_id: uuid.UUID, request: Request, actor: AdoptionOfficer) -> Response:
    """Record an adoption (the adoption team): the adoptive identity and what to carry over."""
    if actor.purpose is None:
        return RedirectResponse(f"/children/{child_id}", status_code=303)
    return _form(request, actor, child_id, values={"carry": []}, errors={})


@router.post("/children/{child_id}/adoption", name="web_adoption")
def web_adoption(child_id: uuid.UUID, request: Request, actor: AdoptionOfficer, form: FormData) -> Response:
    """Check the adoption, then (confirmed) make the adoptive record and seal the birth record."""
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    if actor.purpose is None:
        return RedirectResponse(f"/children/{child_id}", status_code=303)
    values: dict[str, Any] = {k: str(form[k]) for k in FIELDS if isinstance(form.get(k), str)}
    values["carry"] = many(form, "carry")
    step = text(form, "step") or "check"
    try:
        card = _card(request, actor, child_id)
        if step == "change":
            raise FormErrors({})
        data = parse_adoption(form, card, date.today())
        if step != "confirm":
            labels = {key: label for key, label, _ in carriable(card)}
            return render(
                request,
                "records/adoption_check.html",
                actor=actor,
                card=card,
                data=data,
                values=values,
                carried=[labels[str(i)] for i in data.carry_involvements],
            )
        with unit_of_work(request) as db:
            adopted = adoption.adopt(db, actor=actor, child_id=child_id, data=data, today=date.today())
            new_id = adopted.id
    except FormErrors as exc:
        code = 400 if exc.errors else 200
        return _form(request, actor, child_id, values=values, errors=exc.errors, status_code=code)
    except NotFound as exc:
        return refused(request, actor, exc, 404)
    except DomainError as exc:
        return _form(request, actor, child_id, values=values, errors={"form": exc.message}, status_code=409)
    return render(request, "records/adoption_done.html", actor=actor, card=card, data=data, new_id=new_id)
