"""The locality delivery team's worklist (issue #18): per locality, what needs someone to act, with the
child's name and whom it concerns as far as the reader may see them. Audited as a read of each child
it names (not counted as looks: it is the team's own queue)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime

from pydantic import Field
from sqlmodel import Session, col, select

from directory import audit
from directory import repository as repo
from directory.errors import NotAllowed, NotFound
from directory.models import Actor, Child, Contact, Locality, Role
from directory.models.base import Output
from directory.permissions import SENSITIVE_VIEWERS, locality_team, may_see_practitioner, may_see_shielded
from directory.service.common import shown_names
from directory.worklist import SECTIONS, SOURCES, Row, WorklistRules

WORKLIST_READERS = frozenset({Role.LOCAL_DELIVERY_TEAM})


class WorkItemRead(Output):
    """One thing to act on."""

    child_id: uuid.UUID
    child_name: str
    caf_id: uuid.UUID | None = None
    due: date | None = Field(
        default=None, description="When it is or was due (or lapses, or was last confirmed)"
    )
    who: Contact | None = Field(default=None, description="Whom it concerns; none when withheld from you")
    withheld: str | None = Field(default=None, description="Why whom it concerns is not shown")
    code: str | None = Field(default=None, description="A code that says more: a CAF's status, a role")


class WorklistSection(Output):
    """One section of the worklist."""

    code: str
    title: str
    items: list[WorkItemRead]
    more: bool = Field(default=False, description="There are more than these (the oldest are listed)")


class WorklistRead(Output):
    """One locality's worklist."""

    locality: str
    locality_name: str
    team: Contact
    as_at: datetime
    sections: list[WorklistSection]


def worklist_localities(session: Session, actor: Actor) -> list[Locality]:
    """The localities whose worklist this actor may read (their grant's; all when it names none)."""
    _require_reader(actor)
    rows = repo.localities(session)
    return [loc for loc in rows if not actor.localities or loc.code in actor.localities]


def _require_reader(actor: Actor) -> None:
    if actor.role not in WORKLIST_READERS:
        raise NotAllowed("The worklist is the local delivery team's: ask your locality's team.")


def _item(
    session: Session, actor: Actor, row: Row, child: Child, name: str, sensitive: set[uuid.UUID]
) -> WorkItemRead:
    who: Contact | None = None
    withheld = None
    if row.practitioner_id is not None:
        if not may_see_shielded(child, actor):
            withheld = "The record is shielded: whom it concerns is shown only to designated practitioners."
        elif not may_see_practitioner(actor, row.practitioner_id, sensitive):
            withheld = "Not shown to you."
        else:
            practitioner, org = repo.practitioner_contact(session, row.practitioner_id)
            who = Contact(
                name=practitioner.name,
                role=practitioner.role,
                organisation=org.name,
                phone=practitioner.phone or org.phone,
                email=practitioner.email or org.email,
            )
    return WorkItemRead(
        child_id=row.child_id,
        child_name=name,
        caf_id=row.caf_id,
        due=row.due,
        who=who,
        withheld=withheld,
        code=row.code,
    )


def _shown_rows(actor: Actor, rows: Iterable[Row]) -> list[Row]:
    # a sensitive involvement says which kind of service a child sees: only for those who may see one
    return [r for r in rows if not r.sensitive or actor.role in SENSITIVE_VIEWERS]


def locality_worklist(
    session: Session, *, actor: Actor, code: str, today: date, now: datetime, rules: WorklistRules
) -> WorklistRead:
    """One locality's worklist as this actor may see it; audited with every child it names."""
    _require_reader(actor)
    locality = session.exec(select(Locality).where(Locality.code == code)).first()
    if locality is None:
        raise NotFound(f"No locality has the code '{code}'.")
    if actor.localities and code not in actor.localities:
        raise NotAllowed(
            f"Your access covers the worklists of {', '.join(actor.localities)} only; ask "
            f"{locality.team_name} about theirs."
        )
    fetched = {key: _shown_rows(actor, SOURCES[key](session, locality.id, today, rules)) for key in SECTIONS}
    found = {key: rows[: rules.max_items] for key, rows in fetched.items()}
    ids = {r.child_id for rows in found.values() for r in rows}
    children = {c.id: c for c in session.exec(select(Child).where(col(Child.id).in_(list(ids)))).all()}
    names = shown_names(session, children, actor)
    sensitive = repo.sensitive_practitioners(
        session, [r.practitioner_id for rows in found.values() for r in rows if r.practitioner_id is not None]
    )
    sections = [
        WorklistSection(
            code=key,
            title=title,
            items=[
                _item(session, actor, r, children[r.child_id], names[r.child_id], sensitive)
                for r in found[key]
            ],
            more=len(fetched[key]) > rules.max_items,
        )
        for key, title in SECTIONS.items()
    ]
    audit.append(
        session,
        actor=actor,
        action="worklist.read",
        target_type="locality",
        target_id=locality.id,
        detail={"locality": locality.code, "items": sum(len(s.items) for s in sections)},
        children=sorted(ids),
    )
    return WorklistRead(
        locality=locality.code,
        locality_name=locality.name,
        team=locality_team(locality),
        as_at=now,
        sections=sections,
    )
