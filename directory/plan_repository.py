"""The queries of a TAC's plan (directory/service/plan.py): its actions and reviews, and what is
overdue per locality (the locality delivery team's worklist calls `overdue_reviews` and
`overdue_actions`). Kept beside repository.py so that the plan's queries read as one group."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlmodel import Session, col, select

from directory.models import ActionStatus, Child, RecordStatus, Tac, TacAction, TacReview, TacStatus


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


def overdue_reviews(session: Session, locality_ids: Sequence[uuid.UUID], today: date) -> list[Overdue]:
    """Open TACs of active children in these localities whose next review date has passed, oldest first."""
    if not locality_ids:
        return []
    rows = session.exec(
        select(Tac)
        .join(Child, col(Child.id) == Tac.child_id)
        .where(
            col(Child.locality_id).in_(list(locality_ids)),
            Child.status == RecordStatus.ACTIVE.value,
            Tac.status != TacStatus.CLOSED.value,
            col(Tac.next_review_date) < today,
        )
        .order_by(col(Tac.next_review_date), col(Tac.id))
    ).all()
    return [
        Overdue(child_id=t.child_id, caf_id=t.assessment_id, tac_id=t.id, due_date=t.next_review_date)
        for t in rows
        if t.next_review_date is not None
    ]


def overdue_actions(session: Session, locality_ids: Sequence[uuid.UUID], today: date) -> list[Overdue]:
    """Open actions past their date, of open TACs of active children in these localities, oldest first."""
    if not locality_ids:
        return []
    rows = session.exec(
        select(TacAction, Tac)
        .join(Tac, col(Tac.id) == TacAction.tac_id)
        .join(Child, col(Child.id) == TacAction.child_id)
        .where(
            col(Child.locality_id).in_(list(locality_ids)),
            Child.status == RecordStatus.ACTIVE.value,
            Tac.status != TacStatus.CLOSED.value,
            TacAction.status == ActionStatus.OPEN.value,
            col(TacAction.due_date) < today,
        )
        .order_by(col(TacAction.due_date), col(TacAction.id))
    ).all()
    return [
        Overdue(child_id=a.child_id, caf_id=t.assessment_id, tac_id=t.id, due_date=a.due_date, action_id=a.id)
        for a, t in rows
    ]
