"""Records outside the ordinary, in the pages (issue #22, docs/lifecycle.md): a death and a move out
of the area (directory admins), and what the card shows of a record's life (for data managers and
auditors an archived record's banner; for the adoption team a sealed record's banner and the link
between the birth and adoptive records). The adoption flow itself is in adoption_pages.py.

Each flow is a form, a check-your-answers step and a page saying what happened, through the domain's
one use case (directory/service/lifecycle.py); the dates are checked by the domain's own rules
(`death_date_problem`, `move_date_problem`), so every problem comes back in one round and nothing is
changed. Who may do it is asked twice: the route's policy (everyone else gets the usual refusal page)
and the domain. A record the reader may not read answers as an unknown id (directory/visibility.py).
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from auth.deps import RequireScope
from childindex.settings import current_settings, lifecycle_rules
from childindex.web.deps import RECORD_OPENERS, check_csrf, csrf_refused, refused, render, unit_of_work
from childindex.web.forms import FormData, FormErrors, date_field, text
from directory import service
from directory.errors import DomainError, InvalidInput, NotFound
from directory.http.config import practice
from directory.models import (
    OPEN_CAF_STATUSES,
    Actor,
    ArchiveReason,
    ChildCard,
    DeathRecord,
    DeathSource,
    LifecycleRead,
    MoveAway,
    RecordStatus,
    utcnow,
)
from directory.service import adoption, lifecycle
from directory.service.common import load_child
from directory.visibility import RECORD_READERS, SEALED_READERS

router = APIRouter(include_in_schema=False)

LifecycleRecorder = Annotated[
    Actor, Depends(RequireScope("directory.write", roles=lifecycle.LIFECYCLE_RECORDERS))
]
LIFE_READERS = lifecycle.LIFECYCLE_RECORDERS | RECORD_READERS[RecordStatus.ARCHIVED.value]
"""Who is shown a record's life-cycle dates on its card (a move pending, an archive)."""

DEATH_SOURCES = [
    (DeathSource.REGISTRAR, "The register office (a death certificate)"),
    (DeathSource.HEALTH, "A health service, such as the hospital or the GP"),
    (DeathSource.FAMILY, "The family"),
    (DeathSource.OTHER_AGENCY, "Another agency or local authority"),
]
NOT_ACTIVE = "This record is not active: nothing more can be recorded on it."
REASONS = {
    ArchiveReason.AGED_OUT.value: "the young person reached the end of the age range",
    ArchiveReason.DIED.value: "the child died",
    ArchiveReason.MOVED_AWAY.value: "the child moved out of the area",
}


# --------------------------------------------------------------------------- the card


def card_extras(request: Request, actor: Actor, card: ChildCard) -> dict[str, Any]:
    """What the card shows of a record's life to this reader: the actions they may take on it here
    (none on a record that is not active), the life-cycle banner and the adoption link."""
    rules = lifecycle_rules(current_settings(request))
    actions: list[tuple[str, str]] = []
    if card.status == RecordStatus.ACTIVE.value:
        if actor.role in lifecycle.LIFECYCLE_RECORDERS:
            actions += [
                ("Record a death", f"/children/{card.id}/death"),
                ("Record a move out of the area", f"/children/{card.id}/moved-away"),
            ]
        if actor.role in SEALED_READERS:
            actions.append(("Record an adoption", f"/children/{card.id}/adoption"))
    life: dict[str, Any] | None = None
    adopted = None
    with unit_of_work(request) as db:
        if actor.role in LIFE_READERS:
            read = lifecycle.lifecycle_read(db, load_child(db, card.id))
            life = _life_banner(read, rules) if read.archived_at or read.moved_on else None
        if actor.role in SEALED_READERS:
            try:
                adopted = adoption.read_adoption(db, actor=actor, child_id=card.id)
            except NotFound:
                adopted = None
    return {"record_actions": actions, "life": life, "adopted": adopted}


def _life_banner(read: LifecycleRead, rules: lifecycle.LifecycleRules) -> dict[str, Any]:
    """The banner's facts: archived (why, since when, purged when), or a move out of the area pending."""
    out: dict[str, Any] = {"read": read, "reason": REASONS.get(read.archived_reason or "", "")}
    if read.archived_at is not None:
        out["purge_on"] = lifecycle.purge_due_on(read.archived_at, rules)
    if read.moved_on is not None:
        out["archive_on"] = lifecycle.archive_due_on(read.moved_on, rules)
    return out


