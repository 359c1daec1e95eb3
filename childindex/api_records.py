"""The /api/v1 routes of records outside the ordinary: adoption (the adoption team), a death and a
move out of the area (directory admins), and a record's life-cycle dates (docs/lifecycle.md)."""

from __future__ import annotations

import uuid
from datetime import date

from fastapi import APIRouter, status

from directory.http.deps import CurrentActor, SessionDep, UnitOfWorkRoute
from directory.models import (
    AdoptionCreate,
    AdoptionRead,
    ChildRef,
    DeathRecord,
    LifecycleRead,
    MoveAway,
)
from directory.service import adoption, lifecycle
from directory.service.children import child_ref
from directory.service.common import audit_change, load_child
from directory.visibility import require_readable

router = APIRouter(prefix="/api/v1", route_class=UnitOfWorkRoute)


@router.post(
    "/children/{child_id}/adoption",
    status_code=status.HTTP_201_CREATED,
    response_model=ChildRef,
    tags=["children"],
)
def adopt_child(
    child_id: uuid.UUID, data: AdoptionCreate, session: SessionDep, actor: CurrentActor
) -> ChildRef:
    """Record an adoption (the adoption team): a new record with the adoptive identity; the birth
    record is sealed, and from then on exists only for the adoption team."""
    return child_ref(adoption.adopt(session, actor=actor, child_id=child_id, data=data, today=date.today()))


@router.get("/children/{child_id}/adoption", response_model=AdoptionRead, tags=["children"])
def read_adoption(child_id: uuid.UUID, session: SessionDep, actor: CurrentActor) -> AdoptionRead:
    """The adoption a record (sealed or adoptive) is part of: the adoption team only. Audited."""
    return adoption.read_adoption(session, actor=actor, child_id=child_id)


@router.post("/children/{child_id}/death", response_model=ChildRef, tags=["children"])
def record_death(
    child_id: uuid.UUID, data: DeathRecord, session: SessionDep, actor: CurrentActor
) -> ChildRef:
    """Record a child's death (directory admins): the record is archived, its involvements ended and
    an open CAF closed."""
    return child_ref(
        lifecycle.record_death(session, actor=actor, child_id=child_id, data=data, today=date.today())
    )


@router.post("/children/{child_id}/moved-away", response_model=LifecycleRead, tags=["children"])
def record_move_away(
    child_id: uuid.UUID, data: MoveAway, session: SessionDep, actor: CurrentActor
) -> LifecycleRead:
    """Record a move out of the area (directory admins): the new authority and the day; the daily run
    archives the record once the configured period has passed."""
    row = lifecycle.record_move_away(session, actor=actor, child_id=child_id, data=data, today=date.today())
    return _read(session, row.child_id)


@router.get("/children/{child_id}/lifecycle", response_model=LifecycleRead, tags=["children"])
def read_lifecycle(child_id: uuid.UUID, session: SessionDep, actor: CurrentActor) -> LifecycleRead:
    """A record's life-cycle dates (archived, died, moved away): for whoever may read the record. Audited."""
    require_readable(load_child(session, child_id), actor)
    audit_change(session, actor, "child.lifecycle.read", child_id)
    return _read(session, child_id)


def _read(session: SessionDep, child_id: uuid.UUID) -> LifecycleRead:
    return lifecycle.lifecycle_read(session, load_child(session, child_id))
