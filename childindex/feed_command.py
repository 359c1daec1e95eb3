"""What `childindex import --source NAME` prints and writes: counts, and with --report a CSV of
every line's outcome and reason code (never a child's details)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from sqlalchemy.engine import Engine

from childindex.app import build_search_backend
from childindex.feeds import reconcile_files
from childindex.settings import Settings
from directory.importer.precedence import load_precedence
from directory.importer.reconcile import ReconcileResult
from directory.models import Actor


def run_feed(
    engine: Engine,
    files: Sequence[Path],
    *,
    fmt: str,
    source: str,
    report: Path | None,
    console: Console,
    actor: Actor,
) -> int:
    """Reconcile a feed's files and report; the exit code (1 when any row was rejected)."""
    settings = Settings()
    try:
        precedence = load_precedence(
            Path(settings.feed_precedence_file) if settings.feed_precedence_file else None
        )
        backend = build_search_backend(settings, engine)
        backend.ensure_ready()
        result = reconcile_files(
            engine, files, fmt=fmt, source=source, backend=backend, precedence=precedence, actor=actor
        )
    except ValueError as exc:
        console.print(f"[red]Nothing imported:[/red] {exc}", markup=True, highlight=False)
        return 2
    print_result(result, report, console)
    return 1 if result.rejected else 0


def print_result(result: ReconcileResult, report: Path | None, console: Console) -> None:
    """Counts, and the rejections' lines, fields and reasons; the report file line by line."""
    console.print(
        f"Feed [bold]{result.source}[/bold]: {result.read} rows read; {result.created} created, "
        f"{result.updated} updated, {result.unchanged} unchanged, {result.held} held for review, "
        f"{len(result.rejected)} rejected."
    )
    if result.ignored:
        ignored = ", ".join(f"{name} {n}" for name, n in sorted(result.ignored.items()))
        console.print(f"Fields this source is not trusted for were left as they were: {ignored}.")
    for rejection in result.rejected[:50]:
        console.print(
            f"  {rejection.source} line {rejection.line}: {rejection.field}: {rejection.reason}",
            markup=False,
            highlight=False,
        )
    if report is not None:
        write_report(result, report)


def write_report(result: ReconcileResult, path: Path) -> None:
    """file, line, outcome, reason code: one row per line of the feed."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["file", "line", "outcome", "reason"])
        out.writerows([o.file, o.line, o.outcome.value, o.reason] for o in result.lines)
