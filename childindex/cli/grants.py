"""`childindex grants ...`: list, grant, renew, suspend, revoke, approve and see what expires soon.

The operator at the shell already holds the database, so the CLI is not limited to the
operator's own grant; it is held to everything else (safe subjects, bounded dates, a person
responsible for each client and a second operator or administrator to approve a client's
grant), and every change is audited, as "cli:<login user>".
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from auth import grant_admin as svc
from auth.grant_admin import GrantCreate, GrantRenew
from auth.grant_rules import GrantRules
from auth.models import AccessGrant, GrantStatus, SubjectKind
from directory.db import make_engine, unit_of_work
from directory.errors import DomainError
from directory.models import Actor, Purpose, Role, utcnow

app = typer.Typer(help="Access grants: who may use the directory, how, and until when.", no_args_is_help=True)
console = Console()


def _database_url() -> str:
    from childindex.settings import Settings  # the CLI is allowed to read settings

    return Settings().database_url


def _operator() -> Actor:
    return Actor(
        subject=f"cli:{getpass.getuser()}",
        role=Role.DIRECTORY_ADMIN,
        client_id="childindex-cli",
        purpose=Purpose.ADMINISTRATION,
    )


def _authority() -> str:
    from childindex.settings import Settings

    return Settings().authority_name


def _rules() -> GrantRules:
    from childindex.settings import Settings

    return GrantRules.of(Settings())


# The domain refuses anything past CHILDINDEX_GRANT_MAX_DAYS; a century is only far enough not to
# overflow a date while still being refused with the domain's own message.
_FAR = 36500


def _days_ahead(days: int) -> datetime:
    return utcnow() + timedelta(days=min(days, _FAR))


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
        console.print(exc.message, style="red", markup=False, highlight=False)
        raise typer.Exit(1) from None
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "input"
            console.print(f"{where}: {error['msg']}", style="red", markup=False, highlight=False)
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
    days: Annotated[int, typer.Option(min=1, help="Valid for N days from now")] = 365,
    training: Annotated[datetime | None, typer.Option(help="Training completed on (YYYY-MM-DD)")] = None,
    vetting: Annotated[datetime | None, typer.Option(help="Vetting checked on (YYYY-MM-DD)")] = None,
    responsible: Annotated[
        str | None, typer.Option(help="For a client: the person who answers for it (their username)")
    ] = None,
) -> None:
    """Grant access to a user or a client (a client's grant waits for `grants approve`)."""

    def act() -> None:
        data = GrantCreate(
            subject=subject,
            subject_kind=kind,
            role=role,
            reason=reason,
            scopes=scopes.split() if scopes else None,
            localities=[x.strip() for x in localities.split(",") if x.strip()],
            training_completed_on=training.date() if training else None,
            vetting_checked_on=vetting.date() if vetting else None,
            valid_until=_days_ahead(days),
            responsible=responsible,
        )
        with unit_of_work(make_engine(_database_url())) as session:
            row = svc.create_grant(
                session,
                actor=_operator(),
                admin_grant=None,
                data=data,
                default_authority=_authority(),
                rules=_rules(),
            )
            console.print(f"[green]Granted[/green] {row.role} to {row.subject}: {row.id}", highlight=False)
            if row.status == GrantStatus.PENDING:
                console.print(
                    f"It is pending: another operator (childindex grants approve {row.id} --reason ...) "
                    "or another administrator in the admin pages approves it before it works."
                )

    _run(act)


@app.command()
def renew(
    grant_id: uuid.UUID,
    reason: Annotated[str, typer.Option(help="Why")],
    days: Annotated[int, typer.Option(min=1, help="Valid for N days from now")] = 365,
    training: Annotated[datetime | None, typer.Option(help="New training date")] = None,
    vetting: Annotated[datetime | None, typer.Option(help="New vetting date")] = None,
    responsible: Annotated[str | None, typer.Option(help="For a client: a new person responsible")] = None,
) -> None:
    """Extend a grant and record fresh training or vetting dates."""

    def act() -> None:
        data = GrantRenew(
            valid_until=_days_ahead(days),
            reason=reason,
            training_completed_on=training.date() if training else None,
            vetting_checked_on=vetting.date() if vetting else None,
            responsible=responsible,
        )
        with unit_of_work(make_engine(_database_url())) as session:
            row = svc.renew_grant(
                session, actor=_operator(), admin_grant=None, grant_id=grant_id, data=data, rules=_rules()
            )
            console.print(f"[green]Renewed[/green] until {row.valid_until.date()}")

    _run(act)


def _status(grant_id: uuid.UUID, status: GrantStatus, reason: str) -> None:
    def act() -> None:
        with unit_of_work(make_engine(_database_url())) as session:
            row = svc.set_status(
                session,
                actor=_operator(),
                admin_grant=None,
                grant_id=grant_id,
                status=status,
                reason=reason,
                rules=_rules(),
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


@app.command()
def approve(grant_id: uuid.UUID, reason: Annotated[str, typer.Option(help="Why")]) -> None:
    """Approve a pending (client) grant: a second operator or administrator, not the one who made it."""

    def act() -> None:
        with unit_of_work(make_engine(_database_url())) as session:
            row = svc.approve_grant(
                session, actor=_operator(), admin_grant=None, grant_id=grant_id, reason=reason, rules=_rules()
            )
            console.print(f"Grant {row.id} is approved and now [bold]{row.status}[/bold].")

    _run(act)
