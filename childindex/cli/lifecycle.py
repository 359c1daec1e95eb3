"""`childindex lifecycle run [--dry-run]`: the daily life cycle of records (archive at the end of the
age range and after a move out of the area, purge archived records when their time comes), with a
report of what it did (counts only). `childindex archive-aged-out` is the same run, kept as a name."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.console import Console

from childindex.settings import Settings, lifecycle_rules
from directory.db import make_engine, unit_of_work
from directory.jobs import exclusive
from directory.models import Actor, Purpose, Role, utcnow
from directory.service.lifecycle import LifecycleReport, run_lifecycle

lifecycle_app = typer.Typer(
    help="A record's life cycle: archive and purge on schedule.", no_args_is_help=True
)
console = Console()


def _operator() -> Actor:
    return Actor(
        subject=f"cli:{getpass.getuser()}",
        role=Role.DIRECTORY_ADMIN,
        client_id="childindex-cli",
        purpose=Purpose.ADMINISTRATION,
    )


def run(*, dry_run: bool) -> LifecycleReport:
    """Run the life cycle once against the configured database (and its search index); print the report."""
    settings = Settings()
    engine = make_engine(settings.database_url)
    # Cron may start the run on every node: the first takes the life cycle's lease (directory/jobs.py)
    # and the others do nothing. (Two runs at once would be harmless anyway: each record once.)
    with exclusive(engine, "lifecycle") as mine:
        if not mine:
            console.print("Another node or process is running the life cycle now: nothing done here.")
            return LifecycleReport(dry_run=dry_run)
        with unit_of_work(engine) as session:
            report = run_lifecycle(
                session, actor=_operator(), rules=lifecycle_rules(settings), now=utcnow(), dry_run=dry_run
            )
    if not dry_run and (report.archived_aged_out or report.archived_moved_away or report.purged):
        # The records leave the search index now, not whenever a server next drains the outbox.
        from childindex.app import build_search_backend
        from search.indexer import drain

        backend = build_search_backend(settings, engine)
        backend.ensure_ready()
        drain(engine, backend, wait=True)
    for line in report.lines():
        console.print(line, highlight=False)
    if dry_run:
        console.print("Dry run: nothing was changed.")
    return report


@lifecycle_app.command("run")
def lifecycle_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what is due; change nothing")] = False,
) -> None:
    """Archive records at the end of the age range and after a move away; purge when due (daily)."""
    run(dry_run=dry_run)
