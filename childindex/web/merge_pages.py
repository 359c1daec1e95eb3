"""Merging two records of one child in the pages (directory admins and data managers): the merge
page, reached as /admin/children/{keep}/merge?duplicate={id} (the review queue and the duplicates
report link to it), shows both records as the caller may see them and what will move, and asks for
the reason; a merged record's page shows where it went and, within the period, offers to undo it."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from auth.deps import RequireScope
from auth.policy import RECORD_KEEPERS
from childindex import subject_access
from childindex.web.deps import check_csrf, csrf_refused, flash, refused, render, unit_of_work
from childindex.web.forms import FormData, text
from directory import service
from directory.errors import DomainError, NotFound
from directory.http.config import practice
from directory.merge_moves import merged_into_ids
from directory.models import Actor, Child, ChildCard, Purpose, RecordStatus, utcnow

router = APIRouter(include_in_schema=False)

RecordKeeper = Annotated[Actor, Depends(RequireScope("directory.write", roles=RECORD_KEEPERS))]
SubjectAccessReader = Annotated[Actor, Depends(RequireScope("audit.read", roles=RECORD_KEEPERS))]

_MOVES = {
    "child_identifier": "identifiers",
    "child_name": "names (they become aliases)",
    "child_address": "addresses (the duplicate's current one becomes history)",
    "related_person": "parents and carers",
    "consent": "consents",
    "involvement": "involvements",
    "involvement_version": "earlier versions of involvements",
    "assessment": "CAFs",
    "lead_professional_assignment": "Lead Professional spells",
    "tac": "Teams Around the Child",
    "notice": "notices to practitioners",
    "notification": "notifications to connected systems",
    "child": "records merged into the duplicate earlier",
}


def _administering(actor: Actor) -> Actor:
    """The actor reading records to keep them right (the purpose these pages are for)."""
    return (
        actor if actor.purpose is not None else actor.model_copy(update={"purpose": Purpose.ADMINISTRATION})
    )


def merges_on_card(request: Request, actor: Actor, card: ChildCard) -> list[uuid.UUID] | None:
    """For the card page of someone who may merge: the records merged into this one (else None)."""
    if actor.role not in RECORD_KEEPERS:
        return None
    with unit_of_work(request) as db:
        return merged_into_ids(db, card.id)


def _card(request: Request, actor: Actor, child_id: uuid.UUID) -> ChildCard:
    with unit_of_work(request) as db:
        return service.read_card(
            db, actor=actor, child_id=child_id, now=utcnow(), fallback_team=practice(request).fallback_team
        )


def _merge_page(
    request: Request,
    actor: Actor,
    keep: uuid.UUID,
    duplicate: uuid.UUID,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    kept_card, dup_card = _card(request, actor, keep), _card(request, actor, duplicate)
    with unit_of_work(request) as db:
        plan = service.merge_plan(db, actor=actor, kept_id=keep, duplicate_id=duplicate)
    moves = [(_MOVES.get(table, table), n) for table, n in plan.moves.items()]
    return render(
        request,
        "admin/merge.html",
        actor=actor,
        kept=kept_card,
        duplicate=dup_card,
        moves=moves,
        plan=plan,
        errors=errors or {},
        values=values or {},
        status_code=status_code,
    )


@router.get("/admin/children/{keep}/merge", name="web_merge_form")
def web_merge_form(keep: uuid.UUID, request: Request, actor: RecordKeeper) -> Response:
    """Both records side by side (as you may see them), what will move, the reason; or which duplicate."""
    actor = _administering(actor)
    given = request.query_params.get("duplicate", "").strip()
    if not given:
        return render(request, "admin/merge_which.html", actor=actor, keep=keep, errors={}, values={})
    try:
        duplicate = uuid.UUID(given)
    except ValueError:
        errors = {"duplicate": "Enter the duplicate record's id, such as 3f2b…"}
        return render(
            request,
            "admin/merge_which.html",
            actor=actor,
            keep=keep,
            errors=errors,
            values={"duplicate": given},
        )
    try:
        return _merge_page(request, actor, keep, duplicate)
    except NotFound as exc:
        return refused(request, actor, exc, 404)
    except DomainError as exc:
        return refused(request, actor, exc, 403)


@router.post("/admin/children/{keep}/merge", name="web_merge")
def web_merge(keep: uuid.UUID, request: Request, actor: RecordKeeper, form: FormData) -> Response:
    """Merge the duplicate into this record, with the reason. Audited."""
    actor = _administering(actor)
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    try:
        duplicate = uuid.UUID(text(form, "duplicate") or "")
    except ValueError:
        return refused(request, actor, NotFound("No duplicate record was named."), 404)
    reason = text(form, "reason")
    values = {"reason": reason or ""}
    try:
        if not reason:
            return _merge_page(
                request,
                actor,
                keep,
                duplicate,
                errors={"reason": "Enter why these are the same child"},
                values=values,
                status_code=400,
            )
        with unit_of_work(request) as db:
            service.merge_children(
                db, actor=actor, duplicate_id=duplicate, into_id=keep, reason=reason, now=utcnow()
            )
    except NotFound as exc:
        return refused(request, actor, exc, 404)
    except DomainError as exc:
        try:
            return _merge_page(
                request,
                actor,
                keep,
                duplicate,
                errors={"reason": exc.message},
                values=values,
                status_code=409,
            )
        except DomainError:
            return refused(request, actor, exc, 409)
    flash(request, "The records are merged. Everything held about the duplicate is on the record kept.")
    return RedirectResponse(f"/admin/children/{duplicate}/merged", status_code=303)


@router.get("/admin/children/{child_id}/merged", name="web_merged_record")
def web_merged_record(child_id: uuid.UUID, request: Request, actor: RecordKeeper) -> Response:
    """A merged record: the record it was merged into, when, what moved, and the unmerge button."""
    actor = _administering(actor)
    days = practice(request).unmerge_days
    try:
        with unit_of_work(request) as db:
            child = service.repo.get(db, Child, child_id)
            if child is None or child.status != RecordStatus.MERGED.value:
                raise NotFound("This record is not merged into another.")
            merge = service.merge_read(db, child, period_days=days)
    except NotFound as exc:
        return refused(request, actor, exc, 404)
    moves = [(_MOVES.get(table, table), n) for table, n in merge.moved.items()]
    may_undo = merge.unmerge_until is not None and utcnow() <= merge.unmerge_until
    return render(
        request, "admin/merged.html", actor=actor, merge=merge, moves=moves, may_undo=may_undo, days=days
    )


@router.post("/admin/children/{child_id}/unmerge", name="web_unmerge")
def web_unmerge(child_id: uuid.UUID, request: Request, actor: RecordKeeper, form: FormData) -> Response:
    """Undo a merge within its period: what moved goes back. Audited."""
    actor = _administering(actor)
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    try:
        with unit_of_work(request) as db:
            kept_id = service.resolve_merged(db, child_id)
            service.unmerge_children(
                db,
                actor=actor,
                duplicate_id=child_id,
                now=utcnow(),
                period_days=practice(request).unmerge_days,
            )
    except NotFound as exc:
        return refused(request, actor, exc, 404)
    except DomainError as exc:
        return refused(request, actor, exc, 409)
    flash(request, "The merge is undone: the two records are as they were before it.")
    return RedirectResponse(f"/admin/children/{kept_id}/merge?duplicate={child_id}", status_code=303)


@router.get("/admin/children/{child_id}/subject-access", name="web_subject_access")
def web_subject_access(child_id: uuid.UUID, request: Request, actor: SubjectAccessReader) -> Response:
    """Everything held about a child, to answer a subject access request: the readable document, or
    with ?format=json the FHIR Bundle to download. Audited."""
    actor = _administering(actor)
    as_json = request.query_params.get("format") == "json"
    try:
        with unit_of_work(request) as db:
            export = subject_access.build(
                db, actor=actor, child_id=child_id, authority=practice(request).authority_name, now=utcnow()
            )
    except NotFound as exc:
        return refused(request, actor, exc, 404)
    except DomainError as exc:
        return refused(request, actor, exc, 403)
    if as_json:
        name = f"subject-access-{export.child_id}.json"
        return JSONResponse(
            export.bundle,
            media_type="application/fhir+json",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return HTMLResponse(export.html)
