"""Merge two records of one child, and undo a merge within its period.

A merge moves everything held about the duplicate to the record kept, in one transaction:
identifiers, names (the duplicate's current names become aliases), addresses (the duplicate's
current address becomes history when the kept record has one), related people, involvements and
their versions, CAFs with their Lead Professional history, TACs, consents, notices and
notifications; the stricter protection wins (a shield on either is carried, with its reason). The
duplicate becomes a pointer (status merged, merged_into_id). Every value changed is logged
(directory.merge_moves) so an unmerge puts back exactly that. The access history is not rewritten
(the audit log is append-only): the kept record's access log also shows the records merged into it.

Versions only move on: a merge makes a new version of both records, and an unmerge another, each
with its snapshot in the history (directory.service.versions), so the history shows the merge and
its undoing and no version number is ever used twice (an ETag names one state only).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from directory import audit, merge_moves
from directory import repository as repo
from directory.errors import CafAlreadyOpen, Conflict, InvalidInput, NotAllowed, NotFound, RuleBroken
from directory.merge_moves import MoveLog
from directory.models import (
    Actor,
    Assessment,
    Child,
    ChildMerge,
    MergeRead,
    NameUse,
    Outbox,
    RecordStatus,
    Role,
    utcnow,
)
from directory.service.common import active_child, load_child, require_purpose
from directory.service.versions import record_version
from directory.visibility import may_read_record, no_such_child

MERGERS = frozenset({Role.DIRECTORY_ADMIN, Role.DATA_MANAGER})
"""Who may merge two records of one child, and undo a merge."""

UNMERGE_DAYS = 90
"""How long after a merge it may be undone, unless the caller says otherwise (a setting)."""

_CURRENT_NAMES = {NameUse.OFFICIAL.value, NameUse.USUAL.value}


@dataclass(frozen=True)
class MergePlan:
    """What a merge would move: how many rows of each kind, and whether a shield is carried."""

    moves: dict[str, int]
    shield_carried: bool
    refused: str | None  # why the merge would be refused, when it would


def _require_merger(actor: Actor) -> None:
    if actor.role not in MERGERS:
        raise NotAllowed("Only a directory admin or a data manager can merge or unmerge records.")


def _lock_pair(
    session: Session, actor: Actor, kept_id: uuid.UUID, duplicate_id: uuid.UUID
) -> tuple[Child, Child]:
    """Both records, locked in one order (so two merges of the same pair cannot deadlock); a record the
    merger may not read (archived) is refused as an unknown id."""
    if kept_id == duplicate_id:
        raise InvalidInput("A record cannot be merged into itself: choose the duplicate record.")
    for cid in (kept_id, duplicate_id):
        unsealed(session, cid)
    locked = {
        cid: active_child(session, cid, for_update=True, actor=actor)
        for cid in sorted((kept_id, duplicate_id))
    }
    for child in locked.values():
        session.refresh(child)  # what the lock holder committed, not what this session read before
        active_child(session, child.id, actor=actor)
    return locked[kept_id], locked[duplicate_id]


def unsealed(session: Session, child_id: uuid.UUID) -> Child:
    """A record by id, as not found when an adoption sealed it (nothing outside that role sees it) or a
    purge left only its tombstone."""
    child = load_child(session, child_id)
    if child.status in (RecordStatus.SEALED.value, RecordStatus.PURGED.value):
        raise no_such_child(child_id)
    return child


def _holder(session: Session, caf: Assessment) -> str:
    """Who holds a CAF, as a merge refusal names them: the Lead Professional and their organisation."""
    practitioner, org = repo.practitioner_contact(session, caf.lead_practitioner_id or caf.initiator_id)
    return f"{practitioner.name} ({practitioner.role}, {org.name})"


def _refuse_two_open_cafs(session: Session, kept: Child, duplicate: Child) -> None:
    kept_caf, dup_caf = repo.open_caf(session, kept.id), repo.open_caf(session, duplicate.id)
    if kept_caf is None or dup_caf is None:
        return
    kept_holder, dup_holder = _holder(session, kept_caf), _holder(session, dup_caf)
    raise CafAlreadyOpen(
        f"Both records have an open CAF: the kept record's is held by {kept_holder}, the duplicate's "
        f"by {dup_holder}. They must agree which one continues and close the other before the "
        "records can be merged.",
        kept_caf_id=str(kept_caf.id),
        duplicate_caf_id=str(dup_caf.id),
        holders=[kept_holder, dup_holder],
    )


def merge_children(
    session: Session,
    *,
    actor: Actor,
    duplicate_id: uuid.UUID,
    into_id: uuid.UUID,
    reason: str | None = None,
    now: datetime | None = None,
) -> Child:
    """Merge a duplicate record into the record kept: everything moves, the duplicate points at it."""
    _require_merger(actor)
    now = now or utcnow()
    kept, duplicate = _lock_pair(session, actor, into_id, duplicate_id)
    _refuse_two_open_cafs(session, kept, duplicate)
    session.flush()
    log = MoveLog(session)
    moved = _move_everything(session, log, kept, duplicate, now)
    merge = ChildMerge(
        kept_id=kept.id,
        duplicate_id=duplicate.id,
        reason=(reason or "duplicate record").strip(),
        merged_by=actor.subject,
        merged_at=now,
    )
    session.add(merge)
    try:
        session.flush()
        log.save(merge)
        session.flush()
    except IntegrityError:
        raise Conflict("This record was merged by someone else at the same moment.") from None
    session.expire_all()
    _new_versions(session, actor, (kept.id, duplicate.id), change="merged", source="merge")
    audit.append(
        session,
        actor=actor,
        action="child.merge",
        target_type="child",
        target_id=duplicate.id,
        detail={"into": kept.id.hex, "moved": sum(moved.values()), "merge": merge.id.hex},
        children=[kept.id],
    )
    return load_child(session, duplicate.id)


def _move_everything(
    session: Session, log: MoveLog, kept: Child, duplicate: Child, now: datetime
) -> dict[str, int]:
    """Move the duplicate's rows to the kept record, carry its shield, and make it a pointer."""
    log.set_where(
        "child_name",
        "use",
        NameUse.ALIAS.value,
        merge_moves.names_of(duplicate.id, _CURRENT_NAMES),
    )
    if repo.current_address(session, kept.id) is not None:
        current = repo.current_address(session, duplicate.id)
        if current is not None:
            log.set("child_address", current.id.hex, "until", None, now.date())
    try:
        moved = log.move_child_rows(duplicate.id, kept.id)
    except IntegrityError:
        raise Conflict(
            "The two records hold something that cannot be held twice (a current Lead Professional "
            "on each): close one CAF first."
        ) from None
    if duplicate.shielded and not kept.shielded:
        shield = {
            "shielded": (False, True),
            "shielded_reason": (None, duplicate.shielded_reason),
            "shielded_by": (None, duplicate.shielded_by),
            "shielded_at": (None, duplicate.shielded_at),
        }
        log.set_row("child", kept.id.hex, shield)
    pointer = {"status": (duplicate.status, RecordStatus.MERGED.value), "merged_into_id": (None, kept.id)}
    log.set_row("child", duplicate.id.hex, pointer)
    for child in (kept, duplicate):
        log.set("child", child.id.hex, "version", child.version, child.version + 1)
        log.set("child", child.id.hex, "updated_at", child.updated_at, now)
    return moved


