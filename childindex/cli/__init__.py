"""The `childindex` command: serve, demo, seed, import, migrate, audit, keys and upkeep."""

from __future__ import annotations

import csv
import getpass
import os
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy.engine import Engine

from childindex import audit_node, keys
from childindex.cli.backup import backup as backup_command
from childindex.cli.backup import restore as restore_command
from childindex.cli.clients import app as clients_app
from childindex.cli.demo_help import print_demo_accounts, print_demo_codes, print_demo_help
from childindex.cli.duplicates import duplicates_app
from childindex.cli.emails import emails_app
from childindex.cli.grants import app as grants_app
from childindex.cli.key_commands import audit_app, keys_app, secrets_app
from childindex.cli.lifecycle import lifecycle_app
from childindex.cli.lifecycle import run as run_lifecycle
from childindex.cli.pds import notifications_app, pds_app
from childindex.cli.users import app as users_app
from childindex.migrations import upgrade
from childindex.settings import Settings
from directory import audit, service
from directory.db import make_engine, unit_of_work
from directory.errors import DomainError
from directory.models import Actor, Purpose, Role, utcnow

if TYPE_CHECKING:
    from directory.importer import ImportResult
    from directory.jobs import Job

app = typer.Typer(help="childindex: who is already working with this child?", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.add_typer(secrets_app, name="secrets")
app.add_typer(grants_app, name="grants")
app.add_typer(users_app, name="users")
app.add_typer(pds_app, name="pds")
app.add_typer(notifications_app, name="notifications")
app.add_typer(lifecycle_app, name="lifecycle")
app.add_typer(duplicates_app, name="duplicates")
app.add_typer(clients_app, name="clients")
app.add_typer(emails_app, name="emails")
app.command("backup")(backup_command)  # backup and restore (childindex/cli/backup.py)
app.command("restore")(restore_command)
console = Console()


@app.callback()
def _keys_when_needed() -> None:
    # Each command loads the key files the first time it writes to the audit log or reads a
    # secret; serve, migrate and demo load them at once, so that a missing key stops them first.
    keys.install_when_needed(Settings)


def _load_keys(settings: Settings, engine: Engine) -> None:
    """Load the key files now (or stop, saying how to make them), then seal secrets still in plain
    text and key the audit chain's end, after an upgrade from a version without keys."""
    try:
        keys.install(settings)
    except keys.KeysMissing as exc:
        console.print(f"Not started: {exc}", style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    upgrade(engine)
    done = keys.bring_up_to_date(engine, actor=cli_actor())
    if done.sealed:
        console.print(f"{done.sealed} secret(s) stored in plain text are now encrypted.")
    if done.keyed:
        console.print("The audit chain is keyed from now on (its earlier events keep plain SHA-256).")


def cli_actor(action_purpose: Purpose = Purpose.ADMINISTRATION) -> Actor:
    """The operator running a command, as recorded in the audit log."""
    return Actor(
        subject=f"cli:{getpass.getuser()}",
        role=Role.DIRECTORY_ADMIN,
        client_id="childindex-cli",
        purpose=action_purpose,
    )


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    settings = Settings()
    _load_keys(settings, make_engine(settings.database_url))
    console.print("[green]Schema is up to date.[/green]")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="Processes (CHILDINDEX_WORKERS)")] = None,
) -> None:
    """Migrate the database and serve the app."""
    settings = Settings()
    migrating = make_engine(settings.database_url)  # (batch limits: a migration is not cut short)
    _load_keys(settings, migrating)  # (keys, migrations, sealing what an older version left plain)
    migrating.dispose()
    _serve(settings, host=host, port=port, workers=workers or settings.workers)


