"""Keeping records right under /api/v1: merge two records of one child, undo a merge, and answer
a subject access request (directory admins and data managers)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlmodel import Session

from childindex import subject_access
from directory import service
from directory.http.config import PracticeDep
from directory.http.deps import CurrentActor, SessionDep, UnitOfWorkRoute
from directory.models import Actor, ChildRef, MergeRead, MergeRequest, utcnow

router = APIRouter(prefix="/api/v1", route_class=UnitOfWorkRoute)


def merged_redirect(session: Session, *, actor: Actor, child_id: uuid.UUID, kept_id: uuid.UUID) -> Response:
    """A read of a merged record: 301 to the record kept (not cached: an unmerge may undo it). Audited."""
    service.audit_merged_read(session, actor=actor, child_id=child_id, kept_id=kept_id)
    return RedirectResponse(
        f"/api/v1/children/{kept_id}", status_code=301, headers={"Cache-Control": "no-store"}
    )


@router.post("/children/{child_id}/merge", response_model=MergeRead, tags=["children"])
def merge_child(
    child_id: uuid.UUID, data: MergeRequest, session: SessionDep, actor: CurrentActor, practice: PracticeDep
) -> MergeRead:
    """Merge a duplicate record into this one: everything held moves here, the duplicate becomes a
    pointer. Refused when both have an open CAF (naming both holders). Audited; undo with unmerge."""
    duplicate = service.merge_children(
        session,
        actor=actor,
        duplicate_id=data.duplicate_id,
        into_id=child_id,
        reason=data.reason,
        now=utcnow(),
    )
    return service.merge_read(session, duplicate, period_days=practice.unmerge_days)


@router.post("/children/{child_id}/unmerge", response_model=ChildRef, tags=["children"])
def unmerge_child(
    child_id: uuid.UUID, session: SessionDep, actor: CurrentActor, practice: PracticeDep
) -> ChildRef:
    """Undo the merge of this (merged) record within the unmerge period: what moved goes back. Audited."""
    child = service.unmerge_children(
        session, actor=actor, duplicate_id=child_id, now=utcnow(), period_days=practice.unmerge_days
    )
    return service.child_ref(child)


_SAR_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Everything held about the child: a FHIR Bundle (collection), or with "
        "format=html a readable document",
        "content": {"application/fhir+json": {}, "text/html": {}},
    }
}


@router.get("/children/{child_id}/subject-access", tags=["audit"], responses=_SAR_RESPONSES)
def subject_access_export(
    child_id: uuid.UUID,
    session: SessionDep,
    actor: CurrentActor,
    practice: PracticeDep,
    format: Literal["json", "html"] = "json",
) -> Response:
    """Everything held about a child and every access to the record, to answer a subject access
    request (format=json: a FHIR Bundle; format=html: a document with the authority's name). Audited."""
    export = subject_access.build(
        session, actor=actor, child_id=child_id, authority=practice.authority_name, now=utcnow()
    )
    if format == "html":
        return HTMLResponse(export.html)
    return JSONResponse(export.bundle, media_type="application/fhir+json")
