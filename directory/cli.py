"""The `childindex` command: serve, demo, seed, import, migrate, audit verify and upkeep."""

from __future__ import annotations

import getpass
from datetime import date
from typing import Annotated

import typer
from rich.console import Console

from auth.cli import app as grants_app
from directory import audit, service
from directory.db import make_engine, unit_of_work
from directory.migrations import upgrade
from directory.models import Actor, Purpose, Role, utcnow
from directory.settings import Settings

app = typer.Typer(help="childindex: who is already working with this child?", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(grants_app, name="grants")
console = Console()


def cli_actor(action_purpose: Purpose = Purpose.ADMINISTRATION) -> Actor:
    """The operator running a command, as recorded in the audit log."""
    return Actor(subject=f"cli:{getpass.getuser()}", role=Role.DIRECTORY_ADMIN, client_id="childindex-cli",
                 purpose=action_purpose)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    settings = Settings()
    upgrade(make_engine(settings.database_url))
    console.print("[green]Schema is up to date.[/green]")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
) -> None:
    """Migrate the database and serve the app."""
    import uvicorn

    from directory.app import create_app

    settings = Settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    uvicorn.run(create_app(settings, engine=engine), host=host or settings.host, port=port or settings.port,
                log_level=settings.log_level, access_log=False)


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit chain; exit 1 when any event was edited, removed or inserted."""
    settings = Settings()
    engine = make_engine(settings.database_url)
    with unit_of_work(engine) as session:
        result = audit.verify(session)
    if result.ok:
        console.print(f"[green]Audit chain intact:[/green] {result.checked} events verified.")
        return
    console.print(f"[red]Audit chain broken[/red] after checking {result.checked} events:")
    for problem in result.problems:
        console.print(f"  - {problem}")
    raise typer.Exit(1)


@app.command("expire-signals")
def expire_signals() -> None:
    """Expire signals of intent that were never started (run daily)."""
    engine = make_engine(Settings().database_url)
    with unit_of_work(engine) as session:
        count = service.expire_signals(session, actor=cli_actor(), now=utcnow())
    console.print(f"{count} signal(s) of intent expired.")


@app.command("archive-aged-out")
def archive_aged_out() -> None:
    """Archive (never delete) records of young people past their 19th year (run daily)."""
    engine = make_engine(Settings().database_url)
    with unit_of_work(engine) as session:
        count = service.archive_aged_out(session, actor=cli_actor(), today=date.today())
    console.print(f"{count} record(s) archived.")


@app.command()
def reindex(
    batch: Annotated[int, typer.Option(help="Children per batch")] = 5000,
) -> None:
    """Rebuild the search index from the database (the source of truth), with a progress bar."""
    import sqlalchemy as sa
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from directory.app import build_search_backend
    from directory.models import Outbox
    from search.indexer import drain
    from search.projection import all_children, count_active

    settings = Settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    backend = build_search_backend(settings, engine)
    backend.ensure_ready()
    outbox = Outbox.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        mark = conn.execute(sa.select(sa.func.coalesce(sa.func.max(outbox.c.id), 0))).scalar_one()
    total = count_active(engine)
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task("Indexing children", total=total)
        count = backend.rebuild(all_children(engine, batch=batch),
                                progress=lambda n: progress.update(task, completed=n))
    # Changes made while the rebuild ran may have gone to the old index: replay them.
    with engine.begin() as conn:
        conn.execute(sa.update(outbox).where(outbox.c.id > mark).values(processed_at=None))
        conn.execute(sa.update(outbox).where(outbox.c.id <= mark, outbox.c.processed_at.is_(None))
                     .values(processed_at=utcnow()))
    replayed = drain(engine, backend, wait=True)
    with unit_of_work(engine) as session:
        audit.append(session, actor=cli_actor(), action="search.reindex",
                     detail={"children": count, "backend": backend.name, "replayed": replayed})
    console.print(f"[green]Indexed {count} children[/green] into the {backend.name} backend "
                  f"({replayed} change(s) made during the rebuild replayed).")


@app.command("index")
def index_pending() -> None:
    """Apply pending directory changes (the outbox) to the search index once, then exit."""
    from directory.app import build_search_backend
    from search.indexer import drain

    settings = Settings()
    engine = make_engine(settings.database_url)
    backend = build_search_backend(settings, engine)
    backend.ensure_ready()
    console.print(f"{drain(engine, backend, wait=True)} change(s) applied to the search index.")


@app.command("localities")
def localities(
    file: Annotated[typer.FileText, typer.Argument(help="CSV: code,name,authority,team_name,team_phone,team_email,areas")],
) -> None:
    """Configure the authority's localities and which postcode districts/sectors belong to each."""
    import csv

    from directory.errors import DomainError

    rows = list(csv.DictReader(file))
    engine = make_engine(Settings().database_url)
    upgrade(engine)
    try:
        with unit_of_work(engine) as session:
            count, areas = service.configure_localities(session, actor=cli_actor(), rows=rows)
    except DomainError as exc:
        console.print(f"[red]Nothing changed:[/red] {exc.message}")
        raise typer.Exit(1) from None
    console.print(f"{count} localities and {areas} postcode areas configured.")


def main() -> None:
    """Entry point of the console script."""
    app()
