"""The probable duplicates page (data managers and directory admins): run the report over the whole
directory in the background, then review its pairs by id, grade and the fields that agreed, each with
a link to the merge page. Pairs involving a shielded child are listed to the record keepers too,
tagged "shielded" (childindex/duplicates.py SHIELDED_PAIR_READERS).
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.engine import Engine

from auth.deps import RequireScope
from childindex.duplicates import DUPLICATE_REVIEWERS, pair_children, run_report, shown_to
from childindex.web.deps import check_csrf, csrf_refused, flash, render, unit_of_work
from directory import audit
from directory.models import Actor
from search.duplicates import DuplicateReport, DuplicatesRunner
from search.matching import MatchingEngine

router = APIRouter(include_in_schema=False)
Reviewer = Annotated[Actor, Depends(RequireScope("directory.write", roles=DUPLICATE_REVIEWERS))]
PAGE_SIZE = 100
"""Pairs per page: a reviewer works through them a page at a time (each page's pairs are audited)."""

_RUNNER_LOCK = threading.Lock()


def duplicates_runner(request: Request) -> DuplicatesRunner:
    """This process's report runner (one run at a time), made on first use."""
    state = request.app.state
    with _RUNNER_LOCK:
        runner: DuplicatesRunner | None = getattr(state, "duplicates_runner", None)
        if runner is None:
            runner = state.duplicates_runner = DuplicatesRunner()
    return runner


Runner = Annotated[DuplicatesRunner, Depends(duplicates_runner)]


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return max(1, min(int(raw), 100_000)) if raw.isdigit() else 1


@router.get("/admin/duplicates", name="web_duplicates")
def web_duplicates(request: Request, actor: Reviewer, runner: Runner) -> Response:
    """The latest report's pairs this person may see, a page at a time; the listing is audited."""
    report: DuplicateReport | None = runner.latest
    pairs = shown_to(actor, report) if report is not None else []
    page = _page_number(request)
    pages = max(1, -(-len(pairs) // PAGE_SIZE))
    page = min(page, pages)
    shown = pairs[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    if report is not None:
        with unit_of_work(request) as db:
            audit.append(
                db,
                actor=actor,
                action="duplicates.report.read",
                detail={"page": page, "listed": len(shown)},
                children=pair_children(shown),
            )
    return render(
        request,
        "admin/duplicates.html",
        actor=actor,
        report=report,
        pairs=[p.as_row() for p in shown],
        total=len(pairs),
        page=page,
        pages=pages,
        running=runner.running,
        done=runner.done,
        failed=runner.error,
    )


@router.post("/admin/duplicates", name="web_duplicates_run")
async def web_duplicates_run(request: Request, actor: Reviewer, runner: Runner) -> Response:
    """Start the report over the whole directory (one run at a time); the run is audited when done."""
    form = dict(await request.form())
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    engine: Engine = request.app.state.engine
    matcher: MatchingEngine = request.app.state.search_engine
    started = runner.start(
        lambda progress: run_report(engine, matcher.backend, actor=actor, progress=progress)[0]
    )
    flash(
        request,
        "The report is running: this page shows its progress." if started else "A report is already running.",
    )
    return RedirectResponse("/admin/duplicates", status_code=303)
