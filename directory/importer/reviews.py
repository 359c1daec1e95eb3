"""The match review queue: feed rows held for a person (reconcile.py) and their decisions.

Directory admins and data managers review. A held row whose candidates include a shielded child
is listed only to those who may see shielded records in this queue (data managers, whose job is
keeping records right, and designated practitioners); to anyone else it does not exist (not in
the list, "not found" when asked for by id). Shielded candidates show their current official
name and date of birth only, never where they live.

A decision is one of: link the row to a candidate (then the row's trusted fields update that
record, through the same change a feed makes: apply.py) or create a new record from it. Exactly
one of two people deciding the same review at once wins (the row is locked, then claimed while
still open); the other is told it was already decided. Each decision is audited: ids and codes.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field as PField
from sqlmodel import Session, col, select

from directory import audit
from directory import repository as repo
from directory.errors import Conflict, InvalidInput, NotAllowed, NotFound
from directory.importer.apply import apply_row, load_standings, plan
from directory.importer.precedence import Precedence
from directory.importer.rows import AddressRow, ChildRow
from directory.models import (
    Actor,
    Child,
    ChildCreate,
    ChildName,
    MatchReview,
    RecordStatus,
    ReviewStatus,
    Role,
    ShieldSet,
    utcnow,
)
from directory.models.base import Input, Output
from directory.service import SHIELD_VIEWERS, create_child, set_shield
from directory.visibility import RECORD_READERS, SEALED_READERS, may_read_record

REVIEWERS = frozenset({Role.DIRECTORY_ADMIN, Role.DATA_MANAGER})
"""Who works through the review queue."""

SHIELDED_REVIEWERS = frozenset({Role.DATA_MANAGER}) | SHIELD_VIEWERS
"""Who is shown a held row that has a shielded candidate."""

RESTRICTED: dict[str, frozenset[Role]] = {
    "sealed": SEALED_READERS,
    "archived": RECORD_READERS[RecordStatus.ARCHIVED.value] & REVIEWERS,
}
"""Who alone is shown a held row beside a sealed record (an adopted child's birth identity: the
adoption team) or an archived one (data managers), by `MatchReview.restricted`. To anyone else the
row does not exist: not listed, not counted, "not found" by id."""

QUEUE_READERS = REVIEWERS | frozenset().union(*RESTRICTED.values())
"""Everyone who may open the review queue (each sees only the rows shown to their role)."""


class ReviewCandidate(Output):
    """A record the row may be: its grade, and enough to recognise it (never an address)."""

    child_id: uuid.UUID
    grade: str
    name: str
    date_of_birth: date | None
    expected_delivery_date: date | None
    shielded: bool


class ReviewRead(Output):
    """A held row: where it came from, the details as the feed gave them, its candidates."""

    id: uuid.UUID
    status: str
    source: str
    file: str
    line: int
    created_at: Any
    row: dict[str, Any]
    candidates: list[ReviewCandidate]
    child_id: uuid.UUID | None = None


class ReviewDecision(Input):
    """Link the held row to one of its candidates, or create a new record from it."""

    decision: Literal["link", "create"]
    child_id: uuid.UUID | None = PField(default=None, description="The candidate to link to (link only)")


def _require_reviewer(actor: Actor) -> None:
    if actor.role not in QUEUE_READERS:
        raise NotAllowed("Only directory admins and data managers review held feed rows.")


def _visible(actor: Actor, review: MatchReview) -> bool:
    if review.restricted is not None:
        return actor.role in RESTRICTED.get(review.restricted, frozenset())
    return actor.role in REVIEWERS and (not review.shielded_candidate or actor.role in SHIELDED_REVIEWERS)


def shown_to(role: Role) -> sa.ColumnElement[bool]:
    """The held rows this role is shown (the SQL form of `_visible`): what lists and counts use."""
    shown: list[sa.ColumnElement[bool]] = [
        col(MatchReview.restricted) == kind for kind, roles in RESTRICTED.items() if role in roles
    ]
    if role in REVIEWERS:
        usual: sa.ColumnElement[bool] = col(MatchReview.restricted).is_(None)
        if role not in SHIELDED_REVIEWERS:
            usual = sa.and_(usual, col(MatchReview.shielded_candidate).is_(False))
        shown.append(usual)
    return sa.or_(*shown) if shown else sa.false()


def _candidates(session: Session, review: MatchReview, actor: Actor) -> list[ReviewCandidate]:
    ids = [uuid.UUID(hex=c["child_id"]) for c in review.candidates]
    children = {c.id: c for c in session.exec(select(Child).where(col(Child.id).in_(ids))).all()}
    names = {
        n.child_id: n
        for n in session.exec(
            select(ChildName).where(col(ChildName.child_id).in_(ids), ChildName.use == "official")
        ).all()
    }
    out: list[ReviewCandidate] = []
    for c, child_id in zip(review.candidates, ids, strict=True):
        child, name = children.get(child_id), names.get(child_id)
        if child is None or not may_read_record(child, actor):
            continue  # (a record sealed or archived since the row was held: not this reader's)
        out.append(
            ReviewCandidate(
                child_id=child_id,
                grade=str(c["grade"]),
                name=" ".join(p for p in (name.given, name.middle, name.family) if p) if name else "",
                date_of_birth=child.date_of_birth,
                expected_delivery_date=child.expected_delivery_date,
                shielded=child.shielded,
            )
        )
    return out


def _read(session: Session, review: MatchReview, actor: Actor) -> ReviewRead:
    return ReviewRead(
        id=review.id,
        status=review.status,
        source=review.source,
        file=review.file,
        line=review.line,
        created_at=review.created_at,
        row=review.row,
        candidates=_candidates(session, review, actor),
        child_id=review.child_id,
    )


def list_reviews(
    session: Session, *, actor: Actor, status: str = "open", limit: int = 50
) -> list[ReviewRead]:
    """The held rows this actor may see, oldest first; the listing is audited (ids only)."""
    _require_reviewer(actor)
    if status not in {s.value for s in ReviewStatus}:
        raise InvalidInput("status is open, linked or created.", field="status")
    stmt = select(MatchReview).where(MatchReview.status == status, shown_to(actor.role))
    reviews = session.exec(
        stmt.order_by(col(MatchReview.created_at), col(MatchReview.line)).limit(limit)
    ).all()
    found = [_read(session, r, actor) for r in reviews]
    audit.append(
        session,
        actor=actor,
        action="match-review.list",
        detail={"status": status, "returned": len(found)},
        children=[c.child_id for r in found for c in r.candidates],
    )
    return found


def read_review(
    session: Session, *, actor: Actor, review_id: uuid.UUID, for_update: bool = False
) -> MatchReview:
    """One held row this actor may see, or NotFound (the same answer whether absent or withheld)."""
    _require_reviewer(actor)
    review = repo.get(session, MatchReview, review_id, for_update=for_update)
    if review is None or not _visible(actor, review):
        raise NotFound("No held feed row has that id.", review_id=str(review_id))
    return review  # type: ignore[no-any-return]


def show_review(session: Session, *, actor: Actor, review_id: uuid.UUID) -> ReviewRead:
    """One held row with its candidates; audited (ids only)."""
    review = read_review(session, actor=actor, review_id=review_id)
    found = _read(session, review, actor)
    audit.append(
        session,
        actor=actor,
        action="match-review.read",
        target_type="match_review",
        target_id=review.id,
        children=[c.child_id for c in found.candidates],
    )
    return found


def row_of(review: MatchReview) -> ChildRow:
    """The held row again, as the feed gave it."""
    doc = review.row
    return ChildRow(
        source=review.file,
        line=review.line,
        key=None,
        data=ChildCreate.model_validate(doc["child"]),
        identifiers=[(str(s), str(v)) for s, v in doc.get("identifiers") or []],
        addresses=[
            AddressRow(
                a["line1"],
                a.get("line2"),
                a.get("town"),
                a["postcode"],
                date.fromisoformat(a["since"]) if a.get("since") else None,
                date.fromisoformat(a["until"]) if a.get("until") else None,
            )
            for a in doc.get("addresses") or []
        ],
        shielded=bool(doc.get("shielded")),
    )


def decide_review(
    session: Session,
    *,
    actor: Actor,
    review_id: uuid.UUID,
    decision: ReviewDecision,
    precedence: Precedence,
    today: date,
) -> ReviewRead:
    """Link a held row to a candidate (its trusted fields then update that record) or create a new
    record from it; Conflict when someone decided it first. Audited with ids and codes only."""
    review = read_review(session, actor=actor, review_id=review_id, for_update=True)
    if review.status != ReviewStatus.OPEN.value:
        raise Conflict("Someone has already decided this held row.", review_id=str(review.id))
    row = row_of(review)
    changed: list[str] = []
    if decision.decision == "link":
        candidates = {uuid.UUID(hex=c["child_id"]) for c in review.candidates}
        if decision.child_id is None or decision.child_id not in candidates:
            raise InvalidInput("Choose one of the held row's candidates to link it to.", field="child_id")
        child_id = decision.child_id
        standing = load_standings(session.connection(), [child_id]).get(child_id)
        if standing is None:
            raise NotFound("That record no longer exists.", child_id=str(child_id))
        # A sealed or archived record is not changed by a feed: linking a row held beside one says
        # the row is that record's (a re-run then leaves it as decided), and changes nothing.
        fields = plan(row, standing, precedence, review.source).apply if review.restricted is None else None
        changed = apply_row(
            session,
            actor=actor,
            child_id=child_id,
            row=row,
            fields=fields or frozenset(),
            source=review.source,
            today=today,
        )
        if review.restricted is None and row.shielded and not standing.shielded:  # shielded by the sender
            set_shield(
                session,
                actor=actor,
                child_id=child_id,
                data=ShieldSet(reason="shielded by the sending system"),
            )
            changed.append("shield")
        status = ReviewStatus.LINKED
    else:
        body = row.data.model_dump()
        body["identifiers"] = [{"system": s, "value": v} for s, v in row.identifiers]
        child = create_child(session, actor=actor, data=ChildCreate.model_validate(body), today=today)
        if row.shielded:  # the sending system shielded the child: so is its record
            set_shield(
                session,
                actor=actor,
                child_id=child.id,
                data=ShieldSet(reason="shielded by the sending system"),
            )
        child_id, status = child.id, ReviewStatus.CREATED
    _claim(session, actor, review, child_id, status)
    audit.append(
        session,
        actor=actor,
        action=f"match-review.{decision.decision}",
        target_type="match_review",
        target_id=review.id,
        detail={"source": review.source, "changed": ", ".join(changed) or "nothing"},
        children=[child_id],
    )
    session.flush()
    return _read(session, review, actor)


def _claim(
    session: Session, actor: Actor, review: MatchReview, child_id: uuid.UUID, status: ReviewStatus
) -> None:
    """Mark the review decided, only while it is still open: of two deciders, one wins."""
    table = MatchReview.__table__  # type: ignore[attr-defined]
    now = utcnow()
    done = session.connection().execute(
        sa.update(table)
        .where(table.c.id == review.id, table.c.status == ReviewStatus.OPEN.value)
        .values(status=status.value, child_id=child_id, decided_by=actor.subject, decided_at=now)
    )
    if done.rowcount != 1:
        raise Conflict("Someone has already decided this held row.", review_id=str(review.id))
    review.status, review.child_id, review.decided_by, review.decided_at = (
        status.value,
        child_id,
        actor.subject,
        now,
    )
