"""A practitioner's own children and CAFs under /api/v1 (directory/service/mine.py)."""

from __future__ import annotations

from fastapi import APIRouter

from directory.http.deps import CurrentActor, SessionDep, UnitOfWorkRoute
from directory.service.mine import MyWorkRead, my_work

router = APIRouter(prefix="/api/v1", route_class=UnitOfWorkRoute)


@router.get("/me/work", response_model=MyWorkRead, tags=["practice"])
def read_my_work(session: SessionDep, actor: CurrentActor) -> MyWorkRead:
    """The children you are involved with now and the open CAFs you hold, started or are on the Team
    Around the Child of (who you are comes from your sign-in). Audited with every child it names."""
    return my_work(session, actor=actor)
