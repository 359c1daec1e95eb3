"""The locality overview for local delivery teams: counts, charts and a CSV per locality; no child named."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import Response

from childindex.web.deps import LocalityTeam, render, unit_of_work
from directory import aggregates, audit
from directory import repository as repo
from directory.http.config import practice

router = APIRouter(include_in_schema=False)
LEVELS = {1: "1: universal", 2: "2: additional", 3: "3: complex", 4: "4: acute or statutory"}
MEASURES = {
    "open_cafs": "Open CAFs",
    "awaiting_tac": "CAFs awaiting a Team Around the Child",
    "tac_review_overdue": "Teams past their review date",
}


@dataclass(frozen=True)
class Figure:
    """A count as published: the number, or None with why it is withheld."""

    value: int | None
    note: str | None = None  # "fewer than N" (a small count) or "withheld" (it would reveal one)

    def __str__(self) -> str:
        return str(self.value) if self.value is not None else (self.note or "")


def suppress_row(values: dict[str, int], threshold: int, *, total_shown: bool) -> dict[str, Figure]:
    """Small-number suppression of one row of counts.

    Primary: a count from 1 to threshold - 1 is shown as "fewer than N" (0 is shown: it names no
    one). Secondary, only where the row's total is published (so that total minus the shown cells
    would give away what was withheld): the withheld cells must add up to at least the threshold
    and be at least two, so more cells are withheld, smallest first, until they do.
    """
    if threshold <= 1:
        return {k: Figure(v) for k, v in values.items()}
    small = {k for k, v in values.items() if 0 < v < threshold}
    withheld: set[str] = set()
    if total_shown and small:
        hidden = set(small)
        for key in sorted((k for k in values if k not in small), key=lambda k: (values[k], k)):
            if len(hidden) >= 2 and sum(values[k] for k in hidden) >= threshold:
                break
            hidden.add(key)
            withheld.add(key)
    return {
        k: Figure(None, f"fewer than {threshold}")
        if k in small
        else Figure(None, "withheld")
        if k in withheld
        else Figure(v)
        for k, v in values.items()
    }


@dataclass(frozen=True)
class PublishedStats:
    """One locality's figures after suppression: what the page and the CSV show."""

    code: str
    name: str
    children: Figure
    by_level: dict[int, Figure]
    measures: dict[str, Figure]
    by_service: dict[str, Figure]


@dataclass
class LocalityStats:
    """The aggregate figures of one locality."""

    code: str
    name: str
    by_level: dict[int, int] = field(default_factory=lambda: dict.fromkeys(LEVELS, 0))
    measures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MEASURES, 0))
    by_service: dict[str, int] = field(default_factory=dict)

    @property
    def children(self) -> int:
        """Children recorded in the locality."""
        return sum(self.by_level.values())


def overview(request: Request, today: date) -> list[LocalityStats]:
    """Per locality (limited to the grant's localities, if it names any), from the repository's aggregates."""
    grant = getattr(request.state, "grant", None)
    allowed = set(grant.locality_list()) if grant is not None else set()
    with unit_of_work(request) as db:
        localities = {loc.id: loc for loc in repo.localities(db)}
        stats: dict[uuid.UUID | None, LocalityStats] = {
            loc.id: LocalityStats(loc.code, loc.name)
            for loc in localities.values()
            if not allowed or loc.code in allowed
        }
        if not allowed:
            stats[None] = LocalityStats("NONE", "No locality recorded")
        for loc_id, level, n in aggregates.children_by_level_per_locality(db):
            if loc_id in stats:
                stats[loc_id].by_level[min(max(level, 1), 4)] += n
        for loc_id, measure, n in aggregates.cafs_per_locality(db, today):
            if loc_id in stats:
                stats[loc_id].measures[measure] = n
        for loc_id, kind, n in aggregates.involvements_by_service_per_locality(db):
            if loc_id in stats:
                stats[loc_id].by_service[kind] = n
    rows = [s for key, s in stats.items() if key is not None or s.children]
    return sorted(rows, key=lambda s: (s.code == "NONE", s.name))


def publish(stats: LocalityStats, threshold: int) -> PublishedStats:
    """Apply small-number suppression to one locality (see suppress_row for the rule).

    The children total is published, so the levels (which add up to it) get secondary
    suppression; a total that is itself small withholds the whole row. The CAF measures and
    the involvements by service have no published total: primary suppression only.
    """
    total = stats.children
    if 0 < total < threshold:
        children = Figure(None, f"fewer than {threshold}")
        by_level = {k: Figure(None, "withheld") for k in stats.by_level}
    else:
        children = Figure(total)
        levels = suppress_row({str(k): v for k, v in stats.by_level.items()}, threshold, total_shown=True)
        by_level = {int(k): f for k, f in levels.items()}
    return PublishedStats(
        code=stats.code,
        name=stats.name,
        children=children,
        by_level=by_level,
        measures=suppress_row(stats.measures, threshold, total_shown=False),
        by_service=suppress_row(stats.by_service, threshold, total_shown=False),
    )


def bars(values: dict[str, Figure], width: int = 420) -> list[tuple[str, str, int, int]]:
    """(label, shown value, bar width, y) for a horizontal SVG bar chart; withheld counts get no bar."""
    top = max((f.value or 0 for f in values.values()), default=0) or 1
    return [
        (label, str(f), max(1, round(width * f.value / top)) if f.value else 0, i * 32)
        for i, (label, f) in enumerate(values.items())
    ]


@router.get("/localities", name="web_localities")
def web_localities(request: Request, actor: LocalityTeam) -> Response:
    """Per locality: children by level of need, CAFs and TACs that need attention, involvement by service."""
    threshold = practice(request).suppress_below
    rows = [publish(s, threshold) for s in overview(request, date.today())]
    with unit_of_work(request) as db:
        audit.append(db, actor=actor, action="locality.overview", detail={"localities": len(rows)})
    charts = {
        s.code: {
            "levels": bars({LEVELS[k]: v for k, v in s.by_level.items()}),
            "services": bars(dict(sorted(s.by_service.items()))),
        }
        for s in rows
    }
    return render(
        request,
        "localities.html",
        actor=actor,
        rows=rows,
        charts=charts,
        levels=LEVELS,
        measures=MEASURES,
        threshold=threshold,
    )


@router.get("/localities/overview.csv", name="web_localities_csv")
def web_localities_csv(request: Request, actor: LocalityTeam) -> Response:
    """The same figures as CSV: locality, measure, category, count (empty when withheld) and why. Audited."""
    threshold = practice(request).suppress_below
    rows = [publish(s, threshold) for s in overview(request, date.today())]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["locality_code", "locality", "measure", "category", "count", "suppressed"])

    def row(s: PublishedStats, measure: str, category: object, f: Figure) -> None:
        writer.writerow([s.code, s.name, measure, category, "" if f.value is None else f.value, f.note or ""])

    for s in rows:
        row(s, "children", "", s.children)
        for level, f in s.by_level.items():
            row(s, "children_by_level_of_need", level, f)
        for measure, f in s.measures.items():
            row(s, measure, "", f)
        for kind, f in sorted(s.by_service.items()):
            row(s, "involvements_by_service", kind, f)
    with unit_of_work(request) as db:
        audit.append(db, actor=actor, action="locality.overview.export", detail={"localities": len(rows)})
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="locality-overview-{date.today()}.csv"'},
    )
