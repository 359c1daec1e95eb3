"""The locality overview's counts: counts only, never a child (the local delivery team's view of its
area; childindex/web/localities.py)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import and_, case, func, or_
from sqlmodel import Session, col, select

from directory.models import Assessment, Child, Involvement, Service, Tac
from directory.repository import OPEN_CAF


def children_by_level_per_locality(session: Session) -> list[tuple[uuid.UUID | None, int, int]]:
    """(locality, highest active level of need (1 when none), children) over active children."""
    highest = (
        select(Involvement.child_id, func.max(Involvement.level_of_need).label("level"))
        .where(Involvement.status == "active", Involvement.sensitive == False)  # noqa: E712
        .group_by(col(Involvement.child_id))
        .subquery()
    )
    level = func.coalesce(highest.c.level, 1)
    rows = session.exec(
        select(Child.locality_id, level, func.count())
        .select_from(Child)
        .outerjoin(highest, highest.c.child_id == col(Child.id))
        .where(Child.status == "active")
        .group_by(col(Child.locality_id), level)
    ).all()
    return [(loc, int(lvl), int(n)) for loc, lvl, n in rows]


def cafs_per_locality(session: Session, today: date) -> list[tuple[uuid.UUID | None, str, int]]:
    """(locality, measure, count): open CAFs, CAFs awaiting a TAC, TACs past their review date."""
    out: list[tuple[uuid.UUID | None, str, int]] = []
    open_rows = session.exec(
        select(Child.locality_id, func.count())
        .join(Assessment, col(Assessment.child_id) == col(Child.id))
        .where(col(Assessment.status).in_(OPEN_CAF), Child.status == "active")
        .group_by(col(Child.locality_id))
    ).all()
    out += [(loc, "open_cafs", int(n)) for loc, n in open_rows]
    convened = select(Tac.assessment_id).where(col(Tac.status).in_(["convened"]))
    awaiting = session.exec(
        select(Child.locality_id, func.count())
        .join(Assessment, col(Assessment.child_id) == col(Child.id))
        .where(
            col(Assessment.status).in_(["in_progress", "completed"]),
            or_(col(Assessment.outcome).is_(None), col(Assessment.outcome) == "multi_agency_response"),
            col(Assessment.id).not_in(convened),
            Child.status == "active",
        )
        .group_by(col(Child.locality_id))
    ).all()
    out += [(loc, "awaiting_tac", int(n)) for loc, n in awaiting]
    overdue = session.exec(
        select(Child.locality_id, func.count())
        .join(Tac, col(Tac.child_id) == col(Child.id))
        .where(Tac.status == "convened", col(Tac.next_review_date) < today, Child.status == "active")
        .group_by(col(Child.locality_id))
    ).all()
    out += [(loc, "tac_review_overdue", int(n)) for loc, n in overdue]
    return out


def involvements_by_service_per_locality(session: Session) -> list[tuple[uuid.UUID | None, str, int]]:
    """(locality, service type, active involvements), sensitive services left out."""
    rows = session.exec(
        select(Child.locality_id, Service.service_type, func.count())
        .join(Involvement, col(Involvement.child_id) == col(Child.id))
        .join(Service, col(Service.id) == col(Involvement.service_id))
        .where(Involvement.status == "active", Involvement.sensitive == False, Child.status == "active")  # noqa: E712
        .group_by(col(Child.locality_id), col(Service.service_type))
    ).all()
    return [(loc, str(kind), int(n)) for loc, kind, n in rows]


def caf_events_by_month(
    session: Session, locality_id: uuid.UUID | None, months: list[tuple[datetime, datetime]]
) -> dict[str, list[int]]:
    """For one locality (None: no locality recorded), per [start, end) month: CAFs signalled, CAFs
    started and CAFs closed (a withdrawn or expired signal is not a closed CAF). Children on the
    directory now (active or archived), counted where they live now. One query, a sum per cell."""
    events = {
        "signalled": (col(Assessment.signalled_at), None),
        "started": (col(Assessment.started_at), None),
        "closed": (col(Assessment.closed_at), col(Assessment.status) == "closed"),
    }
    columns = []
    for when, only in events.values():
        for start, end in months:
            hit = and_(when >= start, when < end) if only is None else and_(when >= start, when < end, only)
            columns.append(func.sum(case((hit, 1), else_=0)))
    where = col(Child.locality_id).is_(None) if locality_id is None else col(Child.locality_id) == locality_id
    row = session.exec(
        select(*columns)
        .select_from(Assessment)
        .join(Child, col(Child.id) == col(Assessment.child_id))
        .where(where, col(Child.status).in_(["active", "archived"]))
    ).one()
    values = [int(v or 0) for v in row]
    n = len(months)
    return {event: values[i * n : (i + 1) * n] for i, event in enumerate(events)}
