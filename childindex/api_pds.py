"""/api/v1 routes of a demographics trace (directory admins): trace a record without an NHS number
through the national service, then confirm the number it offered (interop/pds_trace.py; docs/pds.md).

The service failing (down, timing out, refusing our credentials) answers 503 problem+json and writes
nothing but the audit event of the attempt."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from sqlmodel import Session

from childindex.details_api import etag, expected_version, precondition
from directory.errors import StaleVersion
from directory.http.deps import CurrentActor, SessionDep, UnitOfWorkRoute
from directory.http.lanes import in_upstream_lane
from directory.http.problems import problem
from directory.models import Actor, ChildRef
from directory.models.base import Input, Output
from directory.service.children import child_ref
from directory.service.common import load_child
from interop.pds import PdsClient, PdsConfig, PdsError
from interop.pds_trace import CONFIDENT_SCORE, TraceCandidate, confirm_trace, trace_child

router = APIRouter(prefix="/api/v1", route_class=UnitOfWorkRoute)


class TraceRead(Output):
    child_id: uuid.UUID
    result: str  # match | not-confident | none | too-many
    confident_score: float
    candidate: TraceCandidate | None = None


class TraceConfirm(Input):
    nhs_number: str


def _client(request: Request) -> PdsClient | None:
    """The app's demographics client (one, so that its token is cached), or None when unconfigured."""
    client: PdsClient | None = getattr(request.app.state, "pds_client", None)
    if client is None:
        cfg = PdsConfig.from_settings(request.app.state.settings)
        if cfg is None:
            return None
        client = request.app.state.pds_client = PdsClient(cfg)
    return client


def _unavailable(request: Request, detail: str, code: str) -> JSONResponse:
    response = problem(
        503,
        "The demographics service is not available",
        f"{detail} Nothing was changed; try again later.",
        code=f"pds-{code}",
        request=request,
    )
    response.headers["Retry-After"] = "60"
    return response


@router.post(
    "/children/{child_id}/pds-trace",
    response_model=TraceRead,
    tags=["children"],
    responses={503: {"description": "The demographics service is not available; nothing changed."}},
)
async def pds_trace(
    child_id: uuid.UUID, request: Request, session: SessionDep, actor: CurrentActor
) -> TraceRead | JSONResponse:
    """Trace a record that holds no NHS number through the national demographics service, by its own
    current name, date of birth, postcode and sex (directory admins). Returns the candidate (its
    score; `not-confident` below `confident_score`), none or too many; never writes. Audited."""
    # In the upstream lane (directory/http/lanes.py): a stalled service holds no shared thread.
    return await in_upstream_lane(_trace, child_id, request, session, actor)


def _trace(child_id: uuid.UUID, request: Request, session: Session, actor: Actor) -> TraceRead | JSONResponse:
    client = _client(request)
    if client is None:
        return _unavailable(request, "No demographics service is configured.", "not-configured")
    try:
        traced = trace_child(session, client, actor=actor, child_id=child_id)
    except PdsError as exc:
        return _unavailable(request, exc.message, exc.code)
    return TraceRead(
        child_id=traced.child_id,
        result=traced.result,
        confident_score=CONFIDENT_SCORE,
        candidate=traced.candidate,  # (the trace's own dataclass: one shape for the CLI and the API)
    )


@router.post(
    "/children/{child_id}/pds-trace/confirm",
    response_model=ChildRef,
    tags=["children"],
    responses={503: {"description": "The demographics service is not available; nothing changed."}},
)
async def pds_trace_confirm(
    child_id: uuid.UUID,
    data: TraceConfirm,
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> ChildRef | JSONResponse:
    """Add the NHS number a trace offered (directory admins): the record is traced again and the number
    added only while the service still offers it, through the record's one change rule (versioned,
    audited, source `pds`). 409 when another record holds the number (naming nothing of it). Send
    If-Match to make the change only against the version you read."""
    # In the upstream lane (directory/http/lanes.py): a stalled service holds no shared thread.
    return await in_upstream_lane(_confirm, child_id, data, request, session, actor, response, if_match)


def _confirm(
    child_id: uuid.UUID,
    data: TraceConfirm,
    request: Request,
    session: Session,
    actor: Actor,
    response: Response,
    if_match: str | None,
) -> ChildRef | JSONResponse:
    client = _client(request)
    if client is None:
        return _unavailable(request, "No demographics service is configured.", "not-configured")
    try:
        confirm_trace(
            session,
            client,
            actor=actor,
            child_id=child_id,
            nhs_number=data.nhs_number,
            today=date.today(),
            expected_version=expected_version(if_match) if if_match else None,
        )
    except PdsError as exc:
        return _unavailable(request, exc.message, exc.code)
    except StaleVersion as exc:
        raise precondition(exc) from None
    child = load_child(session, child_id)
    response.headers["ETag"] = etag(child.version)
    return child_ref(child)
