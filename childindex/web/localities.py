"""The locality overview for local delivery teams: counts, charts and a CSV per locality; no child named.

One locality at a time (a chooser, ?locality=CODE: a code, never child data), with every locality's
headline figures in one table above it, an "as at" time and the month-by-month CAF trend
(childindex/web/locality_trend.py). Codes are shown in plain words (childindex/web/labels.py)."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import Response

from childindex.web import labels, locality_trend
from childindex.web.deps import LocalityTeam, render, unit_of_work
from childindex.web.suppression import Figure, suppress_row
from directory import aggregates, audit
from directory import repository as repo
from directory.http.config import practice
from directory.models.vocabulary import utcnow

__all__ = ["Figure", "LocalityStats", "publish", "router", "suppress_row"]

router = APIRouter(include_in_schema=False)
LEVELS = {1: "1: universal", 2: "2: additional", 3: "3: complex", 4: "4: acute or statutory"}
MEASURES = {
    "open_cafs": "Open CAFs",
    "awaiting_tac": "CAFs awaiting a Team Around the Child",
    "tac_review_overdue": "Teams past their review date",
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
    locality_id: uuid.UUID | None = None  # None: the children with no locality recorded

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
            loc.id: LocalityStats(loc.code, loc.name, locality_id=loc.id)
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


BAR_ROW = 48  # SVG units per bar: the label on a line of its own, the bar and its value under it


def bars(values: dict[str, Figure], width: int = 280) -> list[tuple[str, str, int, int]]:
    """(label, shown value, bar width, y) for a horizontal SVG bar chart; withheld counts get no bar."""
    top = max((f.value or 0 for f in values.values()), default=0) or 1
    return [
        (label, str(f), max(1, round(width * f.value / top)) if f.value else 0, i * BAR_ROW)
        for i, (label, f) in enumerate(values.items())
    ]


def _chosen(stats: list[LocalityStats], code: str | None) -> LocalityStats | None:
    """The locality asked for (one of the reader's), or the first when none is asked for."""
    if code is None:
        return stats[0] if stats else None
    return next((s for s in stats if s.code == code), None)


@router.get("/localities", name="web_localities")
def web_localities(request: Request, actor: LocalityTeam, locality: str | None = None) -> Response:
    """Every locality's headline figures; one chosen locality's charts, involvement and CAF trend."""
    threshold = practice(request).suppress_below
    now = utcnow()
    stats = overview(request, now.date())
    rows = [publish(s, threshold) for s in stats]
    chosen = _chosen(stats, locality)
    detail: dict[str, object] = {"localities": len(rows), "locality": chosen.code if chosen else None}
    with unit_of_work(request) as db:
        trend = locality_trend.trend(db, chosen.locality_id, now, threshold) if chosen else None
        audit.append(db, actor=actor, action="locality.overview", detail=detail)
    shown = publish(chosen, threshold) if chosen else None
    unknown = locality is not None and chosen is None
    errors = {"locality": "Choose a locality from the list"} if unknown else {}
    charts = (
        {
            "levels": bars({LEVELS[k]: v for k, v in shown.by_level.items()}),
            "services": bars(dict(sorted((labels.service_type(k), f) for k, f in shown.by_service.items()))),
        }
        if shown
        else None
    )
    columns, months = locality_trend.columns(trend) if trend else ([], [])
    return render(
        request,
        "localities.html",
        actor=actor,
        status_code=400 if errors else 200,
        errors=errors,
        rows=rows,
        shown=shown,
        charts=charts,
        trend=trend,
        trend_columns=columns,
        trend_months=months,
        trend_text=locality_trend.describe(trend, shown.name) if trend and shown else "",
        series=locality_trend.SERIES,
        chart_size=(locality_trend.WIDTH, locality_trend.BASE + 36),
        as_at=now,
        levels=LEVELS,
        measures=MEASURES,
        threshold=threshold,
    )


@router.get("/localities/overview.csv", name="web_localities_csv")
def web_localities_csv(request: Request, actor: LocalityTeam) -> Response:
    """The same figures as CSV: locality, measure, category, count (empty when withheld) and why. Audited."""
    threshold = practice(request).suppress_below
    stats = overview(request, date.today())
    rows = [publish(s, threshold) for s in stats]
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
    now = utcnow()
    with unit_of_work(request) as db:
        by_code = {s.code: s for s in stats}
        for s in rows:
            t = locality_trend.trend(db, by_code[s.code].locality_id, now, threshold)
            for m, figures in t.rows():
                for key, f in zip(locality_trend.SERIES, figures, strict=True):
                    row(s, f"cafs_{key}_by_month", m.start.strftime("%Y-%m"), f)
        audit.append(db, actor=actor, action="locality.overview.export", detail={"localities": len(rows)})
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="locality-overview-{date.today()}.csv"'},
    )
