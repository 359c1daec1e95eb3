"""`childindex import --source NAME`: a feed's files reconciled with the directory (the domain's
directory/importer/reconcile.py), matched by the matching engine over the configured backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from childindex.importing import READERS
from directory.importer import ChildRow
from directory.importer.precedence import Precedence, check_source
from directory.importer.reconcile import Candidate, Matcher, ReconcileResult, reconcile
from directory.models import Actor
from search.embedded import EmbeddedBackend
from search.indexer import drain
from search.matching import MatchingEngine
from search.port import CriteriaError, SearchBackend, SearchQuery


def query_of(row: ChildRow) -> SearchQuery:
    """What the matching engine is asked about a row: its official name, date of birth (or a
    range around an unborn child's expected delivery), sex and current postcode. Its identifiers
    were already looked up in the directory itself."""
    data = row.data
    official = data.names[0]
    current = next((a for a in row.addresses if a.until is None), None)
    edd = data.expected_delivery_date if data.date_of_birth is None else None
    return SearchQuery(
        given=official.given,
        family=official.family,
        birth_date=data.date_of_birth,
        birth_date_from=edd - timedelta(days=90) if edd else None,
        birth_date_to=edd + timedelta(days=90) if edd else None,
        sex=data.sex.value if data.sex.value != "unknown" else None,
        postcode=current.postcode if current else None,
        limit=10,
    )


RESIDENT_WAIT_SECONDS = 300.0
"""How long a feed waits for the embedded index's resident copy to load (35-46 s at 1,000,000
children, docs/performance.md) before matching on SQL until it is loaded."""


def engine_matcher(matcher: MatchingEngine) -> Matcher:
    """The domain's Matcher over the matching engine: candidates graded certain/probable/possible.

    Over the embedded backend, the first row that needs the engine loads the index's resident copy
    (search.resident: the same candidates as SQL, kept fresh through the search log, so later rows
    still find the records earlier rows made) and waits for it: a search from memory costs a
    fraction of one on SQL. A feed whose rows all find their records by identifier never loads it."""
    backend = matcher.backend

    def match(row: ChildRow) -> Sequence[Candidate] | None:
        if isinstance(backend, EmbeddedBackend) and not backend.resident:
            backend.start_resident().wait_ready(RESIDENT_WAIT_SECONDS)  # (SQL, if it is not ready)
        try:
            found = matcher.search(query_of(row))
        except CriteriaError:
            return []  # too little to match on (the row's checks make this rare): nothing is close
        if found.too_many:
            return None
        return [Candidate(uuid.UUID(hex=m.child_id), m.grade) for m in found.matches]

    return match


def reconcile_files(
    engine: Engine,
    paths: Sequence[Path],
    *,
    fmt: str,
    source: str,
    backend: SearchBackend,
    precedence: Precedence,
    actor: Actor,
    today: date | None = None,
    batch: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> ReconcileResult:
    """Reconcile a feed's CSV or FHIR NDJSON files; the index follows each batch (the outbox)."""
    read = READERS.get(fmt)
    if read is None:
        raise ValueError("the format is csv or fhir")
    check_source(source)
    drain(engine, backend, wait=True)  # match against the directory as it is now

    def follow() -> None:
        drain(engine, backend, wait=True, batch=2000)

    kept = isinstance(backend, EmbeddedBackend) and backend.resident  # (a copy the caller started)
    try:
        return reconcile(
            engine,
            paths,
            read=read,
            source=source,
            matcher=engine_matcher(MatchingEngine(backend)),
            precedence=precedence,
            actor=actor,
            today=today,
            batch=batch,
            after_batch=follow,
            progress=progress,
        )
    finally:
        if isinstance(backend, EmbeddedBackend) and not kept:
            backend.stop_resident()  # the copy this run loaded (memory back, its loader stopped)
            backend.resident = False
