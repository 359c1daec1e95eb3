"""Requests about a CAF under /api/v1 (issue #18): a Lead Professional hand-over the named
practitioner accepts, an ask to join a Team Around the Child, invitations; mine to answer and mine
made, and the answers. The rules are the domain's (directory/service/requests.py)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from childindex.api import Created
from directory import service
from directory.http.deps import CurrentActor, SessionDep, UnitOfWorkRoute
from directory.models import HandOver, JoinAsk, RequestAnswer, RequestRead, TacInvite, utcnow

router = APIRouter(prefix="/api/v1", route_class=UnitOfWorkRoute)


@router.post(
    "/cafs/{caf_id}/lead-professional",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RequestRead | Created,
    responses={
        201: {"model": Created, "description": "You named yourself: you are now the Lead Professional"}
    },
    tags=["caf"],
)
def hand_over_lead(
    caf_id: uuid.UUID, data: HandOver, session: SessionDep, actor: CurrentActor, response: Response
) -> RequestRead | Created:
    """Ask a practitioner to take the Lead Professional role, with the reason: 202 with the request,
    which they accept or decline (the current Lead Professional stays until then); 201 when you named
    yourself and took it at once."""
    outcome = service.request_hand_over(session, actor=actor, caf_id=caf_id, data=data, now=utcnow())
    if outcome.assignment is not None:
        response.status_code = status.HTTP_201_CREATED
        return Created(id=outcome.assignment.id, child_id=outcome.assignment.child_id, status="current")
    assert outcome.request is not None
    return service.request_read(session, actor, outcome.request)


@router.post(
    "/cafs/{caf_id}/join-requests",
    status_code=status.HTTP_201_CREATED,
    response_model=RequestRead,
    tags=["requests"],
)
def ask_to_join_tac(
    caf_id: uuid.UUID, data: JoinAsk, session: SessionDep, actor: CurrentActor
) -> RequestRead:
    """Ask the CAF's holder and Lead Professional to let you join its Team Around the Child, with the
    role you would take. 409 when you are already a member or already asked."""
    request = service.ask_to_join(session, actor=actor, caf_id=caf_id, data=data, now=utcnow())
    return service.request_read(session, actor, request)


@router.post(
    "/cafs/{caf_id}/tac-invitations",
    status_code=status.HTTP_201_CREATED,
    response_model=RequestRead,
    tags=["requests"],
)
def invite_to_tac(
    caf_id: uuid.UUID, data: TacInvite, session: SessionDep, actor: CurrentActor
) -> RequestRead:
    """Invite a practitioner to join the CAF's Team Around the Child in a role; they accept or decline.
    Who may invite is who may change the CAF; their pending ask or invitation is returned if there is
    one; a current member is a 409."""
    request = service.invite_to_tac(
        session,
        actor=actor,
        caf_id=caf_id,
        practitioner_id=data.practitioner_id,
        role=data.role,
        reason=data.reason,
        now=utcnow(),
        source="app",
    )
    return service.request_read(session, actor, request)


@router.get("/requests", response_model=list[RequestRead], tags=["requests"])
def list_requests(session: SessionDep, actor: CurrentActor) -> list[RequestRead]:
    """Requests addressed to you (`mine_to_answer`) and those you made, newest first."""
    return service.my_requests(session, actor=actor)


@router.post("/requests/{request_id}/accept", response_model=RequestRead, tags=["requests"])
def accept_request(
    request_id: uuid.UUID, session: SessionDep, actor: CurrentActor, data: RequestAnswer | None = None
) -> RequestRead:
    """Accept a request addressed to you: 403 when it is not, 409 when it was already answered or its
    CAF has closed (nothing changes)."""
    request = service.answer_request(
        session, actor=actor, request_id=request_id, accept=True, data=data or RequestAnswer(), now=utcnow()
    )
    return service.request_read(session, actor, request)


@router.post("/requests/{request_id}/decline", response_model=RequestRead, tags=["requests"])
def decline_request(
    request_id: uuid.UUID, session: SessionDep, actor: CurrentActor, data: RequestAnswer | None = None
) -> RequestRead:
    """Decline a request addressed to you, optionally saying why."""
    request = service.answer_request(
        session, actor=actor, request_id=request_id, accept=False, data=data or RequestAnswer(), now=utcnow()
    )
    return service.request_read(session, actor, request)
