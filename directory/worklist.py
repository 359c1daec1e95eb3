"""The locality delivery team's worklist, as rows: what in one locality needs someone to act.

Each section is a query over the children living in the locality (`child.locality_id`), registered
in SOURCES under its code; the use case (directory/service/worklist.py) decides who may read it and
what of each row they may see. A section answers ids, dates and codes only: never names.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from directory.models import (
    OPEN_CAF_STATUSES,
    Assessment,
    CafStatus,
    Child,
    Involvement,
    InvolvementStatus,
    LeadProfessionalAssignment,
    PanelReferral,
    RecordStatus,
    Tac,
)
from directory.models.panel import PanelStatus
from directory.models.requests import CafRequest, RequestKind, RequestStatus
from directory.plan_repository import overdue_actions, overdue_reviews


@dataclass(frozen=True)
class WorklistRules:
    """How near a signal's lapse counts as 'about to', how old a confirmation counts as stale, and how
    many items a section lists (a section's query returns one more, to say there are more)."""

    lapse_within_days: int = 7
    unconfirmed_after_days: int = 180
    max_items: int = 100  # per section, oldest first: the section says when there are more


@dataclass(frozen=True)
class Row:
    """One thing to act on: the child, the CAF (if any), when it is or was due, whom it concerns."""

    child_id: uuid.UUID
    caf_id: uuid.UUID | None
    due: date | None
    practitioner_id: uuid.UUID | None
    sensitive: bool = False  # it concerns a sensitive involvement (shown only to those who may see one)
    code: str | None = None  # a code that says more (the CAF's status, the involvement's role)


Source = Callable[[Session, uuid.UUID, date, WorklistRules], list[Row]]


def _in_locality(locality_id: uuid.UUID, column: object) -> sa.ColumnElement[bool]:
    children = select(Child.id).where(
        col(Child.locality_id) == locality_id, col(Child.status) == RecordStatus.ACTIVE.value
    )
    return col(column).in_(children)


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def no_agreed_lead(session: Session, locality_id: uuid.UUID, today: date, rules: WorklistRules) -> list[Row]:
    """Started CAFs whose Lead Professional was never agreed: still the initiator by default (no
    hand-over taken up) and no TAC convened to agree one."""
    handed = select(LeadProfessionalAssignment.assessment_id).where(
        col(LeadProfessionalAssignment.from_practitioner_id).is_not(None)
    )
    convened = select(Tac.assessment_id).where(col(Tac.convened_at).is_not(None))
    rows = session.exec(
        select(Assessment)
        .where(
            col(Assessment.status).in_([CafStatus.IN_PROGRESS.value, CafStatus.COMPLETED.value]),
            _in_locality(locality_id, Assessment.child_id),
            col(Assessment.id).not_in(handed),
            col(Assessment.id).not_in(convened),
        )
        .order_by(col(Assessment.started_at))
        .limit(rules.max_items + 1)
    ).all()
    return [
        Row(
            a.child_id,
            a.id,
            a.started_at.date() if a.started_at else None,
            a.lead_practitioner_id,
            code=a.status,
        )
        for a in rows
    ]


def signals_lapsing(session: Session, locality_id: uuid.UUID, today: date, rules: WorklistRules) -> list[Row]:
    """Signals of intent that lapse within the rule's days unless the CAF is started."""
    until = _start_of(today + timedelta(days=rules.lapse_within_days + 1))
    rows = session.exec(
        select(Assessment)
        .where(
            col(Assessment.status) == CafStatus.SIGNALLED.value,
            col(Assessment.signal_expires_at) < until,
            _in_locality(locality_id, Assessment.child_id),
        )
        .order_by(col(Assessment.signal_expires_at))
        .limit(rules.max_items + 1)
    ).all()
    return [
        Row(a.child_id, a.id, a.signal_expires_at.date() if a.signal_expires_at else None, a.initiator_id)
        for a in rows
    ]


def reviews_overdue(session: Session, locality_id: uuid.UUID, today: date, rules: WorklistRules) -> list[Row]:
    """Teams Around the Child past their review date (open ones), with the Lead Professional."""
    rows = overdue_reviews(session, [locality_id], today, limit=rules.max_items + 1)
    return [Row(r.child_id, r.caf_id, r.due_date, r.practitioner_id) for r in rows]


def actions_overdue(session: Session, locality_id: uuid.UUID, today: date, rules: WorklistRules) -> list[Row]:
    """Open actions of a TAC's plan past their date, with their owner (none: the family's)."""
    rows = overdue_actions(session, [locality_id], today, limit=rules.max_items + 1)
    return [Row(r.child_id, r.caf_id, r.due_date, r.practitioner_id) for r in rows]


def hand_overs_waiting(
    session: Session, locality_id: uuid.UUID, today: date, rules: WorklistRules
) -> list[Row]:
    """Lead Professional hand-overs asked and not yet answered by the practitioner named."""
    rows = session.exec(
        select(CafRequest)
        .where(
            col(CafRequest.kind) == RequestKind.HAND_OVER.value,
            col(CafRequest.status) == RequestStatus.PENDING.value,
            col(CafRequest.assessment_id).in_(
                select(Assessment.id).where(col(Assessment.status).in_([s.value for s in OPEN_CAF_STATUSES]))
            ),
            _in_locality(locality_id, CafRequest.child_id),
        )
        .order_by(col(CafRequest.created_at))
        .limit(rules.max_items + 1)
    ).all()
    return [Row(r.child_id, r.assessment_id, r.created_at.date(), r.practitioner_id) for r in rows]


def not_confirmed(session: Session, locality_id: uuid.UUID, today: date, rules: WorklistRules) -> list[Row]:
    """Active involvements nobody has confirmed for the rule's days."""
    before = _start_of(today - timedelta(days=rules.unconfirmed_after_days))
    rows = session.exec(
        select(Involvement)
        .where(
            col(Involvement.status) == InvolvementStatus.ACTIVE.value,
            col(Involvement.last_confirmed_at) < before,
            _in_locality(locality_id, Involvement.child_id),
        )
        .order_by(col(Involvement.last_confirmed_at))
        .limit(rules.max_items + 1)
    ).all()
    return [
        Row(
            i.child_id,
            None,
            i.last_confirmed_at.date(),
            i.practitioner_id,
            sensitive=i.sensitive,
            code=i.role,
        )
        for i in rows
    ]


def panel_queue(session: Session, locality_id: uuid.UUID, today: date, rules: WorklistRules) -> list[Row]:
    """CAFs sent to the early intervention panel and waiting for its decision."""
    rows = session.exec(
        select(PanelReferral)
        .where(
            col(PanelReferral.status) == PanelStatus.WAITING.value,
            _in_locality(locality_id, PanelReferral.child_id),
        )
        .order_by(col(PanelReferral.sent_at))
        .limit(rules.max_items + 1)
    ).all()
    return [Row(r.child_id, r.caf_id, r.sent_at.date(), r.sent_by_practitioner_id) for r in rows]


SECTIONS: dict[str, str] = {
    "hand-overs-waiting": "Lead Professional hand-overs waiting for an answer",
    "panel-queue": "CAFs waiting for the early intervention panel",
    "no-agreed-lead": "Open CAFs without an agreed Lead Professional",
    "reviews-overdue": "Team Around the Child reviews overdue",
    "actions-overdue": "Plan actions overdue",
    "signals-lapsing": "Signals of intent about to lapse",
    "not-confirmed": "Involvements nobody has confirmed for a long time",
}
"""The sections in the order the page shows them, with their titles."""

SOURCES: dict[str, Source] = {
    "hand-overs-waiting": hand_overs_waiting,
    "actions-overdue": actions_overdue,
    "panel-queue": panel_queue,
    "no-agreed-lead": no_agreed_lead,
    "signals-lapsing": signals_lapsing,
    "reviews-overdue": reviews_overdue,
    "not-confirmed": not_confirmed,
}