def _serve(settings: Settings, *, host: str | None, port: int | None, workers: int = 1) -> None:
    from childindex.metrics_files import end_multiprocess, prepare_multiprocess

    # Each process's metrics in files there, summed by a scrape: made before prometheus-client is
    # imported (below, with the app), which decides then where this process keeps its own.
    metrics_dir = prepare_multiprocess() if workers > 1 else None
    import uvicorn

    from childindex.app import create_app, serving_limits, settled_heap
    from childindex.logs import uvicorn_log_config
    from childindex.metrics import install_listener

    engine = make_engine(settings.database_url, limits=serving_limits(settings))

    where = {
        "host": host or settings.host,
        "port": port or settings.port,
        "log_level": settings.log_level,
        "access_log": False,
        # The app finds the client's address itself, believing only CHILDINDEX_TRUSTED_PROXIES
        # (auth/source.py); uvicorn would otherwise take X-Forwarded-For from any local peer.
        "proxy_headers": False,
        "log_config": uvicorn_log_config(settings.log_format, settings.log_level),  # (docs/operations.md)
    }
    # The background jobs run here, in the supervising process, whatever the number of workers:
    # every node starts every job and only the holder of a job's lease works (directory/jobs.py),
    # so two nodes against one database never both index, notify or deliver.
    _log_leases(settings)
    install_listener()  # (what the jobs and the node's audit writer do here is counted too)
    jobs = _background_jobs(settings, engine)
    serving = settings.model_copy(update=_NO_JOBS_IN_WORKERS)
    node_writer = None
    try:
        if workers <= 1:
            uvicorn.run(create_app(serving, engine=engine), **where)  # type: ignore[arg-type]
            return
        # Several processes read their settings from the environment. They must share the key that
        # signs sessions and CSRF tokens.
        os.environ.setdefault("CHILDINDEX_SECRET_KEY", secrets.token_urlsafe(32))
        os.environ["CHILDINDEX_INDEXER_INTERVAL_SECONDS"] = "0"
        os.environ["CHILDINDEX_NOTIFY_ENABLED"] = "false"
        os.environ["CHILDINDEX_FRONT_DOOR_WORKER"] = "false"
        node_writer = audit_node.start(settings, engine)  # one audit writer for the workers (docs/audit.md)
        with settled_heap():  # (the workers' apps do the same in theirs)
            uvicorn.run("childindex.app:create_app", factory=True, workers=workers, **where)  # type: ignore[arg-type]
    finally:
        for job in jobs:
            job.stop()
        audit_node.stop(node_writer)  # after the workers: every event they sent is written first
        if metrics_dir is not None:
            end_multiprocess(metrics_dir)


_NO_JOBS_IN_WORKERS = {"indexer_interval_seconds": 0, "notify_enabled": False, "front_door_worker": False}
"""What the serving processes do not run themselves (the supervisor's jobs do it)."""


def _background_jobs(settings: Settings, engine: Engine) -> list[Job]:
    from childindex.app import build_search_backend
    from interop.notify import NotificationWorker
    from search.indexer import BackgroundIndexer

    jobs: list[Job] = []
    if settings.indexer_interval_seconds > 0:
        backend = build_search_backend(settings, engine)
        backend.ensure_ready()
        _visible_at_once(backend)
        jobs.append(BackgroundIndexer(engine, backend, interval=settings.indexer_interval_seconds))
    if settings.notify_enabled:
        jobs.append(
            NotificationWorker(
                engine,
                interval_seconds=settings.notify_interval_seconds,
                max_attempts=settings.notify_max_attempts,
                base_url=str(settings.issuer).rstrip("/") + "/fhir",
            )
        )
    if settings.front_door_webhook:  # step-ups to the social care front door (interop/front_door.py)
        from childindex.panel_api import front_door_of
        from interop.front_door import FrontDoorWorker

        jobs.append(
            FrontDoorWorker(
                engine,
                front_door_of(settings),
                interval_seconds=settings.notify_interval_seconds,
                max_attempts=settings.notify_max_attempts,
            )
        )
    if settings.people_notify_enabled:
        from childindex.people_notify import from_settings

        jobs.append(from_settings(settings, engine))
    for job in jobs:
        job.start()
    return jobs


def _log_leases(settings: Settings) -> None:
    """Which jobs this node takes and loses, at INFO on stderr ("this node now runs the indexer"; no
    child data), unless logging is configured already."""
    import logging

    logger = logging.getLogger("childindex.jobs")
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(settings.log_level.upper())


def _visible_at_once(backend: object) -> None:
    """The indexer's Elasticsearch writes refresh the index as they land (one refresh per bulk
    request of up to 500 documents), so a child written through one node is found through any node
    within a second instead of at the next periodic refresh (docs/nodes.md)."""
    from search.elasticsearch import ElasticsearchBackend

    if isinstance(backend, ElasticsearchBackend):
        backend.refresh = True


def _database_url(given: str | None) -> str:
    url = given or Settings().database_url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        # A relative file such as the default var/childindex.db: create its folder.
        folder = os.path.dirname(url.removeprefix("sqlite:///"))
        if folder:
            os.makedirs(folder, exist_ok=True)
    return url


@contextmanager
def _progress() -> Iterator[Progress]:
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=False) as progress:
        yield progress


