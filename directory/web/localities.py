"""The locality overview for local delivery teams: counts, charts and a CSV per locality; no child named."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import Response

from directory import audit
from directory import repository as repo
from directory.web.deps import LocalityTeam, render, unit_of_work

router = APIRouter(include_in_schema=False)
LEVELS = {1: "1: universal", 2: "2: additional", 3: "3: complex", 4: "4: acute or statutory"}
MEASURES = {
    "open_cafs": "Open CAFs",
    "awaiting_tac": "CAFs awaiting a Team Around the Child",
    "tac_review_overdue": "Teams past their review date",
}


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
        for loc_id, level, n in repo.children_by_level_per_locality(db):
            if loc_id in stats:
                stats[loc_id].by_level[min(max(level, 1), 4)] += n
        for loc_id, measure, n in repo.cafs_per_locality(db, today):
            if loc_id in stats:
                stats[loc_id].measures[measure] = n
        for loc_id, kind, n in repo.involvements_by_service_per_locality(db):
            if loc_id in stats:
                stats[loc_id].by_service[kind] = n
    rows = [s for key, s in stats.items() if key is not None or s.children]
    return sorted(rows, key=lambda s: (s.code == "NONE", s.name))


def bars(values: dict[str, int], width: int = 420) -> list[tuple[str, int, int, int]]:
    """(label, value, bar width, y) for a horizontal SVG bar chart scaled to the largest value."""
    top = max(values.values(), default=0) or 1
    return [(label, v, round(width * v / top), i * 32) for i, (label, v) in enumerate(values.items())]


@router.get("/localities", name="web_localities")
def web_localities(request: Request, actor: LocalityTeam) -> Response:
    """Per locality: children by level of need, CAFs and TACs that need attention, involvement by service."""
    rows = overview(request, date.today())
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
        request, "localities.html", actor=actor, rows=rows, charts=charts, levels=LEVELS, measures=MEASURES
    )


@router.get("/localities/overview.csv", name="web_localities_csv")
def web_localities_csv(request: Request, actor: LocalityTeam) -> Response:
    """The same figures as CSV: locality, measure, category, count. Audited."""
    rows = overview(request, date.today())
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["locality_code", "locality", "measure", "category", "count"])
    for s in rows:
        for level, n in s.by_level.items():
            writer.writerow([s.code, s.name, "children_by_level_of_need", level, n])
        for measure, n in s.measures.items():
            writer.writerow([s.code, s.name, measure, "", n])
        for kind, n in sorted(s.by_service.items()):
            writer.writerow([s.code, s.name, "involvements_by_service", kind, n])
    with unit_of_work(request) as db:
        audit.append(db, actor=actor, action="locality.overview.export", detail={"localities": len(rows)})
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="locality-overview-{date.today()}.csv"'},
    )