def _new_versions(
    session: Session, actor: Actor, child_ids: tuple[uuid.UUID, uuid.UUID], *, change: str, source: str
) -> None:
    """The snapshots of the versions a merge or an unmerge made of both records (their version numbers
    moved on with the logged rows), and their outbox rows for the search index."""
    for child_id in child_ids:
        record_version(
            session, actor=actor, child=load_child(session, child_id), changed=[change], source=source
        )
        session.add(Outbox(topic="child", entity_id=child_id.hex))


def unmerge_children(
    session: Session,
    *,
    actor: Actor,
    duplicate_id: uuid.UUID,
    now: datetime | None = None,
    period_days: int = UNMERGE_DAYS,
) -> Child:
    """Undo a merge within its period: put back exactly what moved; the duplicate is a record again."""
    _require_merger(actor)
    now = now or utcnow()
    merge = merge_moves.merge_of_duplicate(session, duplicate_id)
    if merge is None:
        load_child(session, duplicate_id)
        raise RuleBroken("This record is not merged into another: there is nothing to unmerge.")
    for child_id in sorted((merge.kept_id, merge.duplicate_id)):
        repo.get(session, Child, child_id, for_update=True)
    if now - merge.merged_at > timedelta(days=period_days):
        raise RuleBroken(
            f"This merge was made on {merge.merged_at:%-d %B %Y}; a merge can be undone within "
            f"{period_days} days of it. Record the two children apart by hand instead.",
            merged_at=merge.merged_at.isoformat(),
            period_days=period_days,
        )
    moves = merge_moves.logged_moves(session, merge.id)
    session.flush()
    touched: set[str] = set()
    restorable = []
    for move in moves:
        if (move.table_name, move.column_name) in merge_moves.BOOKKEEPING:
            touched.add(move.row_id)  # a version moves on, never back
        elif merge_moves.current_value(session, move) == move.new_value:
            restorable.append(move)
        else:
            raise Conflict(
                f"The merged records changed since the merge ({move.table_name}.{move.column_name}): "
                "undo the later change first, or record the children apart by hand.",
                table=move.table_name,
                column=move.column_name,
            )
    try:
        merge_moves.restore(session, restorable)
    except IntegrityError:
        raise Conflict("The records changed since the merge in a way an unmerge cannot undo.") from None
    merge_moves.bump_versions(session, touched, now)
    kept_id, dup_id = merge.kept_id, merge.duplicate_id
    merge_moves.forget(session, merge)
    session.flush()
    session.expire_all()
    _new_versions(session, actor, (kept_id, dup_id), change="unmerged", source="unmerge")
    audit.append(
        session,
        actor=actor,
        action="child.unmerge",
        target_type="child",
        target_id=dup_id,
        detail={"from": kept_id.hex, "restored": len(moves)},
        children=[kept_id],
    )
    return load_child(session, dup_id)


