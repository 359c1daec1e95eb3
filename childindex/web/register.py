"""Add a child to the directory: the form, a check-your-answers step with likely duplicates, then create.

The record is made by the domain's own use case (service.create_child, audited as child.create); the
duplicate check is the search engine's (search.api.run_search, audited as a search). Every value
travels in POST bodies, never in a URL.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from auth.deps import count_read, note_looks
from childindex.web.deps import Writer, check_csrf, flash, render, unit_of_work, web_session
from childindex.web.forms import FormData, FormErrors, date_field, text
from childindex.web.practice import PURPOSES, chosen_purpose, purposes_for
from directory import repository as repo
from directory import service
from directory.errors import Conflict, DomainError, InvalidInput, RuleBroken
from directory.http.config import practice
from directory.http.lanes import in_search_lane
from directory.identifiers import normalise_identifier, normalise_postcode
from directory.models import AddressIn, ChildCreate, IdentifierIn, NameIn, Sex
from search.api import SearchCriteria, run_search

router = APIRouter(include_in_schema=False)

FIELDS = (
    "given",
    "middle",
    "family",
    "born",
    "sex",
    "nhs_number",
    "line1",
    "line2",
    "town",
    "postcode",
    "purpose",
    *(f"{p}-{part}" for p in ("dob", "edd") for part in ("day", "month", "year")),
)
SEXES = [(Sex.FEMALE, "Female"), (Sex.MALE, "Male"), (Sex.OTHER, "Other"), (Sex.UNKNOWN, "Not known")]
BORN = [("yes", "Yes"), ("no", "No, the child is not born yet (record the expected date of delivery)")]
LIKELY_GRADES = ("certain", "probable")


def parse_child(form: dict[str, Any], today: date) -> ChildCreate:
    """The domain's ChildCreate from the form, or every problem at once (field -> message)."""
    errors: dict[str, str] = {}
    given, middle, family = text(form, "given"), text(form, "middle"), text(form, "family")
    if not given:
        errors["given"] = "Enter the child's given name"
    if not family:
        errors["family"] = "Enter the child's family name"
    for key, value in (("given", given), ("middle", middle), ("family", family)):
        if value and len(value) > 100:
            errors[key] = "Names must be 100 characters or fewer"
    born, dob, edd = text(form, "born"), None, None
    try:
        if born == "yes":
            dob = date_field(form, "dob", "the date of birth", required=True)
        elif born == "no":
            edd = date_field(form, "edd", "the expected date of delivery", required=True)
        else:
            errors["born"] = "Select whether the child has been born"
    except FormErrors as exc:
        errors.update(exc.errors)
    try:
        service.validate_birth(date_of_birth=dob, expected_delivery_date=edd, today=today)
    except DomainError as exc:
        if dob or edd:
            errors["dob" if dob else "edd"] = exc.message
    sex = text(form, "sex")
    if sex not in {s.value for s, _ in SEXES}:
        errors["sex"] = "Select the child's sex, or 'Not known'"
    identifiers = []
    nhs = text(form, "nhs_number")
    if nhs:
        try:
            identifiers.append(IdentifierIn(system="nhs", value=normalise_identifier("nhs", nhs)))
        except ValueError:
            errors["nhs_number"] = (
                "Enter a real NHS number: 10 digits, like 943 476 5919 (the last digit is a check digit)"
            )
    address = None
    line1, line2, town, postcode = (text(form, k) for k in ("line1", "line2", "town", "postcode"))
    if any((line1, line2, town, postcode)):
        if not line1:
            errors["line1"] = "Enter the first line of the address, or leave the whole address empty"
        if not postcode:
            errors["postcode"] = "Enter the postcode, or leave the whole address empty"
        elif normalise_postcode(postcode) is None:
            errors["postcode"] = "Enter a real UK postcode, like OX4 1AB"
        for key, value, most in (("line1", line1, 200), ("line2", line2, 200), ("town", town, 100)):
            if value and len(value) > most:
                errors[key] = f"This line must be {most} characters or fewer"
        if not errors.keys() & {"line1", "line2", "town", "postcode"}:
            address = AddressIn(line1=line1 or "", line2=line2, town=town, postcode=postcode or "")
    if text(form, "purpose") not in {p.value for p, _ in PURPOSES}:
        errors["purpose"] = "Select why you are recording this child"
    if errors:
        raise FormErrors(errors)
    return ChildCreate(
        names=[NameIn(given=given or "", middle=middle, family=family or "")],
        date_of_birth=dob,
        expected_delivery_date=edd,
        sex=Sex(sex or "unknown"),
        identifiers=identifiers,
        address=address,
    )


