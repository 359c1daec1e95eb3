"""The probable duplicates page (data managers and directory admins): run the report over the whole
directory in the background, then review its pairs by id, grade and the fields that agreed, each with
a link to the merge page. Pairs involving a shielded child are listed to the record keepers too,
tagged "shielded" (childindex/duplicates.py SHIELDED_PAIR_READERS).
"""

from __future__ import annotations

import threading
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from auth.deps import RequireScope
from childindex.duplicates import (
    DUPLICATE_REVIEWERS,
    decide_not_duplicates,
    latest_run,
    listed_pairs,
    pair_children,
    run_report,
    running,
)
from childindex.web.deps import check_csrf, csrf_refused, flash, render, unit_of_work
from directory import audit
from directory.errors import NotFound
from directory.models import Actor, DuplicateRun
from search.duplicates import DuplicatesRunner
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
    page = _page_number(request)
    with unit_of_work(request) as db:
        run = latest_run(db)
        pairs, total = listed_pairs(db, actor, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        pages = max(1, -(-total // PAGE_SIZE))
        if page > pages:
            page = pages
            pairs, total = listed_pairs(db, actor, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        done = next(iter(db.exec(_latest_done())), None)
        if done is not None:
            audit.append(
                db,
                actor=actor,
                action="duplicates.report.read",
                detail={"page": page, "listed": len(pairs)},
                children=pair_children(pairs),
            )
    return render(
        request,
        "admin/duplicates.html",
        actor=actor,
        report=done,
        pairs=[p.as_row() for p in pairs],
        total=total,
        page=page,
        pages=pages,
        running=runner.running or running(run),
        done=run.children if run is not None else 0,
        total_children=run.total if run is not None else 0,
        failed=run is not None and run.state == "failed",
    )


def _latest_done() -> SelectOfScalar[DuplicateRun]:
    # populate_existing: the same row may already be in this session as it was while running (read by
    # latest_run a moment before); on PostgreSQL the run can finish in between, and the row must then
    # be read afresh, not answered from the session with no finishing time.
    return (
        select(DuplicateRun)
        .where(DuplicateRun.state == "done")
        .order_by(col(DuplicateRun.started_at).desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )


@router.post("/admin/duplicates", name="web_duplicates_run")
async def web_duplicates_run(request: Request, actor: Reviewer, runner: Runner) -> Response:
    """Start the report over the whole directory (one run at a time, on any node); audited when done."""
    form = dict(await request.form())
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    with unit_of_work(request) as db:
        elsewhere = running(latest_run(db))
    engine: Engine = request.app.state.engine
    matcher: MatchingEngine = request.app.state.search_engine
    started = not elsewhere and runner.start(
        lambda progress: run_report(engine, matcher.backend, actor=actor, progress=progress)[0]
    )
    flash(
        request,
        "The report is running: this page shows its progress." if started else "A report is already running.",
    )
    return RedirectResponse("/admin/duplicates", status_code=303)


@router.post("/admin/duplicates/not-duplicates", name="web_not_duplicates")
async def web_not_duplicates(request: Request, actor: Reviewer) -> Response:
    """A listed pair is two children: no later report lists it. Audited."""
    form = dict(await request.form())
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    try:
        first, second = uuid.UUID(str(form.get("first", ""))), uuid.UUID(str(form.get("second", "")))
    except ValueError:
        first = second = uuid.UUID(int=0)
    try:
        with unit_of_work(request) as db:
            decide_not_duplicates(db, actor, first, second)
    except NotFound as exc:
        flash(request, exc.message)
        return RedirectResponse("/admin/duplicates", status_code=303)
    flash(request, "Recorded: these two records are two children. The report will not list them again.")
    page = str(form.get("page", "1"))
    return RedirectResponse(f"/admin/duplicates?page={page if page.isdigit() else 1}", status_code=303)
