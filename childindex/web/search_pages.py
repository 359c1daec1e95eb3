"""Find a child: the search form, POST-redirect-GET, and results that survive the browser's Back button.

POST /search validates everything in one round and, when the search can run, keeps the terms and the
reason in the sealed session cookie (never in a URL, so never in a log), then answers 303 to
GET /search/results. That page runs the kept search and audits it: each display of results is one
audited search (the POST itself searches nothing), so Back from a card re-runs the search, audited
once more, instead of asking to resubmit a form. The terms are forgotten on "Start a new search", on
signing out and when the session ends. The reason is never pre-filled on a new search: it is chosen
for each look (issue #20).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from auth.deps import note_looks
from childindex.web.deps import (
    Finder,
    FindingReader,
    check_csrf,
    csrf_refused,
    render,
    unit_of_work,
    web_session,
)
from childindex.web.forms import FormData, FormErrors, date_field, text
from childindex.web.practice import PURPOSE_HELP, WRITERS, chosen_purpose, purposes_for
from directory import notices
from directory.errors import InvalidInput
from directory.http.config import practice
from directory.http.lanes import in_search_lane
from directory.models import Actor
from search.api import SearchCriteria, run_search
from search.matching import validate_criteria
from search.port import CriteriaError, SearchQuery

router = APIRouter(include_in_schema=False)

SEARCH_FIELDS = ("given", "family", "sex", "postcode", "nhs_number", "upn", "local_id")
DATE_PREFIXES = ("dob", "dob-from", "dob-to")
KEPT_FIELDS = SEARCH_FIELDS + tuple(f"{p}-{part}" for p in DATE_PREFIXES for part in ("day", "month", "year"))
KEEP_SECONDS = 30 * 60  # kept terms outlive no search session: half an hour, then a fresh form

# The criteria's field names (search/criteria.py) as the form's fields.
FORM_FIELD = {
    "birth_date": "dob",
    "birth_date_from": "dob-from",
    "birth_date_to": "dob-to",
    "identifier_value": "nhs_number",
    "identifier_system": "nhs_number",
    "sex": "sex",
    "postcode": "postcode",
    "family": "family",
    "given": "given",
}
LENGTHS = {"given": 100, "family": 100, "postcode": 10, "nhs_number": 14, "upn": 13, "local_id": 64}
LABELS = {
    "given": "The given name",
    "family": "The family name",
    "postcode": "The postcode",
    "nhs_number": "The NHS number",
    "upn": "The Unique Pupil Number",
    "local_id": "The local identifier",
}
SEXES = {"female", "male", "other", "unknown"}


def _checked(form: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The criteria a form gives and every problem with them, found in one round."""
    data: dict[str, Any] = {k: text(form, k) for k in SEARCH_FIELDS}
    errors: dict[str, str] = {}
    for key, limit in LENGTHS.items():
        if data[key] and len(data[key]) > limit:
            errors[key] = f"{LABELS[key]} must be {limit} characters or fewer"
    if data["sex"] and data["sex"] not in SEXES:
        errors["sex"] = "Choose the child's sex from the list, or leave it as not given"
    for key, prefix, label in (
        ("birth_date", "dob", "the date of birth"),
        ("birth_date_from", "dob-from", "the start of the range"),
        ("birth_date_to", "dob-to", "the end of the range"),
    ):
        try:
            data[key] = date_field(form, prefix, label)
        except FormErrors as exc:
            errors.update(exc.errors)
    for field, query in (  # each detail on its own, so that every malformed one is named at once
        ("nhs_number", SearchQuery(identifier_system="nhs", identifier_value=data["nhs_number"])),
        ("upn", SearchQuery(identifier_system="upn", identifier_value=data["upn"])),
        ("postcode", SearchQuery(postcode=data["postcode"], given="x")),
    ):
        if data[field] and field not in errors:
            try:
                validate_criteria(query)
            except CriteriaError as exc:
                if exc.field in ("identifier_value", "postcode"):
                    errors[field] = exc.message
    criteria = {k: v for k, v in data.items() if v is not None}
    if not errors:
        try:
            validate_criteria(SearchCriteria.model_validate(criteria).to_query())
        except (CriteriaError, ValueError) as exc:
            field = FORM_FIELD.get(str(getattr(exc, "field", "")), "given")
            errors[field] = getattr(exc, "message", None) or "Check the dates: they must be real dates"
    return criteria, errors


def _unread(request: Request, actor: Actor) -> int:
    with unit_of_work(request) as db:
        return notices.unread(db, actor=actor)


def kept_search(request: Request) -> dict[str, Any] | None:
    """The terms and reason of this session's last search, while they are kept."""
    session = web_session(request)
    kept = getattr(session, "search", None)
    if not isinstance(kept, dict) or time.time() - float(kept.get("at", 0)) > KEEP_SECONDS:
        return None
    return kept


