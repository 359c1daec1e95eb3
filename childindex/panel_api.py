"""/api/v1: the early intervention panel (send a CAF, the locality's queue, the decision), step up to
children's social care and step down to early help (docs/panel.md)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, status
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from childindex.settings import Settings, current_settings
from directory.http.config import PracticeDep
from directory.http.deps import CurrentActor, SessionDep, UnitOfWorkRoute
from directory.models import utcnow
from directory.models.panel import PanelDecision, PanelReferralRead, PanelSend, StepDownIn, StepRead, StepUpIn
from directory.service import panel, step_up
from interop.front_door import FrontDoor, FrontDoorWorker

router = APIRouter(prefix="/api/v1", route_class=UnitOfWorkRoute, tags=["panel"])


def front_door_of(settings: Settings) -> FrontDoor:
    """The social care front door, from the settings."""
    return FrontDoor(
        webhook_url=settings.front_door_webhook,
        secret=settings.front_door_secret,
        # an email channel only with an SMTP server to send it through (childindex/people_notify.py):
        # a notice queued for no sender would never leave
        email=settings.front_door_email if settings.smtp_host else None,
        base_url=str(settings.issuer).rstrip("/"),
    )


def front_door(settings: Annotated[Settings, Depends(current_settings)]) -> FrontDoor:
    return front_door_of(settings)


FrontDoorDep = Annotated[FrontDoor, Depends(front_door)]


def install_front_door(app: FastAPI, settings: Settings, engine: Engine) -> None:
    """Run the front door's delivery worker with the app, when a webhook is configured (and this
    process is the one that delivers: `front_door_worker`)."""
    if not (settings.front_door_webhook and settings.front_door_worker):
        return
    worker = FrontDoorWorker(
        engine,
        front_door_of(settings),
        interval_seconds=settings.notify_interval_seconds,
        max_attempts=settings.notify_max_attempts,
    )
    app.state.front_door_worker = worker
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        worker.start()
        try:
            async with inner(a) as state:
                yield state
        finally:
            worker.stop()

    app.router.lifespan_context = lifespan


class PanelQueueItem(BaseModel):
    """A referral in a locality's panel queue, with the child's name as the reader may see it."""

    child_name: str
    referral: PanelReferralRead


class SteppedDown(BaseModel):
    caf_id: uuid.UUID
    child_id: uuid.UUID
    came_from: str | None = None
    status: str


@router.post("/cafs/{caf_id}/panel", status_code=status.HTTP_201_CREATED, response_model=PanelReferralRead)
def send_caf_to_panel(
    caf_id: uuid.UUID, data: PanelSend, session: SessionDep, actor: CurrentActor
) -> PanelReferralRead:
    """Send a completed CAF whose outcome calls for a multi-agency response to the child's locality panel."""
    referral = panel.send_to_panel(session, actor=actor, caf_id=caf_id, data=data, now=utcnow())
    return panel.referral_read(session, referral)


@router.get("/cafs/{caf_id}/panel", response_model=PanelReferralRead)
def read_caf_panel(caf_id: uuid.UUID, session: SessionDep, actor: CurrentActor) -> PanelReferralRead:
    """The CAF's panel referral and decision (its holders, TAC, and the child's locality team). Audited."""
    return panel.read_referral(session, actor=actor, caf_id=caf_id)


@router.post("/cafs/{caf_id}/panel/decision", response_model=PanelReferralRead)
def decide_caf_panel(
    caf_id: uuid.UUID, data: PanelDecision, session: SessionDep, actor: CurrentActor
) -> PanelReferralRead:
    """Record the panel's decision (the child's local delivery team): 409 when the CAF was not sent to
    panel or is already decided. Its suggested members become TAC invitations."""
    referral = panel.decide_panel(session, actor=actor, caf_id=caf_id, data=data, now=utcnow())
    return panel.referral_read(session, referral)


@router.get("/panel", response_model=list[PanelQueueItem])
def panel_queue(
    session: SessionDep,
    actor: CurrentActor,
    status: Annotated[str, Query(pattern="^(waiting|decided)$")] = "waiting",
) -> list[PanelQueueItem]:
    """The panel queue of your grant's localities, oldest first (local delivery teams). Audited."""
    rows = panel.panel_queue(session, actor=actor, status=status)
    return [PanelQueueItem(child_name=name, referral=r) for r, name in rows]


@router.post("/cafs/{caf_id}/step-up", status_code=status.HTTP_201_CREATED, response_model=StepRead)
def step_up_caf(
    caf_id: uuid.UUID, data: StepUpIn, session: SessionDep, actor: CurrentActor, door: FrontDoorDep
) -> StepRead:
    """Step the CAF up to children's social care: a referral notice is queued for the front door and
    the TAC becomes the core group until stepped down."""
    row = step_up.step_up(
        session, actor=actor, caf_id=caf_id, data=data, channels=door.channels, now=utcnow()
    )
    return StepRead(
        id=row.id,
        caf_id=row.caf_id,
        child_id=row.child_id,
        tac_id=row.tac_id,
        core_group=True,
        front_door=list(door.channels),
    )


@router.post("/children/{child_id}/step-down", response_model=SteppedDown)
def step_down_child(
    child_id: uuid.UUID, data: StepDownIn, session: SessionDep, actor: CurrentActor, practice: PracticeDep
) -> SteppedDown:
    """A social worker steps the case down to early help: the core group reverts to a TAC, or a CAF and
    TAC are opened from the step-down; the Lead Professional goes to the named practitioner."""
    caf = step_up.step_down(
        session,
        actor=actor,
        child_id=child_id,
        data=data,
        signal_days=practice.signal_expiry_days,
        now=utcnow(),
    )
    return SteppedDown(caf_id=caf.id, child_id=caf.child_id, came_from=caf.came_from, status=caf.status)
