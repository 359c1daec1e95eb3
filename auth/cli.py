"""`childindex grants ...`: list, grant, renew, suspend, revoke and see what expires soon.

The operator at the shell already holds the database, so the CLI is not limited to the
operator's own grant; every change is still audited, as "cli:<login user>".
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from auth import grants as svc
from auth.grants import GrantCreate, GrantRenew
from auth.models import AccessGrant, GrantStatus, SubjectKind
from directory.db import make_engine, unit_of_work
from directory.errors import DomainError
from directory.models import Actor, Purpose, Role, utcnow

app = typer.Typer(help="Access grants: who may use the directory, how, and until when.", no_args_is_help=True)
console = Console()


def _database_url() -> str:
    from directory.settings import Settings  # the CLI is allowed to read settings

    return Settings().database_url


def _operator() -> Actor:
    return Actor(
        subject=f"cli:{getpass.getuser()}",
        role=Role.DIRECTORY_ADMIN,
        client_id="childindex-cli",
        purpose=Purpose.ADMINISTRATION,
    )


def _authority() -> str:
    from directory.settings import Settings

    return Settings().authority_name


def _show(rows: list[AccessGrant]) -> None:
    table = Table("id", "subject", "kind", "role", "scopes", "until", "status", "training", "vetting")
    for g in rows:
        table.add_row(
            str(g.id),
            g.subject,
            g.subject_kind,
            g.role,
            g.scopes,
            g.valid_until.date().isoformat(),
            g.status,
            str(g.training_completed_on or "-"),
            str(g.vetting_checked_on or "-"),
        )
    Console().print(table)  # a fresh console picks up the terminal's current width


def _run(action: Callable[[], None]) -> None:
    try:
        action()
    except DomainError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None


@app.command("list")
def list_(
    subject: Annotated[str | None, typer.Option(help="Only this subject")] = None,
    status: Annotated[GrantStatus | None, typer.Option(help="Only this status")] = None,
    expiring: Annotated[int | None, typer.Option(help="Only active grants ending within N days")] = None,
) -> None:
    """List grants."""
    with unit_of_work(make_engine(_database_url())) as session:
        rows = svc.list_grants(session, subject=subject, status=status, expiring_within_days=expiring)
        _show(rows)


@app.command()
def expiring(days: Annotated[int, typer.Option(help="Window in days")] = 30) -> None:
    """Active grants that end within the next N days (default 30)."""
    with unit_of_work(make_engine(_database_url())) as session:
        _show(svc.list_grants(session, expiring_within_days=days))


@app.command()
def grant(
    subject: Annotated[str, typer.Argument(help="Username, upstream subject or client_id")],
    role: Annotated[Role, typer.Option(help="The role granted")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log)")],
    kind: Annotated[SubjectKind, typer.Option(help="user or client")] = SubjectKind.USER,
    scopes: Annotated[str | None, typer.Option(help="Space-separated; default: the role's")] = None,
    localities: Annotated[str, typer.Option(help="Comma-separated locality codes")] = "",
    days: Annotated[int, typer.Option(help="Valid for N days from now")] = 365,
    training: Annotated[datetime | None, typer.Option(help="Training completed on (YYYY-MM-DD)")] = None,
    vetting: Annotated[datetime | None, typer.Option(help="Vetting checked on (YYYY-MM-DD)")] = None,
) -> None:
    """Grant access to a user or a client."""
    data = GrantCreate(
        subject=subject,
        subject_kind=kind,
        role=role,
        reason=reason,
        scopes=scopes.split() if scopes else None,
        localities=[x.strip() for x in localities.split(",") if x.strip()],
        training_completed_on=training.date() if training else None,
        vetting_checked_on=vetting.date() if vetting else None,
        valid_until=utcnow() + timedelta(days=days),
    )

    def act() -> None:
        with unit_of_work(make_engine(_database_url())) as session:
            row = svc.create_grant(
                session, actor=_operator(), admin_grant=None, data=data, default_authority=_authority()
            )
            console.print(f"[green]Granted[/green] {row.role} to {row.subject}: {row.id}")

    _run(act)


@app.command()
def renew(
    grant_id: uuid.UUID,
    reason: Annotated[str, typer.Option(help="Why")],
    days: Annotated[int, typer.Option(help="Valid for N days from now")] = 365,
    training: Annotated[datetime | None, typer.Option(help="New training date")] = None,
    vetting: Annotated[datetime | None, typer.Option(help="New vetting date")] = None,
) -> None:
    """Extend a grant and record fresh training or vetting dates."""
    data = GrantRenew(
        valid_until=utcnow() + timedelta(days=days),
        reason=reason,
        training_completed_on=training.date() if training else None,
        vetting_checked_on=vetting.date() if vetting else None,
    )

    def act() -> None:
        with unit_of_work(make_engine(_database_url())) as session:
            row = svc.renew_grant(session, actor=_operator(), admin_grant=None, grant_id=grant_id, data=data)
            console.print(f"[green]Renewed[/green] until {row.valid_until.date()}")

    _run(act)


def _status(grant_id: uuid.UUID, status: GrantStatus, reason: str) -> None:
    def act() -> None:
        with unit_of_work(make_engine(_database_url())) as session:
            row = svc.set_status(
                session, actor=_operator(), admin_grant=None, grant_id=grant_id, status=status, reason=reason
            )
            console.print(f"Grant {row.id} is now [bold]{row.status}[/bold].")

    _run(act)


@app.command()
def suspend(grant_id: uuid.UUID, reason: Annotated[str, typer.Option(help="Why")]) -> None:
    """Suspend a grant (reinstate lifts it)."""
    _status(grant_id, GrantStatus.SUSPENDED, reason)


@app.command()
def reinstate(grant_id: uuid.UUID, reason: Annotated[str, typer.Option(help="Why")]) -> None:
    """Lift a suspension."""
    _status(grant_id, GrantStatus.ACTIVE, reason)


@app.command()
def revoke(grant_id: uuid.UUID, reason: Annotated[str, typer.Option(help="Why")]) -> None:
    """Revoke a grant for good."""
    _status(grant_id, GrantStatus.REVOKED, reason)