def merge_plan(session: Session, *, actor: Actor, kept_id: uuid.UUID, duplicate_id: uuid.UUID) -> MergePlan:
    """What merging the duplicate into the kept record would move, and why it would be refused."""
    _require_merger(actor)
    kept, duplicate = unsealed(session, kept_id), unsealed(session, duplicate_id)
    refused = None
    try:
        if kept.id == duplicate.id:
            raise InvalidInput("A record cannot be merged into itself: choose the duplicate record.")
        active_child(session, kept.id, actor=actor)
        active_child(session, duplicate.id, actor=actor)
        _refuse_two_open_cafs(session, kept, duplicate)
    except (InvalidInput, RuleBroken, CafAlreadyOpen) as exc:
        refused = exc.message
    return MergePlan(
        moves=merge_moves.count_child_rows(session, duplicate.id),
        shield_carried=duplicate.shielded and not kept.shielded,
        refused=refused,
    )


def audit_merged_read(session: Session, *, actor: Actor, child_id: uuid.UUID, kept_id: uuid.UUID) -> None:
    """A read of a merged record, sent on to the record kept: audited like a read (a purpose is needed).
    When the caller may not read the record kept (archived, or sealed since by an adoption), the merged
    record is answered as an unknown id: its pointer must not name a record they cannot see."""
    require_purpose(actor)
    kept = repo.get(session, Child, kept_id)
    if kept is None or not may_read_record(kept, actor):
        raise no_such_child(child_id)
    audit.append(
        session,
        actor=actor,
        action="child.read.merged",
        target_type="child",
        target_id=child_id,
        detail={"kept": kept_id.hex},
    )


def resolve_merged(session: Session, child_id: uuid.UUID) -> uuid.UUID | None:
    """The record a merged record now points at (following merges of merges), or None if not merged."""
    child = load_child(session, child_id)
    seen = {child.id}
    while child.status == RecordStatus.MERGED.value and child.merged_into_id is not None:
        nxt = repo.get(session, Child, child.merged_into_id)
        if nxt is None or nxt.id in seen:
            break
        seen.add(nxt.id)
        child = nxt
    return None if child.id == child_id else child.id


def merge_read(session: Session, child: Child, *, period_days: int = UNMERGE_DAYS) -> MergeRead:
    """A merged record's merge: both ids, when, how many values moved, until when it can be undone."""
    merge = merge_moves.merge_of_duplicate(session, child.id)
    if merge is None:
        raise NotFound("This record has no merge to show.")
    moves = merge_moves.logged_moves(session, merge.id)
    counts: dict[str, int] = {}
    for m in moves:  # rows that changed hands (not the values changed on the two records themselves)
        if m.column_name == "child_id" or (m.column_name == "merged_into_id" and m.row_id != child.id.hex):
            counts[m.table_name] = counts.get(m.table_name, 0) + 1
    return MergeRead(
        kept_id=merge.kept_id,
        duplicate_id=merge.duplicate_id,
        merged_at=merge.merged_at,
        moved=counts,
        unmerge_until=merge.merged_at + timedelta(days=period_days),
    )
