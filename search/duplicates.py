"""Probable duplicates across the whole directory: every indexed child searched for as a query, by the
one matching engine (blocking keys, the backend's candidates, field-by-field scoring and grades).

Each child becomes the query a careful person would type for it (current given and family name, date
of birth, or expected delivery date, sex, current postcode, an identifier); its candidates come from
the search backend exactly as a search's do, and every other child graded `probable` or `certain`
makes a pair. A pair is found from both sides; it is kept once, with the better of its two scores.

A pair holds ids, a grade, a score and the names of the fields that agreed: never a name, a date or
a postcode, so the report may be written to a file or shown to a data manager without carrying
anyone's personal data. Pairs involving a shielded child are marked; who may be shown them is the
caller's rule (`visible_pairs`).
"""

from __future__ import annotations

import csv
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from search.blocking import query_keys
from search.port import Grade, Match, PersonFields, SearchBackend, SearchQuery
from search.scoring import PROBABLE_AT, birth_filter, rank

REPORT_CANDIDATES = 50
"""Candidates scored per child. A duplicate shares most of its keys with the child it copies, so it
is among the first few candidates; fifty leaves room for big households and common names."""

_GRADES: dict[str, tuple[Grade, ...]] = {
    "certain": ("certain",),
    "probable": ("certain", "probable"),
}

_IDENTIFIER_ORDER = ("nhs", "upn")
"""Which of a child's identifiers its query carries (a differing one sinks a namesake; an agreeing
one makes the pair certain). Other identifiers still reach candidates through their keys."""


@dataclass(frozen=True, slots=True)
class DuplicatePair:
    """Two records that are probably one child: ids (`first` < `second`), the grade, the score and
    the fields that agreed. No personal data."""

    first: str
    second: str
    score: float
    grade: Grade
    agreed: tuple[str, ...]
    shielded: bool

    def as_row(self) -> dict[str, Any]:
        """The pair as plain JSON types (ids as UUID strings)."""
        return {
            "first": _uuid(self.first),
            "second": _uuid(self.second),
            "grade": self.grade,
            "score": self.score,
            "agreed": list(self.agreed),
            "shielded": self.shielded,
        }


@dataclass
class DuplicateReport:
    """The pairs found (best first) and what the run cost."""

    pairs: list[DuplicatePair] = field(default_factory=list)
    children: int = 0
    candidates: int = 0
    seconds: float = 0.0
    finished_at: datetime | None = None

    def counts(self) -> dict[str, int]:
        """Pairs by grade, and how many involve a shielded child (ids and codes only: auditable)."""
        found = {"pairs": len(self.pairs), "certain": 0, "probable": 0, "shielded": 0}
        for pair in self.pairs:
            found[pair.grade] += 1
            found["shielded"] += pair.shielded
        return found


def _uuid(hex_id: str) -> str:
    if len(hex_id) == 32:
        return f"{hex_id[:8]}-{hex_id[8:12]}-{hex_id[12:16]}-{hex_id[16:20]}-{hex_id[20:]}"
    return hex_id


def duplicate_query(rec: PersonFields) -> SearchQuery | None:
    """What a careful person would type to find this child (no identifier: `duplicates_of` weighs the
    identifiers apart); None for a record with no name or no date."""
    when = rec.birth_date or rec.expected_delivery_date
    given = rec.given_names[0] if rec.given_names else None
    family = rec.family_names[0] if rec.family_names else None
    if when is None or not (given or family):
        return None
    return SearchQuery(
        given=given,
        family=family,
        birth_date=when,
        sex=rec.sex,
        postcode=rec.postcodes[0] if rec.postcodes else None,
    )


def _with_identifier(q: SearchQuery, rec: PersonFields) -> SearchQuery:
    held = dict(rec.identifiers)
    system = next((s for s in _IDENTIFIER_ORDER if s in held), None)
    if system is None:
        return q
    return replace(q, identifier_system=system, identifier_value=held[system])


