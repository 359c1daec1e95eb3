"""The duplicates report as people run it: `childindex duplicates report` and the admin page
(childindex/web/duplicates.py). Who may run it, which pairs each person is shown, and the audit of a
run; the pairs themselves come from the matching engine (search/duplicates.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

from sqlalchemy.engine import Engine

from auth.policy import RECORD_KEEPERS
from directory import audit
from directory.db import unit_of_work
from directory.errors import NotAllowed
from directory.models import Actor
from directory.service import SHIELD_VIEWERS
from search.duplicates import (
    REPORT_CANDIDATES,
    DuplicatePair,
    DuplicateReport,
    find_duplicates,
    visible_pairs,
)
from search.port import SearchBackend
from search.projection import all_children

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


def shown_to(actor: Actor, report: DuplicateReport) -> list[DuplicatePair]:
    """The pairs of a report this person may be shown (the shield rule of `visible_pairs`)."""
    return visible_pairs(report.pairs, sees_shielded=actor.role in SHIELDED_PAIR_READERS)


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
    """Run the report over every active child in the directory and audit the run (counts, and the
    children of the pairs this person is given: ids only). Returns the report and those pairs."""
    may_review(actor)
    report = find_duplicates(backend, all_children(engine), limit=limit, progress=progress)
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
            },
            children=pair_children(pairs),
        )
    return report, pairs
