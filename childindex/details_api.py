"""The app API's routes for changing a child's details and reading their history (PATCH with
If-Match; the versions), beside the card's routes in childindex/api.py."""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Header, Response

from directory import service
from directory.errors import InvalidInput, PreconditionFailed, PreconditionRequired, StaleVersion
from directory.http.deps import CurrentActor, SessionDep, UnitOfWorkRoute
from directory.models import Child, ChildChange, ChildVersionRead, ChildVersionRef

router = APIRouter(prefix="/api/v1", route_class=UnitOfWorkRoute)

_IF_MATCH = re.compile(r'^\s*(?:W/)?"?(\d{1,9})"?\s*$')
SEND_IF_MATCH = (
    "Send the version you are changing in an If-Match header, as the ETag of GET /api/v1/children/{id} "
    'gave it (for example If-Match: W/"3"), so that a change made since you read the record is not lost.'
)


def etag(version: int) -> str:
    """The ETag of a child's record at a version (weak: it names the version, not the bytes)."""
    return f'W/"{version}"'


def expected_version(if_match: str | None) -> int:
    """The version an If-Match header names: 428 when there is none, 422 when it is not one."""
    if if_match is None or not if_match.strip() or if_match.strip() == "*":
        raise PreconditionRequired(SEND_IF_MATCH)
    found = _IF_MATCH.match(if_match)
    if found is None:
        raise InvalidInput(f"If-Match is not a version. {SEND_IF_MATCH}")
    return int(found.group(1))


def precondition(error: StaleVersion) -> PreconditionFailed:
    """A stale If-Match as HTTP says it: 412 with the message and the current version."""
    return PreconditionFailed(error.message, **error.data)


@router.patch("/children/{child_id}", response_model=ChildVersionRef, tags=["children"])
def change_child(
    child_id: uuid.UUID,
    data: ChildChange,
    session: SessionDep,
    actor: CurrentActor,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> ChildVersionRef:
    """Change a child's details (only the fields sent); send If-Match with the version read (412 when
    it moved on, 428 when missing). Answers the new version and its ETag. Audited (field names only)."""
    if not (if_match or "").strip():
        service.authorise_change(session, actor=actor, child_id=child_id, change=data)  # 403 before 428
    expected = expected_version(if_match)
    try:
        changed = service.change_child(
            session,
            actor=actor,
            child_id=child_id,
            change=data,
            today=date.today(),
            source="api",
            expected_version=expected,
        )
    except StaleVersion as exc:
        raise precondition(exc) from None
    child = service.repo.get(session, Child, child_id)
    response.headers["ETag"] = etag(child.version)
    return ChildVersionRef(id=child.id, version=child.version, changed=changed)


@router.get("/children/{child_id}/history", response_model=list[ChildVersionRead], tags=["children"])
def child_history(
    child_id: uuid.UUID, session: SessionDep, actor: CurrentActor, response: Response
) -> list[ChildVersionRead]:
    """The versions of a child's record: when, who (role), source, which fields changed, and the
    details of each version where you may see them. Audited."""
    child, versions = service.child_history(session, actor=actor, child_id=child_id)
    response.headers["ETag"] = etag(child.version)
    return versions