def duplicates_of(
    backend: SearchBackend, rec: PersonFields, *, limit: int = REPORT_CANDIDATES, at_least: str = "probable"
) -> tuple[list[tuple[Match, bool]], int]:
    """The other children the engine grades `at_least` (probable or certain) against this one, each
    with whether it is shielded, and how many candidates were scored.

    Candidates come as a search's do, from the demographics (the birth filter and the scorer asked
    for probable, so most are ruled out before their names are compared), plus every child holding
    one of this one's identifiers; the few left are scored again with an identifier, so a namesake
    twin whose NHS number differs sinks and a record sharing one is certain.
    """
    q = duplicate_query(rec)
    if q is None:
        return [], 0
    found = backend.candidates(query_keys(q), limit, keep_birth=birth_filter(q, at_least=PROBABLE_AT))
    shortlist = {
        m.child_id for m in rank(q, (c for c in found if c.child_id != rec.child_id), at_least=PROBABLE_AT)
    }
    by_id = {c.child_id: c for c in found if c.child_id in shortlist}
    for system, value in rec.identifiers:
        by_id.update(
            (c.child_id, c) for c in backend.by_identifier(system, value) if c.child_id != rec.child_id
        )
    wanted = _GRADES[at_least]
    qid = _with_identifier(q, rec)
    matches = [(m, by_id[m.child_id].shielded) for m in rank(qid, by_id.values(), at_least=PROBABLE_AT)]
    return [(m, shielded) for m, shielded in matches if m.grade in wanted], len(found)


def find_duplicates(
    backend: SearchBackend,
    records: Iterable[PersonFields],
    *,
    limit: int = REPORT_CANDIDATES,
    at_least: str = "probable",
    progress: Callable[[int], None] | None = None,
) -> DuplicateReport:
    """Search for every record among the others; the probable (or certain) pairs, best first."""
    started = time.perf_counter()
    report = DuplicateReport()
    best: dict[tuple[str, str], DuplicatePair] = {}
    for rec in records:
        report.children += 1
        matches, scored = duplicates_of(backend, rec, limit=limit, at_least=at_least)
        report.candidates += scored
        for m, other_shielded in matches:
            ids = (rec.child_id, m.child_id) if rec.child_id < m.child_id else (m.child_id, rec.child_id)
            held = best.get(ids)
            if held is None or m.score > held.score:
                shielded = rec.shielded or other_shielded or (held is not None and held.shielded)
                best[ids] = DuplicatePair(ids[0], ids[1], m.score, m.grade, m.agreed, shielded)
        if progress is not None and report.children % 1000 == 0:
            progress(report.children)
    report.pairs = sorted(best.values(), key=lambda p: (-p.score, p.first, p.second))
    report.seconds = time.perf_counter() - started
    report.finished_at = datetime.now(UTC)
    if progress is not None:
        progress(report.children)
    return report


def visible_pairs(pairs: Sequence[DuplicatePair], *, sees_shielded: bool) -> list[DuplicatePair]:
    """The pairs one person may be shown: a pair involving a shielded child only to who may see it
    (no count or trace of the others: a withheld pair is simply absent)."""
    return [p for p in pairs if sees_shielded or not p.shielded]


# --- files: ids, grades and codes only ---------------------------------------------------------

FIELDS = ("first", "second", "grade", "score", "agreed")


def write_report(pairs: Sequence[DuplicatePair], path: Path) -> None:
    """Write the pairs as CSV (or JSON when the file name ends in .json): ids, grade, score, agreed."""
    rows = [{k: v for k, v in p.as_row().items() if k in FIELDS} for p in pairs]
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps({"pairs": rows}, indent=1) + "\n", encoding="utf-8")
        return
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "agreed": " ".join(row["agreed"])})


# --- one run at a time, in the background (the admin page's) -----------------------------------


class DuplicatesRunner:
    """Runs the report in a background thread, one run at a time, and keeps the latest result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.latest: DuplicateReport | None = None
        self.done = 0
        self.error: str | None = None

    @property
    def running(self) -> bool:
        """Whether a run is under way."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, work: Callable[[Callable[[int], None]], DuplicateReport]) -> bool:
        """Start `work(progress)` unless a run is under way; False if one was."""
        with self._lock:
            if self.running:
                return False
            self.done, self.error = 0, None
            self._thread = threading.Thread(target=self._run, args=(work,), name="duplicates", daemon=True)
            self._thread.start()
            return True

    def _run(self, work: Callable[[Callable[[int], None]], DuplicateReport]) -> None:
        def progress(done: int) -> None:
            self.done = done

        try:
            self.latest = work(progress)
        except Exception as exc:  # noqa: BLE001 - a failed run is shown on the page, not lost in a thread
            self.error = type(exc).__name__

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the current run (tests, the CLI)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