def read_only(card: ChildCard) -> bool:
    """A record that is not active offers no actions (an archived or sealed record is read only)."""
    return card.status != RecordStatus.ACTIVE.value


# --------------------------------------------------------------------------- shared steps


def _card(request: Request, actor: Actor, child_id: uuid.UUID) -> ChildCard:
    """The card as this person may see it (an audited read, as every card is)."""
    with unit_of_work(request) as db:
        return service.read_card(
            db, actor=actor, child_id=child_id, now=utcnow(), fallback_team=practice(request).fallback_team
        )


def _values(form: dict[str, Any], keys: tuple[str, ...]) -> dict[str, str]:
    return {k: str(form[k]) for k in keys if isinstance(form.get(k), str)}


def _step_page(
    request: Request,
    actor: Actor,
    child_id: uuid.UUID,
    template: str,
    *,
    status_code: int = 200,
    **context: Any,
) -> Response:
    """A form or check page of an active record (refused as unknown when this person may not read it,
    or as the domain says when it is no longer active)."""
    try:
        card = _card(request, actor, child_id)
    except NotFound as exc:
        return refused(request, actor, exc, 404)
    if read_only(card):
        return refused(request, actor, InvalidInput(NOT_ACTIVE), 409)
    return render(request, template, actor=actor, card=card, status_code=status_code, **context)


def _form_again(
    request: Request,
    actor: Actor,
    child_id: uuid.UUID,
    exc: FormErrors | DomainError,
    template: str,
    domain_field: str,
    **context: Any,
) -> Response:
    """The form again after a step that did not go through: with its own errors (400; 200 when the
    person chose to change their answers), refused as unknown (404), or with what the domain said
    beside `domain_field` (409)."""
    if isinstance(exc, NotFound):
        return refused(request, actor, exc, 404)
    if isinstance(exc, FormErrors):
        errors, status = exc.errors, 400 if exc.errors else 200
    else:
        errors, status = {domain_field: exc.message}, 409
    return _step_page(request, actor, child_id, template, errors=errors, status_code=status, **context)


# --------------------------------------------------------------------------- a death

DEATH_FIELDS = ("died-day", "died-month", "died-year", "source")


def parse_death(form: dict[str, Any], card: ChildCard, today: date) -> DeathRecord:
    """The death as the form gives it, or every problem at once."""
    errors: dict[str, str] = {}
    died: date | None = None
    try:
        died = date_field(form, "died", "the date of death", required=True)
    except FormErrors as exc:
        errors.update(exc.errors)
    if died is not None:
        problem = lifecycle.death_date_problem(died, born=card.date_of_birth, today=today)
        if problem is not None:
            errors["died"] = problem
    source = text(form, "source")
    if source not in {s.value for s, _ in DEATH_SOURCES}:
        errors["source"] = "Select who told you of the death"
    if errors:
        raise FormErrors(errors)
    assert died is not None and source is not None
    return DeathRecord(date_of_death=died, source=DeathSource(source))


@router.get("/children/{child_id}/death", name="web_death_form")
def web_death_form(child_id: uuid.UUID, request: Request, actor: LifecycleRecorder) -> Response:
    """Record a child's death: the date and who reported it (directory admins)."""
    if actor.purpose is None:
        return RedirectResponse(f"/children/{child_id}", status_code=303)
    return _step_page(
        request, actor, child_id, "records/death_form.html", values={}, errors={}, sources=DEATH_SOURCES
    )


@router.post("/children/{child_id}/death", name="web_death")
def web_death(child_id: uuid.UUID, request: Request, actor: LifecycleRecorder, form: FormData) -> Response:
    """Check the death, then (confirmed) record it: the record is archived, its involvements ended and
    an open CAF closed; the page says so."""
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    if actor.purpose is None:
        return RedirectResponse(f"/children/{child_id}", status_code=303)
    values = _values(form, DEATH_FIELDS)
    step = text(form, "step") or "check"
    try:
        card = _card(request, actor, child_id)
        if read_only(card):
            raise InvalidInput(NOT_ACTIVE)
        if step == "change":
            raise FormErrors({})
        data = parse_death(form, card, date.today())
        if step != "confirm":
            label = dict(DEATH_SOURCES)[DeathSource(values["source"])]
            return render(
                request,
                "records/death_check.html",
                actor=actor,
                card=card,
                data=data,
                values=values,
                source_label=label,
            )
        with unit_of_work(request) as db:
            caf = service.repo.open_caf(db, child_id)
            had_caf = caf is not None and caf.status in {s.value for s in OPEN_CAF_STATUSES}
            lifecycle.record_death(db, actor=actor, child_id=child_id, data=data, today=date.today())
    except (FormErrors, DomainError) as exc:
        form_page = "records/death_form.html"
        return _form_again(
            request, actor, child_id, exc, form_page, "died", values=values, sources=DEATH_SOURCES
        )
    return render(
        request,
        "records/death_done.html",
        actor=actor,
        card=card,
        data=data,
        had_caf=had_caf,
        rules=lifecycle_rules(current_settings(request)),
    )


