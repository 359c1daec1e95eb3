"""A record's life on a schedule: archived at the end of the age range (later while the young person
consents or a service stays involved), on a death, some time after a move out of the area; purged
some years after it was archived, leaving a tombstone.

The rules (the ages, the periods) come in as `LifecycleRules`, built by the composition root from the
settings. `run_lifecycle` does everything that is due, once a day (`childindex lifecycle run`); a
second run the same day finds nothing to do. Every change is audited with ids and codes only.

**Extension past the archive age** (to `extended_age`, 25 by default, as ContactPoint allowed): a
record stays active while the young person is under that age and either (a) a consent given by the
young person themself (a competent young person, `given_by_kind = young_person`) is current, or
(b) a service above the universal level (level of need 2 or more) is still involved. When neither
holds any more, or at `extended_age`, the next run archives it.

**Purge** deletes every row that holds the child's personal data, table by table (`PURGED_ROWS`:
the list to extend when a table that holds a child's data is added), removes the record from the
search index (its outbox row), and leaves the child row as a tombstone: its id, status `purged`,
and in `child_lifecycle` the dates it was archived and purged. The audit chain is not touched (it
holds ids and codes only; free text lives in `audit_note`, purged with the rest), so it still
verifies.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from directory import audit
from directory import repository as repo
from directory.errors import InvalidInput, NotAllowed
from directory.merge_moves import merged_into_ids
from directory.models import (
    OPEN_CAF_STATUSES,
    Actor,
    ArchiveReason,
    CafClose,
    Child,
    ChildLifecycle,
    Consent,
    ConsentGiver,
    DeathRecord,
    Involvement,
    InvolvementStatus,
    LifecycleRead,
    MoveAway,
    RecordStatus,
    Role,
    Sex,
    utcnow,
)
from directory.service.caf import close_caf
from directory.service.common import active_child, add_years, audit_change, touch
from directory.service.involvements import _save_involvement_change
from directory.service.versions import new_version

LIFECYCLE_RECORDERS = frozenset({Role.DIRECTORY_ADMIN})
"""Who may record a death or a move out of the area (through the app API; `childindex pds refresh`
acts as one)."""

DEATH_CAF_REASON = "The child has died; the record is closed."

PURGED_THROUGH: list[tuple[str, str, str, str]] = [
    # (table, its column, the parent table it points at, the parent's child-id column): deleted first
    ("tac_member", "tac_id", "tac", "child_id"),
    ("merge_move", "merge_id", "child_merge", "kept_id"),  # what merges into the record moved
]
"""Tables that reach the child through another table."""

PURGED_ROWS: list[tuple[str, str]] = [
    # (table, the column that holds the child's id): deleted in this order (children before parents)
    ("panel_suggestion", "child_id"),  # the panel and step up (docs/panel.md)
    ("panel_referral", "child_id"),
    ("front_door_notice", "child_id"),
    ("step_up", "child_id"),
    ("notice", "child_id"),
    ("notification", "child_id"),
    ("caf_request", "child_id"),  # hand-overs, asks to join, invitations (their reasons are free text)
    ("tac_action", "child_id"),  # the TAC's plan (directory/models/plan.py)
    ("tac_review", "child_id"),
    ("tac", "child_id"),
    ("lead_professional_assignment", "child_id"),
    ("assessment", "child_id"),
    ("involvement_version", "child_id"),
    ("involvement", "child_id"),
    ("consent", "child_id"),
    ("related_person", "child_id"),
    ("child_address", "child_id"),
    ("child_identifier", "child_id"),
    ("child_name", "child_id"),
    ("audit_note", "child_id"),
    ("child_version", "child_id"),  # the record as it was at each version
    ("match_review", "child_id"),  # feed rows linked to the record (the row as the feed gave it)
    ("child_merge", "kept_id"),  # the merges into it (the duplicates are purged with it)
]
"""Every table that holds a child's personal data, with the column that names the child: the list to
extend when such a table is added (tests/directory/test_lifecycle.py checks every table with a
child_id column is on it, or knowingly left off)."""


@dataclass(frozen=True)
class LifecycleRules:
    """The ages and periods of the life cycle (from the settings)."""

    archive_age: int = 18
    extended_age: int = 25
    purge_after_years: int = 6
    moved_away_archive_days: int = 90


@dataclass
class LifecycleReport:
    """What a run did (or, dry, would do): counts only."""

    archived_aged_out: int = 0
    kept_past_archive_age: int = 0
    archived_moved_away: int = 0
    purged: int = 0
    dry_run: bool = False
    purged_ids: list[uuid.UUID] = field(default_factory=list, repr=False)

    def lines(self) -> list[str]:
        """The report, one line each, for the command to print."""
        would = "would be " if self.dry_run else ""
        return [
            f"{self.archived_aged_out} record(s) {would}archived at the end of the age range",
            f"{self.kept_past_archive_age} record(s) kept active past the archive age "
            "(the young person's consent, or a service involved)",
            f"{self.archived_moved_away} record(s) {would}archived after a move out of the area",
            f"{self.purged} archived record(s) {would}purged",
        ]


# --------------------------------------------------------------------------- archiving


def _lifecycle_row(session: Session, child_id: uuid.UUID) -> ChildLifecycle:
    row = session.get(ChildLifecycle, child_id)
    if row is None:
        row = ChildLifecycle(child_id=child_id)
    return row


def _lifecycle_rows(session: Session, children: Sequence[Child]) -> dict[uuid.UUID, ChildLifecycle]:
    """The life-cycle rows of many children at once (a new, unsaved one for those that have none)."""
    ids = [c.id for c in children]
    found: dict[uuid.UUID, ChildLifecycle] = {}
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        rows = session.exec(select(ChildLifecycle).where(col(ChildLifecycle.child_id).in_(chunk))).all()
        found.update((r.child_id, r) for r in rows)
    return {i: found.get(i) or ChildLifecycle(child_id=i) for i in ids}


def archive(
    session: Session,
    *,
    actor: Actor,
    child: Child,
    reason: ArchiveReason,
    now: datetime,
    row: ChildLifecycle | None = None,
) -> None:
    """Archive one active record (it leaves searches and practitioners' cards); audited with the code.
    (`row`: its life-cycle row, when the caller loaded it already.)"""
    child.status = RecordStatus.ARCHIVED.value
    child.archived_reason = reason.value
    # a version in its history; its outbox row: the search index drops it
    new_version(session, actor=actor, child=child, changed=["status"], source="lifecycle")
    row = row or _lifecycle_row(session, child.id)
    row.archived_at = now
    session.add(row)
    audit_change(session, actor, "child.archive", child.id, {"reason": reason.value})


def _aged_out(session: Session, rules: LifecycleRules, today: date) -> tuple[list[Child], int]:
    """Active records past the archive age that are due (and how many are kept by an extension)."""
    born_by = add_years(today, -rules.archive_age)
    candidates = list(
        session.exec(
            select(Child)
            .where(Child.status == RecordStatus.ACTIVE.value, col(Child.date_of_birth) <= born_by)
            .order_by(col(Child.id))
            .with_for_update(skip_locked=True)  # (a second run at the same time takes other rows)
        ).all()
    )
    if not candidates:
        return [], 0
    extended_from = add_years(today, -rules.extended_age)
    young = [c.id for c in candidates if c.date_of_birth is not None and c.date_of_birth > extended_from]
    kept = _extended(session, young) if young else set()
    due = [c for c in candidates if c.id not in kept]
    return due, len(kept)


def _extended(session: Session, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Of these young people, those whose record is kept: their own current consent, or a service
    above the universal level still involved."""
    kept: set[uuid.UUID] = set()
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        kept.update(
            session.exec(
                select(Consent.child_id).where(
                    col(Consent.child_id).in_(chunk),
                    Consent.given_by_kind == ConsentGiver.YOUNG_PERSON.value,
                    col(Consent.withdrawn_at).is_(None),
                )
            ).all()
        )
        kept.update(
            session.exec(
                select(Involvement.child_id).where(
                    col(Involvement.child_id).in_(chunk),
                    Involvement.status == InvolvementStatus.ACTIVE.value,
                    col(Involvement.level_of_need) >= 2,
                )
            ).all()
        )
    return kept


def _moved_away_due(session: Session, rules: LifecycleRules, today: date) -> list[Child]:
    """Active records whose move out of the area is older than the configured period."""
    moved_by = today - timedelta(days=rules.moved_away_archive_days)
    return list(
        session.exec(
            select(Child)
            .join(ChildLifecycle, col(ChildLifecycle.child_id) == col(Child.id))
            .where(Child.status == RecordStatus.ACTIVE.value, col(ChildLifecycle.moved_on) <= moved_by)
            .order_by(col(Child.id))
            .with_for_update(skip_locked=True)  # (a second run at the same time takes other rows)
        ).all()
    )


def _purge_due(session: Session, rules: LifecycleRules, now: datetime) -> list[Child]:
    """Archived records archived at least `purge_after_years` ago."""
    cutoff = datetime.combine(add_years(now.date(), -rules.purge_after_years), now.timetz())
    return list(
        session.exec(
            select(Child)
            .join(ChildLifecycle, col(ChildLifecycle.child_id) == col(Child.id))
            .where(Child.status == RecordStatus.ARCHIVED.value, col(ChildLifecycle.archived_at) <= cutoff)
            .order_by(col(Child.id))
            .with_for_update(skip_locked=True)  # (a second run at the same time takes other rows)
        ).all()
    )


# --------------------------------------------------------------------------- purge


def purge(session: Session, *, actor: Actor, child: Child, now: datetime) -> None:
    """Delete the child's personal data for good and leave a tombstone (id, status, archive and purge
    dates); the search index drops it through the outbox. Audited with the id only."""
    if child.status != RecordStatus.ARCHIVED.value:
        raise InvalidInput("Only an archived record can be purged.", child_id=str(child.id))
    for duplicate_id in merged_into_ids(session, child.id):
        duplicate = session.get(Child, duplicate_id)
        assert duplicate is not None
        _purge_rows(session, duplicate)  # a duplicate merged into it: a pointer, purged with it
    _purge_rows(session, child)
    row = _lifecycle_row(session, child.id)
    row.died_on, row.moved_to, row.moved_on, row.purged_at = None, None, None, now
    session.add(row)
    session.flush()
    audit_change(session, actor, "child.purge", child.id)


def _purge_rows(session: Session, child: Child) -> None:
    """Delete every row holding the child's personal data and make its row a tombstone."""
    conn = session.connection()
    session.flush()
    bound = {"child_id": _bind(conn, child.id)}
    for table, column, parent, parent_column in PURGED_THROUGH:
        conn.execute(
            sa.text(
                f"DELETE FROM {table} WHERE {column} IN "
                f"(SELECT id FROM {parent} WHERE {parent_column} = :child_id)"
            ),
            bound,
        )
    for table, column in PURGED_ROWS:
        conn.execute(sa.text(f"DELETE FROM {table} WHERE {column} = :child_id"), bound)
    child.status = RecordStatus.PURGED.value
    child.date_of_birth = child.expected_delivery_date = None
    child.sex = Sex.UNKNOWN.value
    child.mother_id = child.locality_id = child.school_id = child.gp_practice_id = None
    child.shielded, child.shielded_reason, child.shielded_by, child.shielded_at = False, None, None, None
    child.archived_reason = None
    touch(session, child)


def _bind(conn: sa.Connection, child_id: uuid.UUID) -> object:
    """A child id as a raw statement must bind it (SQLite stores uuids as 32 hex characters)."""
    return child_id if conn.dialect.name == "postgresql" else child_id.hex


# --------------------------------------------------------------------------- death, moving away


def record_death(
    session: Session, *, actor: Actor, child_id: uuid.UUID, data: DeathRecord, today: date
) -> Child:
    """Close the record of a child who has died: archived (reason died, the date of death), every
    involvement ended on that day, an open CAF closed (its TAC and Lead Professional with it)."""
    if actor.role not in LIFECYCLE_RECORDERS:
        raise NotAllowed("Only a directory admin (or the demographics feed) can record a death.")
    child = active_child(session, child_id, for_update=True, actor=actor)
    died = data.date_of_death
    problem = death_date_problem(died, born=child.date_of_birth, today=today)
    if problem is not None:
        raise InvalidInput(problem)
    now = utcnow()
    for inv, *_ in repo.involvements_with_service(session, child.id):
        if inv.status == InvolvementStatus.ACTIVE.value:
            inv.status, inv.end_date = InvolvementStatus.ENDED.value, max(died, inv.start_date)
            _save_involvement_change(session, actor, inv, "end")
    caf = repo.open_caf(session, child.id)
    if caf is not None and caf.status in {s.value for s in OPEN_CAF_STATUSES}:
        close_caf(session, actor=actor, caf_id=caf.id, data=CafClose(reason=DEATH_CAF_REASON), now=now)
    row = _lifecycle_row(session, child.id)
    row.died_on = died
    archive(session, actor=actor, child=child, reason=ArchiveReason.DIED, now=now, row=row)
    if data.source is not None:  # who reported it, as a code (the pages ask)
        audit_change(session, actor, "child.death", child.id, {"source": data.source.value})
    return child


def death_date_problem(died: date, *, born: date | None, today: date) -> str | None:
    """Why a date of death cannot be right (in the future, before the birth), or None."""
    if died > today:
        return "The date of death is in the future."
    if born is not None and died < born:
        return "The date of death is before the date of birth."
    return None


MOVE_AHEAD_DAYS = 31
"""How far ahead a move out of the area may be recorded."""


def move_date_problem(moved_on: date, *, today: date) -> str | None:
    """Why a day of moving away cannot be recorded (more than a month ahead), or None."""
    if moved_on > today + timedelta(days=MOVE_AHEAD_DAYS):
        return "A move out of the area can be recorded at most a month ahead."
    return None


def archive_due_on(moved_on: date, rules: LifecycleRules) -> date:
    """The day from which the daily run archives a record after a move out of the area."""
    return moved_on + timedelta(days=rules.moved_away_archive_days)


def purge_due_on(archived_at: datetime, rules: LifecycleRules) -> date:
    """The day from which the daily run purges an archived record."""
    return add_years(archived_at.date(), rules.purge_after_years)


def record_move_away(
    session: Session, *, actor: Actor, child_id: uuid.UUID, data: MoveAway, today: date
) -> ChildLifecycle:
    """Record that a child moved out of the area (the authority, the day); the record is archived by
    the daily run once the configured period has passed (their services may still be handing over)."""
    if actor.role not in LIFECYCLE_RECORDERS:
        raise NotAllowed("Only a directory admin can record a move out of the area.")
    child = active_child(session, child_id, for_update=True, actor=actor)
    problem = move_date_problem(data.moved_on, today=today)
    if problem is not None:
        raise InvalidInput(problem)
    row = _lifecycle_row(session, child.id)
    row.moved_to, row.moved_on = data.authority, data.moved_on
    session.add(row)
    new_version(session, actor=actor, child=child, changed=["moved away"], source="app")
    audit_change(session, actor, "child.moved-away", child.id)
    return row


# --------------------------------------------------------------------------- the daily run


def run_lifecycle(
    session: Session, *, actor: Actor, rules: LifecycleRules, now: datetime, dry_run: bool = False
) -> LifecycleReport:
    """Archive what is due (age, moved away), purge what is due; with `dry_run`, only count."""
    today = now.date()
    report = LifecycleReport(dry_run=dry_run)
    aged, report.kept_past_archive_age = _aged_out(session, rules, today)
    due_by_age = {c.id for c in aged}
    moved = [c for c in _moved_away_due(session, rules, today) if c.id not in due_by_age]
    report.archived_aged_out, report.archived_moved_away = len(aged), len(moved)
    purgeable = _purge_due(session, rules, now)
    report.purged = len(purgeable)
    if dry_run:
        return report
    rows = _lifecycle_rows(session, [*aged, *moved])
    with session.no_autoflush:  # (one flush for the lot: a flush per record was most of the cost)
        for child in aged:
            archive(
                session, actor=actor, child=child, reason=ArchiveReason.AGED_OUT, now=now, row=rows[child.id]
            )
        for child in moved:
            archive(
                session,
                actor=actor,
                child=child,
                reason=ArchiveReason.MOVED_AWAY,
                now=now,
                row=rows[child.id],
            )
    session.flush()
    for child in purgeable:
        purge(session, actor=actor, child=child, now=now)
        report.purged_ids.append(child.id)
    if aged or moved or purgeable:
        audit.append(
            session,
            actor=actor,
            action="lifecycle.run",
            detail={"aged_out": len(aged), "moved_away": len(moved), "purged": len(purgeable)},
        )
    return report


def lifecycle_of(session: Session, child_id: uuid.UUID) -> ChildLifecycle | None:
    """The life-cycle dates of a record, if any."""
    return session.get(ChildLifecycle, child_id)


def lifecycle_read(session: Session, child: Child) -> LifecycleRead:
    """A record's status and life-cycle dates, as the app API and the card's banner give them (the
    caller has checked that the reader may read the record)."""
    row = lifecycle_of(session, child.id)
    return LifecycleRead(
        child_id=child.id,
        status=child.status,
        archived_reason=child.archived_reason,
        archived_at=row.archived_at if row else None,
        died_on=row.died_on if row else None,
        moved_to=row.moved_to if row else None,
        moved_on=row.moved_on if row else None,
        purged_at=row.purged_at if row else None,
    )


__all__ = [
    "LIFECYCLE_RECORDERS",
    "PURGED_ROWS",
    "LifecycleReport",
    "LifecycleRules",
    "archive",
    "archive_due_on",
    "death_date_problem",
    "lifecycle_of",
    "lifecycle_read",
    "move_date_problem",
    "purge_due_on",
    "purge",
    "record_death",
    "record_move_away",
    "run_lifecycle",
]