@app.command("seed")
def seed_command(
    children: Annotated[int, typer.Option("--children", min=0, help="Children to create")],
    seed: Annotated[int, typer.Option("--seed", help="The same seed gives the same data")] = 1,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Defaults to CHILDINDEX_DATABASE_URL")
    ] = None,
) -> None:
    """Load a synthetic county (Demoshire) with N children into an empty database."""
    from childindex.demo.seed import SeedError, is_empty
    from childindex.demo.seed import seed as run_seed

    engine = make_engine(_database_url(database_url))
    upgrade(engine)
    if not is_empty(engine):
        console.print("[red]Not seeded:[/red] the database already holds data; seed into an empty database.")
        raise typer.Exit(1)
    with _progress() as progress:
        task = progress.add_task("Seeding children", total=children)
        try:
            result = run_seed(
                engine,
                children=children,
                seed=seed,
                actor=cli_actor(),
                progress=lambda n: progress.advance(task, n),
            )
        except SeedError as exc:
            console.print(f"[red]Not seeded:[/red] {exc}.")
            raise typer.Exit(1) from None
    total = sum(result.rows.values())
    console.print(
        f"[green]Seeded[/green] {result.children} children (seed {result.seed}): "
        f"{total} rows in {len(result.rows)} tables."
    )


@app.command("import")
def import_command(
    files: Annotated[
        list[Path],
        typer.Argument(help="CSV or FHIR NDJSON files", exists=True, dir_okay=False, readable=True),
    ],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or fhir (default: from the file name)")
    ] = None,
    all_or_nothing: Annotated[
        bool, typer.Option("--all-or-nothing", help="Apply nothing when any row is rejected")
    ] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write every rejection to this CSV file")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Defaults to CHILDINDEX_DATABASE_URL")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="The feed (pds, school-census, social-care, ...): match every row and update, "
            "create or hold it for review, instead of only adding (docs/feeds.md)",
        ),
    ] = None,
) -> None:
    """Import children from CSV or FHIR NDJSON; exit 1 when any row was rejected."""
    from childindex.importing import import_files

    fmt = fmt or ("csv" if all(f.suffix.lower() == ".csv" for f in files) else "fhir")
    if fmt not in ("csv", "fhir"):
        raise typer.BadParameter("use --format csv or --format fhir")
    engine = make_engine(_database_url(database_url))
    upgrade(engine)
    if source is not None:
        from childindex.feed_command import run_feed

        code = run_feed(
            engine, files, fmt=fmt, source=source, report=report, console=console, actor=cli_actor()
        )
        raise typer.Exit(code)
    total = sum(_count_lines(f) - (fmt == "csv") for f in files)
    with _progress() as progress:
        task = progress.add_task("Importing rows", total=total)
        result = import_files(
            engine,
            files,
            fmt=fmt,
            actor=cli_actor(),
            all_or_nothing=all_or_nothing,
            progress=lambda n: progress.advance(task, n),
        )
    _print_import_result(result, report)
    if result.rejected:
        raise typer.Exit(1)


