"""The locality delivery team's worklist under /api/v1 (directory/service/worklist.py)."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter

from directory.http.config import PracticeDep
from directory.http.deps import CurrentActor, SessionDep, UnitOfWorkRoute
from directory.models import LocalityRead, utcnow
from directory.service.worklist import WorklistRead, locality_worklist, worklist_localities
from directory.worklist import WorklistRules

router = APIRouter(prefix="/api/v1", route_class=UnitOfWorkRoute)


def rules(practice: PracticeDep) -> WorklistRules:
    """The worklist's thresholds, as this authority sets them."""
    return WorklistRules(
        lapse_within_days=practice.worklist_lapse_days, unconfirmed_after_days=practice.still_involved_days
    )


@router.get("/worklists", response_model=list[LocalityRead], tags=["worklist"])
def list_worklists(session: SessionDep, actor: CurrentActor) -> list[LocalityRead]:
    """The localities whose worklist you may read (your grant's; all when it names none)."""
    return [LocalityRead.model_validate(loc) for loc in worklist_localities(session, actor)]


@router.get("/localities/{code}/worklist", response_model=WorklistRead, tags=["worklist"])
def read_worklist(code: str, session: SessionDep, actor: CurrentActor, practice: PracticeDep) -> WorklistRead:
    """One locality's worklist: open CAFs without an agreed Lead Professional, signals about to lapse,
    reviews overdue, involvements not confirmed (and more as they land). Audited with each child named."""
    return locality_worklist(
        session, actor=actor, code=code, today=date.today(), now=utcnow(), rules=rules(practice)
    )
