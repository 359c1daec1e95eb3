"""The duplicates report as people run it: `childindex duplicates report` and the admin page
(childindex/web/duplicates.py). Who may run it, which pairs each person is shown, and the audit of a
run; the pairs themselves come from the matching engine (search/duplicates.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from auth.policy import RECORD_KEEPERS
from directory import audit
from directory.db import unit_of_work
from directory.errors import NotAllowed, NotFound
from directory.models import (
    Actor,
    Child,
    DuplicatePairRow,
    DuplicateRun,
    NotDuplicate,
    RecordStatus,
    utcnow,
)
from directory.service import SHIELD_VIEWERS
from search.duplicates import (
    REPORT_CANDIDATES,
    DuplicatePair,
    DuplicateReport,
    find_duplicates,
    visible_pairs,
)
from search.port import Grade, SearchBackend
from search.projection import all_children, count_active

DUPLICATE_REVIEWERS = RECORD_KEEPERS
"""Who may run and read the duplicates report."""


def may_review(actor: Actor) -> None:
    """Refuse anyone but a data manager or a directory admin."""
    if actor.role not in DUPLICATE_REVIEWERS:
        raise NotAllowed("Only data managers and directory admins review probable duplicates.")


SHIELDED_PAIR_READERS = DUPLICATE_REVIEWERS | SHIELD_VIEWERS
"""Who is shown a pair with a shielded child: those who may see shielded records, and the record
keepers, who alone can merge it (else a feed's unshielded copy of a shielded child is listed to nobody
and never merged: ContactPoint's failure). The pair names ids only; the merge page then shows the
shielded side as the card shows it to them (its current official name, nothing of where the child is);
the merge carries the shield to the record kept."""


def sees_shielded_pairs(actor: Actor) -> bool:
    """Whether this person is shown the pairs that involve a shielded child."""
    return actor.role in SHIELDED_PAIR_READERS


def shown_to(actor: Actor, report: DuplicateReport) -> list[DuplicatePair]:
    """The pairs of a report this person may be shown (the shield rule of `visible_pairs`)."""
    return visible_pairs(report.pairs, sees_shielded=sees_shielded_pairs(actor))


def pair_children(pairs: Iterable[DuplicatePair]) -> list[uuid.UUID]:
    """The children a list of pairs names, for the audit event that lists them."""
    return list(dict.fromkeys(uuid.UUID(c) for p in pairs for c in (p.first, p.second)))


def run_report(
    engine: Engine,
    backend: SearchBackend,
    *,
    actor: Actor,
    progress: Callable[[int], None] | None = None,
    limit: int = REPORT_CANDIDATES,
) -> tuple[DuplicateReport, list[DuplicatePair]]:
    """Run the report over every active child in the directory, keep it (the latest run is what the
    page lists, on every node) and audit the run (counts, and the children of the pairs this person
    is given: ids only). Returns the report and those pairs."""
    may_review(actor)
    run_id = _start_run(engine, actor, count_active(engine))
    kept = _RunProgress(engine, run_id, progress)
    try:
        report = find_duplicates(backend, all_children(engine), limit=limit, progress=kept)
    except Exception as exc:
        with unit_of_work(engine) as session:
            _finish(session, run_id, state="failed", error=type(exc).__name__)
        raise
    with unit_of_work(engine) as session:
        decided = _decided_pairs(session)
        report.pairs = [p for p in report.pairs if (p.first, p.second) not in decided]
        _save_pairs(session, run_id, report.pairs)
        _finish(session, run_id, state="done", report=report)
    pairs = shown_to(actor, report)
    with unit_of_work(engine) as session:
        audit.append(
            session,
            actor=actor,
            action="duplicates.report",
            detail={
                "children": report.children,
                "listed": len(pairs),
                "certain": sum(p.grade == "certain" for p in pairs),
                "seconds": round(report.seconds, 1),
                "backend": backend.name,
                "run": run_id.hex,
            },
            children=pair_children(pairs),
        )
    return report, pairs


# --- the report, kept (directory.models.duplicates) ---------------------------------------------

RUN_ALIVE = timedelta(hours=2)
"""How long a run may go without a word of progress before it is taken to have died with its node
(a run at 1,000,000 children reports progress every thousand children, a few seconds apart)."""


def _start_run(engine: Engine, actor: Actor, total: int) -> uuid.UUID:
    with unit_of_work(engine) as session:
        run = DuplicateRun(started_by=actor.subject, total=total)
        session.add(run)
        session.flush()
        return run.id


class _RunProgress:
    """The progress of a run, kept on its row (at most every few seconds) and passed on."""

    def __init__(self, engine: Engine, run_id: uuid.UUID, then: Callable[[int], None] | None) -> None:
        self.engine, self.run_id, self.then, self.saved = engine, run_id, then, 0.0

    def __call__(self, done: int) -> None:
        if self.then is not None:
            self.then(done)
        now = time.monotonic()
        if now - self.saved >= 2.0:
            self.saved = now
            with unit_of_work(self.engine) as session:
                session.execute(
                    sa.update(DuplicateRun)
                    .where(col(DuplicateRun.id) == self.run_id)
                    .values(children=done, seen_at=utcnow())
                )


def _save_pairs(session: Session, run_id: uuid.UUID, pairs: Sequence[DuplicatePair]) -> None:
    rows = [
        {
            "run_id": run_id,
            "first_id": uuid.UUID(p.first),
            "second_id": uuid.UUID(p.second),
            "rank": rank,
            "grade": p.grade,
            "score": p.score,
            "agreed": " ".join(p.agreed),
            "shielded": p.shielded,
        }
        for rank, p in enumerate(pairs)
    ]
    for start in range(0, len(rows), 5000):
        session.execute(sa.insert(DuplicatePairRow), rows[start : start + 5000])


def _finish(
    session: Session, run_id: uuid.UUID, *, state: str, report: DuplicateReport | None = None, error: str = ""
) -> None:
    run = session.get(DuplicateRun, run_id)
    assert run is not None  # (made by _start_run)
    run.state, run.finished_at, run.seen_at = state, utcnow(), utcnow()
    run.error = error[:80] or None
    if report is not None:
        run.children, run.pairs, run.seconds = report.children, len(report.pairs), report.seconds
    session.add(run)
    # Earlier runs' pairs go: the page lists the latest run's.
    session.execute(sa.delete(DuplicatePairRow).where(col(DuplicatePairRow.run_id) != run_id))


def _decided_pairs(session: Session) -> set[tuple[str, str]]:
    return {
        (a.hex, b.hex)
        for a, b in session.execute(sa.select(col(NotDuplicate.first_id), col(NotDuplicate.second_id)))
    }


def latest_run(session: Session) -> DuplicateRun | None:
    """The latest run of the report (running, done or failed), if any."""
    return session.exec(select(DuplicateRun).order_by(col(DuplicateRun.started_at).desc()).limit(1)).first()


def running(run: DuplicateRun | None, *, now: datetime | None = None) -> bool:
    """Whether this run is under way on some node (it reported progress lately)."""
    if run is None or run.state != "running":
        return False
    return (now or utcnow()) - run.seen_at < RUN_ALIVE


def listed_pairs(
    session: Session, actor: Actor, *, offset: int = 0, limit: int = 100
) -> tuple[list[DuplicatePair], int]:
    """The latest finished run's pairs this person may be shown, best first (a page of them), and how
    many there are: pairs whose records are both still active, and not decided to be two children."""
    done = session.exec(
        select(DuplicateRun.id)
        .where(DuplicateRun.state == "done")
        .order_by(col(DuplicateRun.started_at).desc())
        .limit(1)
    ).first()
    if done is None:
        return [], 0
    first, second = aliased(Child), aliased(Child)
    decided = (
        sa.select(col(NotDuplicate.first_id))
        .where(
            col(NotDuplicate.first_id) == col(DuplicatePairRow.first_id),
            col(NotDuplicate.second_id) == col(DuplicatePairRow.second_id),
        )
        .exists()
    )
    where = [
        col(DuplicatePairRow.run_id) == done,
        col(first.status) == RecordStatus.ACTIVE.value,
        col(second.status) == RecordStatus.ACTIVE.value,
        ~decided,
    ]
    if not sees_shielded_pairs(actor):
        where.append(col(DuplicatePairRow.shielded).is_(False))
    base = (
        sa.select(DuplicatePairRow)
        .join(first, col(first.id) == col(DuplicatePairRow.first_id))
        .join(second, col(second.id) == col(DuplicatePairRow.second_id))
        .where(*where)
    )
    total = session.execute(sa.select(sa.func.count()).select_from(base.subquery())).scalar_one()
    rows = session.execute(base.order_by(col(DuplicatePairRow.rank)).offset(offset).limit(limit)).scalars()
    return [_pair(r) for r in rows], int(total)


def _pair(row: DuplicatePairRow) -> DuplicatePair:
    grade: Grade = "certain" if row.grade == "certain" else "probable"
    return DuplicatePair(
        row.first_id.hex, row.second_id.hex, row.score, grade, tuple(row.agreed.split()), row.shielded
    )


def decide_not_duplicates(session: Session, actor: Actor, first_id: uuid.UUID, second_id: uuid.UUID) -> None:
    """Record that a listed pair is two children: no later report lists it. Audited (ids only)."""
    may_review(actor)
    first_id, second_id = sorted((first_id, second_id), key=lambda i: i.hex)
    listed = session.exec(
        select(DuplicatePairRow).where(
            DuplicatePairRow.first_id == first_id, DuplicatePairRow.second_id == second_id
        )
    ).first()
    if listed is None or (listed.shielded and not sees_shielded_pairs(actor)):
        raise NotFound("That pair is not in the latest duplicates report.")
    if session.get(NotDuplicate, (first_id, second_id)) is None:
        session.add(NotDuplicate(first_id=first_id, second_id=second_id, decided_by=actor.subject))
        session.flush()
    audit.append(
        session,
        actor=actor,
        action="duplicates.not_duplicates",
        detail={"first": first_id.hex, "second": second_id.hex},
        children=[first_id, second_id],
    )
