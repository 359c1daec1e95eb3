"""A practitioner's own work (issue #20): the children they are involved with now, and the open CAFs
they hold, started or are on the Team Around the Child of.

Only the signed-in practitioner's own rows are listed (who they are comes from the token's practitioner
link, never from a request). Names follow the shield rule (a shielded child's current official name
only, unless the reader may see the shield), a grant's localities restrict the list as they restrict
any read, and each look is audited with every child it names (it is the practitioner's own list, so it
is not counted as a look by the trawling alert).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import Field
from sqlmodel import Session, col, select

from directory import audit
from directory.errors import NotAllowed
from directory.models import (
    OPEN_CAF_STATUSES,
    Actor,
    Assessment,
    Child,
    Involvement,
    InvolvementStatus,
    RecordStatus,
    Role,
    Service,
    Tac,
    TacMember,
    TacStatus,
)
from directory.models.base import Output
from directory.reach import reach_filter
from directory.service.common import shown_names

MINE_READERS = frozenset(
    {Role.PRACTITIONER, Role.DESIGNATED_PRACTITIONER, Role.CHILD_PROTECTION, Role.LOCAL_DELIVERY_TEAM}
)
MAX_ROWS = 500
OPEN = [s.value for s in OPEN_CAF_STATUSES]


class MyInvolvementRead(Output):
    """A child you are involved with now."""

    child_id: uuid.UUID
    child_name: str
    date_of_birth: date | None
    involvement_id: uuid.UUID
    service: str
    role: str
    level_of_need: int
    start_date: date
    last_confirmed_at: datetime
    caf_status: str | None = Field(default=None, description="The child's open CAF's status, if one is open")


class MyCafRead(Output):
    """An open CAF you have a part in."""

    caf_id: uuid.UUID
    child_id: uuid.UUID
    child_name: str
    status: str
    parts: list[str] = Field(description="lead_professional, initiator, tac_member")
    tac_status: str | None = None
    next_review_date: date | None = None
    signalled_at: datetime


class MyWorkRead(Output):
    """Your children and your CAFs."""

    children: list[MyInvolvementRead]
    children_more: bool = Field(default=False, description="More than these; the most recent are listed")
    cafs: list[MyCafRead]
    cafs_more: bool = False


def _me(actor: Actor) -> uuid.UUID:
    if actor.role not in MINE_READERS:
        raise NotAllowed("Only practitioners have children and CAFs of their own to list.")
    if actor.practitioner_id is None:
        raise NotAllowed(
            "Your sign-in is not linked to a practitioner record, so nothing is recorded as yours: "
            "ask your directory administrator to link it."
        )
    return actor.practitioner_id


def _children(session: Session, actor: Actor, ids: set[uuid.UUID]) -> dict[uuid.UUID, Child]:
    """The live records among these children that this actor's grant localities let them read."""
    if not ids:
        return {}
    query = select(Child).where(col(Child.id).in_(list(ids)), Child.status == RecordStatus.ACTIVE.value)
    reach = reach_filter(session, actor)
    if reach is not None:
        query = query.where(col(Child.locality_id).in_(list(reach)))
    return {c.id: c for c in session.exec(query).all()}


def _my_involvements(session: Session, me: uuid.UUID) -> list[tuple[Involvement, str]]:
    rows = session.exec(
        select(Involvement, Service.name)
        .join(Service, col(Service.id) == Involvement.service_id)
        .where(Involvement.practitioner_id == me, Involvement.status == InvolvementStatus.ACTIVE.value)
        .order_by(col(Involvement.start_date).desc(), col(Involvement.id))
        .limit(MAX_ROWS + 1)
    ).all()
    return [(inv, name) for inv, name in rows]


def _my_cafs(session: Session, me: uuid.UUID) -> dict[uuid.UUID, tuple[Assessment, set[str]]]:
    found: dict[uuid.UUID, tuple[Assessment, set[str]]] = {}
    held = session.exec(
        select(Assessment).where(
            col(Assessment.status).in_(OPEN),
            (col(Assessment.lead_practitioner_id) == me) | (col(Assessment.initiator_id) == me),
        )
    ).all()
    for caf in held:
        parts = found.setdefault(caf.id, (caf, set()))[1]
        if caf.lead_practitioner_id == me:
            parts.add("lead_professional")
        if caf.initiator_id == me:
            parts.add("initiator")
    member_of = session.exec(
        select(Assessment)
        .join(Tac, col(Tac.assessment_id) == Assessment.id)
        .join(TacMember, col(TacMember.tac_id) == Tac.id)
        .where(
            TacMember.practitioner_id == me,
            col(Assessment.status).in_(OPEN),
            Tac.status != TacStatus.CLOSED.value,
        )
    ).all()
    for caf in member_of:
        found.setdefault(caf.id, (caf, set()))[1].add("tac_member")
    return found


def my_work(session: Session, *, actor: Actor) -> MyWorkRead:
    """The signed-in practitioner's children and open CAFs, as they may see them; audited."""
    me = _me(actor)
    involvements = _my_involvements(session, me)
    cafs = _my_cafs(session, me)
    children = _children(
        session, actor, {i.child_id for i, _ in involvements} | {c.child_id for c, _ in cafs.values()}
    )
    names = shown_names(session, children, actor)
    open_by_child = {
        caf.child_id: caf.status
        for caf in session.exec(
            select(Assessment).where(
                col(Assessment.child_id).in_(list(children)),
                col(Assessment.status).in_(OPEN),
            )
        ).all()
    }
    tacs = {
        t.assessment_id: t
        for t in session.exec(select(Tac).where(col(Tac.assessment_id).in_(list(cafs)))).all()
    }
    shown_involvements = [
        MyInvolvementRead(
            child_id=inv.child_id,
            child_name=names[inv.child_id],
            date_of_birth=children[inv.child_id].date_of_birth,
            involvement_id=inv.id,
            service=service,
            role=inv.role,
            level_of_need=inv.level_of_need,
            start_date=inv.start_date,
            last_confirmed_at=inv.last_confirmed_at,
            caf_status=open_by_child.get(inv.child_id),
        )
        for inv, service in involvements[:MAX_ROWS]
        if inv.child_id in children
    ]
    ordered = sorted(cafs.values(), key=lambda pair: (pair[0].signalled_at, pair[0].id), reverse=True)
    shown_cafs = [
        MyCafRead(
            caf_id=caf.id,
            child_id=caf.child_id,
            child_name=names[caf.child_id],
            status=caf.status,
            parts=sorted(parts),
            tac_status=tacs[caf.id].status if caf.id in tacs else None,
            next_review_date=tacs[caf.id].next_review_date if caf.id in tacs else None,
            signalled_at=caf.signalled_at,
        )
        for caf, parts in ordered[:MAX_ROWS]
        if caf.child_id in children
    ]
    named = sorted({r.child_id for r in shown_involvements} | {r.child_id for r in shown_cafs})
    audit.append(
        session,
        actor=actor,
        action="mine.read",
        target_type="practitioner",
        target_id=me,
        detail={"involvements": len(shown_involvements), "cafs": len(shown_cafs)},
        children=named,
    )
    return MyWorkRead(
        children=shown_involvements,
        children_more=len(involvements) > MAX_ROWS,
        cafs=shown_cafs,
        cafs_more=len(cafs) > MAX_ROWS,
    )
