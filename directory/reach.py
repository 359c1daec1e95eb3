"""Grant localities: whether the localities on someone's access grant restrict what they read, find
and change (one rule for the app API, the pages and FHIR).

A deployment chooses with `CHILDINDEX_GRANT_LOCALITIES` (carried on each Actor as `locality_reach`):

- **off** (the default, as before): a grant's localities say only whose local delivery team someone is;
- **writes**: they change only the records of children living in their localities;
- **all**: they also read and find only those children (a search leaves the others out and says so).

A grant with no localities covers the whole authority. A child with no locality on record is outside
every grant that names localities. Every change is checked where it is audited
(`service.common.audit_change`), so no use case can forget it; reads where the card is built
(`service.build_card`, which FHIR's pictures reuse), and searches by `reach_filter`.

A refusal names the locality team to ask: the child's own, except for a shielded child, whose
locality would say where they live; then the asker's own locality team is named.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlmodel import Session, col, select

from directory import repository as repo
from directory.errors import NotAllowed
from directory.models import Actor, Child, Contact, Locality, LocalityReach
from directory.permissions import LOCALITY_TEAM_ASK, ask_contact, how_to_reach, locality_team


class OutsideReach(NotAllowed):
    """A read or change of a child living outside the actor's grant localities."""

    code = "outside-localities"
    title = "Outside the localities your access covers"


def restricts(actor: Actor, *, writing: bool) -> bool:
    """Whether this actor's grant localities restrict a change (writing) or a read or search."""
    if not actor.localities or actor.locality_reach == LocalityReach.OFF:
        return False
    return writing or actor.locality_reach == LocalityReach.ALL


def reach_filter(session: Session, actor: Actor) -> frozenset[uuid.UUID] | None:
    """The ids of the localities this actor may read and find children in; None when unrestricted."""
    if not restricts(actor, writing=False):
        return None
    rows = session.exec(select(Locality.id).where(col(Locality.code).in_(list(actor.localities)))).all()
    return frozenset(rows)


def reach_condition(actor: Actor) -> sa.ColumnElement[bool] | None:
    """A condition on `child` for the children this actor may read and find (a query's where clause:
    FHIR searches, history and exports); None when unrestricted."""
    if not restricts(actor, writing=False):
        return None
    localities = select(Locality.id).where(col(Locality.code).in_(list(actor.localities)))
    return col(Child.locality_id).in_(localities)


def within_reach(session: Session, actor: Actor, child: Child, *, writing: bool) -> bool:
    """Whether the actor's grant localities let them read (or, writing, change) this child's record."""
    if not restricts(actor, writing=writing):
        return True
    code = repo.locality_code(session, child.locality_id)
    return code is not None and code in actor.localities


def _own_team(session: Session, actor: Actor) -> Contact:
    own = session.exec(select(Locality).where(col(Locality.code).in_(list(actor.localities)))).first()
    return LOCALITY_TEAM_ASK if own is None else locality_team(own)


def require_within_reach(session: Session, actor: Actor, child: Child, *, writing: bool) -> None:
    """Refuse a read or change of a child living outside the actor's grant localities, naming whom to ask."""
    if within_reach(session, actor, child, writing=writing):
        return
    doing = "change" if writing else "see"
    if child.shielded:
        team = _own_team(session, actor)
        raise OutsideReach(
            f"Your access covers only some localities, and this child's record is not in them, so you "
            f"cannot {doing} it. Ask {team.name}{how_to_reach(team)}: they can reach the right team.",
            ask=team.name,
        )
    if child.locality_id is None:
        team = LOCALITY_TEAM_ASK
        where = (
            "This child has no locality on record, so the record is outside the localities your access covers"
        )
    else:
        team = ask_contact(session, child)
        where = f"This child lives outside the localities your access covers ({', '.join(actor.localities)})"
    raise OutsideReach(
        f"{where}: you cannot {doing} the record. Ask {team.name}{how_to_reach(team)}.",
        ask=team.name,
    )
