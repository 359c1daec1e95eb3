"""The queries of a TAC's plan (directory/service/plan.py): its actions and reviews, and what is
overdue per locality (the locality delivery team's worklist calls `overdue_reviews` and
`overdue_actions`). Kept beside repository.py so that the plan's queries read as one group."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from directory.models import (
    ActionStatus,
    Assessment,
    Child,
    RecordStatus,
    Tac,
    TacAction,
    TacReview,
    TacStatus,
)


def actions_of(session: Session, tac_id: uuid.UUID) -> Sequence[TacAction]:
    """A TAC's actions: open first, then by date."""
    return session.exec(
        select(TacAction)
        .where(TacAction.tac_id == tac_id)
        .order_by(
            col(TacAction.status) != ActionStatus.OPEN.value,
            col(TacAction.due_date),
            col(TacAction.created_at),
        )
    ).all()


def reviews_of(session: Session, tac_id: uuid.UUID) -> Sequence[TacReview]:
    """A TAC's reviews, latest first."""
    return session.exec(
        select(TacReview)
        .where(TacReview.tac_id == tac_id)
        .order_by(col(TacReview.held_on).desc(), col(TacReview.recorded_at).desc())
    ).all()


@dataclass(frozen=True)
class Overdue:
    """Something of a TAC's plan past its date: ids and the date only (a worklist row names no one)."""

    child_id: uuid.UUID
    caf_id: uuid.UUID
    tac_id: uuid.UUID
    due_date: date
    action_id: uuid.UUID | None = None  # None: the TAC's review is overdue
    practitioner_id: uuid.UUID | None = None  # whom it concerns: the Lead Professional, the action's owner


def overdue_reviews(
    session: Session, locality_ids: Sequence[uuid.UUID], today: date, *, limit: int | None = None
) -> list[Overdue]:
    """Open TACs of active children in these localities whose next review date has passed, oldest first
    (at most `limit`), each with the CAF's Lead Professional."""
    if not locality_ids:
        return []
    tac, child, caf = _table(Tac), _table(Child), _table(Assessment)
    stmt = (
        sa.select(
            tac.c.child_id, tac.c.assessment_id, tac.c.id, tac.c.next_review_date, caf.c.lead_practitioner_id
        )
        .join(child, child.c.id == tac.c.child_id)
        .join(caf, caf.c.id == tac.c.assessment_id)
        .where(
            child.c.locality_id.in_(list(locality_ids)),
            child.c.status == RecordStatus.ACTIVE.value,
            tac.c.status != TacStatus.CLOSED.value,
            tac.c.next_review_date < today,
        )
        .order_by(tac.c.next_review_date, tac.c.id)
        .limit(limit)
    )
    return [
        Overdue(child_id=c, caf_id=a, tac_id=t, due_date=d, practitioner_id=lp)
        for c, a, t, d, lp in session.execute(stmt)
    ]


def overdue_actions(
    session: Session, locality_ids: Sequence[uuid.UUID], today: date, *, limit: int | None = None
) -> list[Overdue]:
    """Open actions past their date, of open TACs of active children in these localities, oldest first
    (at most `limit`), each with its owner (none when the family owns it)."""
    if not locality_ids:
        return []
    action, tac, child = _table(TacAction), _table(Tac), _table(Child)
    stmt = (
        sa.select(
            action.c.child_id,
            tac.c.assessment_id,
            action.c.tac_id,
            action.c.due_date,
            action.c.id,
            action.c.owner_practitioner_id,
        )
        .join(tac, tac.c.id == action.c.tac_id)
        .join(child, child.c.id == action.c.child_id)
        .where(
            child.c.locality_id.in_(list(locality_ids)),
            child.c.status == RecordStatus.ACTIVE.value,
            tac.c.status != TacStatus.CLOSED.value,
            action.c.status == ActionStatus.OPEN.value,
            action.c.due_date < today,
        )
        .order_by(action.c.due_date, action.c.id)
        .limit(limit)
    )
    return [
        Overdue(child_id=c, caf_id=a, tac_id=t, due_date=d, action_id=i, practitioner_id=o)
        for c, a, t, d, i, o in session.execute(stmt)
    ]


def _table(model: type[SQLModel]) -> sa.Table:
    # Core columns, not rows: a worklist reads thousands of ids, and building ORM rows for them costs
    # ten times the query.
    return model.__table__  # type: ignore[attr-defined,no-any-return]
