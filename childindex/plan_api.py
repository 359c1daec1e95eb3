"""/api/v1/tacs/{id}/actions and /reviews: a Team Around the Child's plan (docs/tac-plan.md).

An action carries a short title (at most 80 characters) and codes only: no case notes, names or
details about the child or family, which stay in each service's own records."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from directory.http.deps import CurrentActor, SessionDep, UnitOfWorkRoute
from directory.models import (
    ActionChange,
    ActionCreate,
    ActionRead,
    ReviewCreate,
    ReviewRead,
    TacAction,
    utcnow,
)
from directory.service import plan

router = APIRouter(prefix="/api/v1", route_class=UnitOfWorkRoute, tags=["tac plan"])


def _shown(session: SessionDep, actor: CurrentActor, action: TacAction) -> ActionRead:
    return plan.actions_shown(session, actor, [action], utcnow().date())[0]


@router.get("/tacs/{tac_id}/actions", response_model=list[ActionRead])
def list_tac_actions(tac_id: uuid.UUID, session: SessionDep, actor: CurrentActor) -> list[ActionRead]:
    """The TAC plan's actions: open first, then by date; an owner you may not see is 'withheld'. Audited."""
    return plan.list_actions(session, actor=actor, tac_id=tac_id, today=utcnow().date())


@router.post("/tacs/{tac_id}/actions", status_code=status.HTTP_201_CREATED, response_model=ActionRead)
def add_tac_action(
    tac_id: uuid.UUID, data: ActionCreate, session: SessionDep, actor: CurrentActor
) -> ActionRead:
    """Add an action to a convened TAC's plan: a title of at most 80 characters (no case notes), an
    area of need code, its owner (a TAC member's practitioner id, or 'family') and a date not before
    the TAC was convened. Who may: the CAF's holders, TAC members, the locality team, an admin."""
    action = plan.add_action(session, actor=actor, tac_id=tac_id, data=data, now=utcnow())
    return _shown(session, actor, action)


@router.patch("/tacs/{tac_id}/actions/{action_id}", response_model=ActionRead)
def change_tac_action(
    tac_id: uuid.UUID, action_id: uuid.UUID, data: ActionChange, session: SessionDep, actor: CurrentActor
) -> ActionRead:
    """Mark an action done, dropped or open again, or move its date."""
    action = plan.change_action(
        session, actor=actor, tac_id=tac_id, action_id=action_id, data=data, now=utcnow()
    )
    return _shown(session, actor, action)


@router.get("/tacs/{tac_id}/reviews", response_model=list[ReviewRead])
def list_tac_reviews(tac_id: uuid.UUID, session: SessionDep, actor: CurrentActor) -> list[ReviewRead]:
    """The TAC's reviews, latest first. Audited."""
    return plan.list_reviews(session, actor=actor, tac_id=tac_id)


@router.post("/tacs/{tac_id}/reviews", status_code=status.HTTP_201_CREATED, response_model=ReviewRead)
def record_tac_review(
    tac_id: uuid.UUID, data: ReviewCreate, session: SessionDep, actor: CurrentActor
) -> ReviewRead:
    """Record a review held (not in the future, not before the TAC was convened): 'needs_met' closes
    the CAF and its TAC; 'reconvene' needs the next review date, in the future, which the TAC takes."""
    review = plan.record_review(session, actor=actor, tac_id=tac_id, data=data, now=utcnow())
    return ReviewRead.model_validate(review, from_attributes=True)