# --------------------------------------------------------------------------- a move out of the area

MOVE_FIELDS = ("authority", "moved-day", "moved-month", "moved-year")


def parse_move(form: dict[str, Any], today: date) -> MoveAway:
    """The move as the form gives it, or every problem at once."""
    errors: dict[str, str] = {}
    authority = text(form, "authority")
    if not authority or len(authority) < 2:
        errors["authority"] = "Enter the local authority the child moved to"
    elif len(authority) > 200:
        errors["authority"] = "The authority's name must be 200 characters or fewer"
    moved: date | None = None
    try:
        moved = date_field(form, "moved", "the day of the move", required=True)
    except FormErrors as exc:
        errors.update(exc.errors)
    if moved is not None:
        problem = lifecycle.move_date_problem(moved, today=today)
        if problem is not None:
            errors["moved"] = problem
    if errors:
        raise FormErrors(errors)
    assert authority is not None and moved is not None
    return MoveAway(authority=authority, moved_on=moved)


@router.get("/children/{child_id}/moved-away", name="web_move_away_form")
def web_move_away_form(child_id: uuid.UUID, request: Request, actor: LifecycleRecorder) -> Response:
    """Record a move out of the area: the new authority and the day (directory admins)."""
    if actor.purpose is None:
        return RedirectResponse(f"/children/{child_id}", status_code=303)
    return _step_page(request, actor, child_id, "records/move_form.html", values={}, errors={})


@router.post("/children/{child_id}/moved-away", name="web_move_away")
def web_move_away(
    child_id: uuid.UUID, request: Request, actor: LifecycleRecorder, form: FormData
) -> Response:
    """Check the move, then (confirmed) record it; the page says when the record will be archived."""
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    if actor.purpose is None:
        return RedirectResponse(f"/children/{child_id}", status_code=303)
    values = _values(form, MOVE_FIELDS)
    step = text(form, "step") or "check"
    rules = lifecycle_rules(current_settings(request))
    try:
        card = _card(request, actor, child_id)
        if read_only(card):
            raise InvalidInput(NOT_ACTIVE)
        if step == "change":
            raise FormErrors({})
        data = parse_move(form, date.today())
        archive_on = lifecycle.archive_due_on(data.moved_on, rules)
        if step != "confirm":
            return render(
                request,
                "records/move_check.html",
                actor=actor,
                card=card,
                data=data,
                values=values,
                archive_on=archive_on,
            )
        with unit_of_work(request) as db:
            lifecycle.record_move_away(db, actor=actor, child_id=child_id, data=data, today=date.today())
    except (FormErrors, DomainError) as exc:
        return _form_again(
            request, actor, child_id, exc, "records/move_form.html", "authority", values=values
        )
    return render(
        request,
        "records/move_done.html",
        actor=actor,
        card=card,
        data=data,
        archive_on=archive_on,
        due=archive_on <= date.today(),
    )


# --------------------------------------------------------------------------- a record by its id

RecordOpener = Annotated[Actor, Depends(RequireScope("directory.search", roles=RECORD_OPENERS))]


@router.get("/records", name="web_open_record")
def web_open_record(request: Request, actor: RecordOpener) -> Response:
    """Open a record by its id (then the card, which answers an unreadable record as an unknown id)."""
    given = request.query_params.get("id", "").strip()
    if given:
        try:
            return RedirectResponse(f"/children/{uuid.UUID(given)}", status_code=303)
        except ValueError:
            errors = {"id": "Enter the record's id as the audit log gives it, such as 3f2b6c1e-…"}
            return render(
                request,
                "records/open.html",
                actor=actor,
                values={"id": given},
                errors=errors,
                status_code=400,
            )
    return render(request, "records/open.html", actor=actor, values={}, errors={})