def _form_page(
    request: Request,
    actor: Actor,
    *,
    values: dict[str, Any],
    purpose: str | None,
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "search.html",
        actor=actor,
        purposes=purposes_for(actor.role),
        purpose_help=PURPOSE_HELP,
        values=values,
        purpose=purpose,
        errors=errors,
        may_add=actor.role in WRITERS,
        unread_notices=_unread(request, actor) if not errors else 0,
        kept=kept_search(request) is not None,
        status_code=status_code,
    )


@router.get("/search", name="web_search_form")
def web_search_form(request: Request, actor: Finder) -> Response:
    """The search form, filled in with the terms of the last search (the reason is asked afresh)."""
    kept = kept_search(request)
    return _form_page(request, actor, values=dict(kept["values"]) if kept else {}, purpose=None, errors={})


@router.post("/search", name="web_search")
def web_search(request: Request, actor: Finder, form: FormData) -> Response:
    """Check the search (every problem at once), keep it in the sealed session, and show its results."""
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    values = {k: str(text(form, k) or "") for k in KEPT_FIELDS if text(form, k)}
    purpose_code = text(form, "purpose")
    _, errors = _checked(form)
    if chosen_purpose(actor, purpose_code) is None:  # a reason the role may not give is refused (403)
        errors = {"purpose": "Select why you are looking for this child", **errors}
    if errors:
        return _form_page(request, actor, values=values, purpose=purpose_code, errors=errors, status_code=400)
    session = web_session(request)
    assert session is not None and purpose_code is not None
    session.search = {"values": values, "purpose": purpose_code, "at": time.time()}
    session.purpose = purpose_code  # the cards opened from these results are read for this reason
    return RedirectResponse("/search/results", status_code=303)


@router.post("/search/clear", name="web_search_clear")
def web_search_clear(request: Request, actor: Finder, form: FormData) -> Response:
    """Forget the kept search terms: an empty form for the next child."""
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    session = web_session(request)
    if session is not None:
        session.search = None
    return RedirectResponse("/search", status_code=303)


@router.get("/search/results", name="web_search_results")
async def web_search_results(request: Request, actor: FindingReader) -> Response:
    """The kept search, run and audited now (each display is one audited search), results first.
    In the search lane (directory/http/lanes.py): a node that stops answering holds none of the
    threads the other pages need."""
    return await in_search_lane(_results_page, request, actor)


def _results_page(request: Request, actor: Actor) -> Response:
    kept = kept_search(request)
    session = web_session(request)
    purpose = chosen_purpose(actor, kept["purpose"]) if kept else None
    if kept is None or purpose is None or session is None:
        return RedirectResponse("/search", status_code=303)
    values: dict[str, Any] = dict(kept["values"])
    criteria, errors = _checked(values)
    if errors:  # kept terms were checked when kept; should the rules change meanwhile, say so
        return _form_page(request, actor, values=values, purpose=None, errors=errors, status_code=400)
    session.purpose = kept["purpose"]
    acting = actor.model_copy(update={"purpose": purpose})
    try:
        with unit_of_work(request) as db:
            result = run_search(
                db,
                actor=acting,
                criteria=SearchCriteria.model_validate(criteria),
                matcher=request.app.state.search_engine,
                fallback_team=practice(request).fallback_team.name,
            )
            note_looks(request, db, acting, [hit.child_id for hit in result.hits])
    except InvalidInput as exc:
        field = FORM_FIELD.get(str(exc.data.get("field")), "given")
        return _form_page(
            request, actor, values=values, purpose=None, errors={field: exc.message}, status_code=400
        )
    return render(
        request,
        "search_results.html",
        actor=actor,
        purposes=purposes_for(actor.role),
        purpose_help=PURPOSE_HELP,
        values=values,
        purpose=None,
        errors={},
        result=result,
        searched_for=_described(values),
        may_add=actor.role in WRITERS,
    )


def _described(values: dict[str, Any]) -> list[tuple[str, str]]:
    """What was searched for, as the results page repeats it (on the page only, never in a URL)."""
    out: list[tuple[str, str]] = []
    name = " ".join(v for v in (values.get("given"), values.get("family")) if v)
    if name:
        out.append(("Name", name))
    for prefix, label in (("dob", "Born"), ("dob-from", "Born on or after"), ("dob-to", "Born on or before")):
        try:
            born = date_field(values, prefix, label)
        except FormErrors:
            born = None
        if born is not None:
            out.append((label, f"{born.day} {born:%B %Y}"))
    for key, label in (
        ("sex", "Sex"),
        ("postcode", "Postcode"),
        ("nhs_number", "NHS number"),
        ("upn", "Unique Pupil Number"),
    ):
        if values.get(key):
            out.append((label, str(values[key]).capitalize() if key == "sex" else str(values[key])))
    return out
