"""`childindex duplicates report`: probable duplicate records across the whole directory, by id."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

from childindex.duplicates import run_report
from childindex.settings import Settings
from directory.db import make_engine
from search.duplicates import REPORT_CANDIDATES, write_report
from search.embedded import EmbeddedBackend

duplicates_app = typer.Typer(help="Probable duplicate records: the report.", no_args_is_help=True)
console = Console()


@duplicates_app.command("report")
def report(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the pairs to this file: CSV, or JSON if it ends in .json"),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=5, max=200, help="Candidates scored per child")
    ] = REPORT_CANDIDATES,
) -> None:
    """Find probable duplicate pairs with the matching engine; list them by id and grade. Audited."""
    from childindex.app import build_search_backend
    from childindex.cli import cli_actor
    from search.projection import count_active

    settings = Settings()
    engine = make_engine(settings.database_url)
    backend = build_search_backend(settings, engine)
    backend.ensure_ready()
    if isinstance(backend, EmbeddedBackend) and settings.search_resident:
        # A million children take some 40 s to load into memory, then each candidate lookup is
        # a fraction of a millisecond instead of several of SQL.
        with console.status("Loading the search index into memory"):
            backend.start_resident().wait_ready()
    total = count_active(engine)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("Comparing children", total=total)
        found, pairs = run_report(
            engine,
            backend,
            actor=cli_actor(),
            progress=lambda n: progress.update(task, completed=n),
            limit=limit,
        )
    if isinstance(backend, EmbeddedBackend):
        backend.stop_resident()
    certain = sum(p.grade == "certain" for p in pairs)
    console.print(
        f"{found.children} children compared in {found.seconds:.0f}s: {len(pairs)} probable duplicate "
        f"pair(s), {certain} certain."
    )
    if out is not None:
        write_report(pairs, out)
        console.print(f"Written to {out} (ids, grades, scores and the fields that agreed; no personal data).")
        return
    for pair in pairs[:50]:
        console.print(
            f"{pair.grade:<9} {pair.score:.4f}  {pair.as_row()['first']}  {pair.as_row()['second']}"
        )
    if len(pairs) > 50:
        console.print(f"... and {len(pairs) - 50} more: use --out FILE for them all.")