def _values(form: dict[str, Any]) -> dict[str, str]:
    return {k: str(form[k]) for k in FIELDS if isinstance(form.get(k), str)}


def _form_page(
    request: Request, actor: Any, values: dict[str, str], errors: dict[str, str], status_code: int = 200
) -> Response:
    return render(
        request,
        "children_new.html",
        actor=actor,
        values=values,
        errors=errors,
        sexes=SEXES,
        born=BORN,
        purposes=purposes_for(actor.role),
        status_code=status_code,
    )


@router.get("/children/new", name="web_child_new_form")
def web_child_new_form(request: Request, actor: Writer) -> Response:
    """The form to add a child (or an unborn child) to the directory."""
    session = web_session(request)
    return _form_page(request, actor, {"purpose": session.purpose or ""} if session else {}, {})


@router.post("/children/new", name="web_child_new")
async def web_child_new(request: Request, actor: Writer, form: FormData) -> Response:
    """Record a child, once the search engine (in the search lane: directory/http/lanes.py) has
    shown the likely matches already on record."""
    return await in_search_lane(_child_new, request, actor, form)


def _child_new(request: Request, actor: Any, form: dict[str, Any]) -> Response:
    """Check the details (and look for the child already on record), then create the record. Audited."""
    values = _values(form)
    if not check_csrf(request, form):
        return render(
            request,
            "message.html",
            actor=actor,
            title="This form has expired",
            message="For your security the form could not be accepted. Go back, reload the page and try "
            "again.",
            status_code=400,
        )
    step = text(form, "step") or "check"
    if step == "change":
        return _form_page(request, actor, values, {})
    try:
        data = parse_child(form, date.today())
    except FormErrors as exc:
        return _form_page(request, actor, values, exc.errors, 400)
    purpose = chosen_purpose(actor, values["purpose"])  # (a known one: parse_child checked)
    acting = actor.model_copy(update={"purpose": purpose})
    session = web_session(request)
    if session is not None:
        session.purpose = values["purpose"]
    matches, locality = _look_for_the_child(request, acting, data)
    confirmed = text(form, "not_a_duplicate") == "yes"
    if step != "create" or (matches and not confirmed):
        errors = {}
        if step == "create":
            errors["not_a_duplicate"] = "Confirm that none of these children is the child you are recording"
        return render(
            request,
            "children_check.html",
            actor=acting,
            values=values,
            errors=errors,
            data=data,
            matches=matches,
            locality=locality,
            sex_label=dict(SEXES)[data.sex],
            purpose_label=dict(PURPOSES).get(purpose) if purpose else None,
            status_code=400 if errors else 200,
        )
    try:
        with unit_of_work(request) as db:
            child = service.create_child(db, actor=acting, data=data, today=date.today())
            child_id = child.id
    except (Conflict, InvalidInput, RuleBroken) as exc:
        field = "nhs_number" if isinstance(exc, Conflict) or exc.data.get("system") else "form"
        if field == "form":
            field = "dob" if data.date_of_birth else "edd"
        return _form_page(
            request, actor, values, {field: exc.message}, 409 if isinstance(exc, Conflict) else 400
        )
    flash(request, "The child is recorded. Anyone who finds them now sees this record.")
    return RedirectResponse(f"/children/{child_id}", status_code=303)


def _look_for_the_child(request: Request, actor: Any, data: ChildCreate) -> tuple[list[Any], str | None]:
    """Likely matches already on record (certain or probable), and the locality the postcode falls in."""
    name = data.names[0]
    criteria = SearchCriteria(
        given=name.given,
        family=name.family,
        birth_date=data.date_of_birth,
        sex=data.sex.value if data.sex != Sex.UNKNOWN else None,
        postcode=data.address.postcode if data.address else None,
        nhs_number=data.identifiers[0].value if data.identifiers else None,
    )
    matches: list[Any] = []
    # The search first: on SQLite it reads on a connection of its own before this one takes the lock.
    if data.date_of_birth is not None or data.identifiers:  # an unborn child without an NHS number: no key
        count_read(request, actor)  # a search, counted as the search page's are
        with unit_of_work(request) as db:
            try:
                result = run_search(
                    db,
                    actor=actor,
                    criteria=criteria,
                    matcher=request.app.state.search_engine,
                    fallback_team=practice(request).fallback_team.name,
                )
                matches = [hit for hit in result.hits if hit.grade in LIKELY_GRADES]
                note_looks(request, db, actor, [hit.child_id for hit in matches])
            except InvalidInput:
                matches = []
    locality = None
    if data.address is not None:
        with unit_of_work(request) as db:
            found = repo.locality_for_postcode(db, normalise_postcode(data.address.postcode) or "")
            locality = found.name if found is not None else None
    return matches, locality