def _print_import_result(result: ImportResult, report: Path | None) -> None:
    """Only counts, line numbers, field names and reasons: never a child's details."""
    if result.applied:
        console.print(
            f"[green]Imported[/green] {result.created} new children "
            f"({result.related_people} parents/carers); {result.unchanged} already "
            f"in the directory were left unchanged; {len(result.rejected)} rejected."
        )
    else:
        console.print(
            f"[red]Nothing imported[/red] (--all-or-nothing): {len(result.rejected)} "
            f"of {result.read} rows rejected."
        )
    for rejection in result.rejected[:50]:
        console.print(
            f"  {rejection.source} line {rejection.line}: {rejection.field}: {rejection.reason}",
            markup=False,
            highlight=False,
        )
    if len(result.rejected) > 50:
        console.print(
            f"  … and {len(result.rejected) - 50} more"
            + (f" (all in {report})" if report else " (use --report FILE)")
        )
    if report is not None:
        with report.open("w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(["file", "line", "field", "reason"])
            out.writerows([r.source, r.line, r.field, r.reason] for r in result.rejected)


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
    return count


@app.command()
def demo(
    host: Annotated[str | None, typer.Option(help="Interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    children: Annotated[int, typer.Option(help="Children to seed into an empty database")] = 2000,
) -> None:
    """Seed a small synthetic county if the database is empty, then serve it in development mode."""
    from childindex.demo.seed import is_empty
    from childindex.demo.seed import seed as run_seed

    # The demo accepts the development actor header; it is never a production setting.
    os.environ["CHILDINDEX_ENVIRONMENT"] = "development"
    os.environ.setdefault("CHILDINDEX_LOG_FORMAT", "text")  # (a person at a terminal, not a log shipper)
    settings = Settings(environment="development")
    engine = make_engine(_database_url(settings.database_url))
    _load_keys(settings, engine)  # (in development, key files under var/ are made on first use)
    if is_empty(engine):
        with _progress() as progress:
            task = progress.add_task("Seeding the demo county", total=children)
            run_seed(
                engine,
                children=children,
                seed=DEMO_SEED,
                actor=cli_actor(),
                progress=lambda n: progress.advance(task, n),
            )
        reindex()  # the seed bulk-loads without the outbox: index everything once
    else:
        console.print("The database already holds data: serving it as it is.")
    print_demo_help(engine, host or settings.host, port or settings.port)
    print_demo_accounts(settings, engine)
    _serve(settings, host=host, port=port)


DEMO_SEED = 2024


@app.command("demo-codes")
def demo_codes() -> None:
    """The demo accounts' authenticator codes at this moment (each lasts 30 seconds)."""
    settings = Settings(environment="development")
    engine = make_engine(_database_url(settings.database_url))
    _load_keys(settings, engine)
    print_demo_codes(engine)


@app.command("expire-signals")
def expire_signals() -> None:
    """Expire signals of intent that were never started (run daily)."""
    engine = make_engine(Settings().database_url)
    with unit_of_work(engine) as session:
        count = service.expire_signals(session, actor=cli_actor(), now=utcnow())
    console.print(f"{count} signal(s) of intent expired.")


@app.command("archive-aged-out")
def archive_aged_out() -> None:
    """The same as `childindex lifecycle run` (archive and purge what is due), kept as a name."""
    run_lifecycle(dry_run=False)


sar_app = typer.Typer(help="Subject access requests: everything held about a child.", no_args_is_help=True)
app.add_typer(sar_app, name="sar")


@sar_app.command("export")
def sar_export(
    child: Annotated[str, typer.Argument(help="The child's record id")],
    out: Annotated[Path, typer.Option("--out", help="The folder to write the Bundle and the document into")],
) -> None:
    """Write everything held about a child (FHIR Bundle JSON + readable HTML) to answer a subject
    access request. Audited."""
    from childindex import subject_access

    try:
        child_id = uuid.UUID(child)
    except ValueError:
        console.print(f"'{child}' is not a record id.", style="red", markup=False)
        raise typer.Exit(2) from None
    settings = Settings()
    engine = make_engine(settings.database_url)
    try:
        with unit_of_work(engine) as session:
            export = subject_access.build(
                session, actor=cli_actor(), child_id=child_id, authority=settings.authority_name, now=utcnow()
            )
    except DomainError as exc:
        console.print(exc.message, style="red", markup=False)
        raise typer.Exit(1) from None
    for path in subject_access.write(export, out):
        console.print(f"Wrote {path}", markup=False, highlight=False)


@app.command()
def reindex(
    batch: Annotated[int, typer.Option(help="Children per batch")] = 5000,
) -> None:
    """Rebuild the search index from the database (the source of truth), with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from childindex.app import build_search_backend
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
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("Indexing children", total=total)
        count = backend.rebuild(
            all_children(engine, batch=batch), progress=lambda n: progress.update(task, completed=n)
        )
    # Changes made while the rebuild ran may have gone to the old index: replay them.
    with engine.begin() as conn:
        conn.execute(sa.update(outbox).where(outbox.c.id > mark).values(processed_at=None))
        conn.execute(
            sa.update(outbox)
            .where(outbox.c.id <= mark, outbox.c.processed_at.is_(None))
            .values(processed_at=utcnow())
        )
    replayed = drain(engine, backend, wait=True)
    with unit_of_work(engine) as session:
        audit.append(
            session,
            actor=cli_actor(),
            action="search.reindex",
            detail={"children": count, "backend": backend.name, "replayed": replayed},
        )
    console.print(
        f"[green]Indexed {count} children[/green] into the {backend.name} backend "
        f"({replayed} change(s) made during the rebuild replayed)."
    )


@app.command("index")
def index_pending() -> None:
    """Apply pending directory changes (the outbox) to the search index once, then exit."""
    from childindex.app import build_search_backend
    from search.indexer import drain

    settings = Settings()
    engine = make_engine(settings.database_url)
    backend = build_search_backend(settings, engine)
    backend.ensure_ready()
    console.print(f"{drain(engine, backend, wait=True)} change(s) applied to the search index.")


@app.command("localities")
def localities(
    file: Annotated[
        typer.FileText, typer.Argument(help="CSV: code,name,authority,team_name,team_phone,team_email,areas")
    ],
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
