"""`childindex pds …` (verify / refresh / trace against the demographics service) and
`childindex notifications …` (the dead-letter list: show, retry)."""

from __future__ import annotations

import getpass
import uuid
from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from childindex.settings import Settings
from directory import repository as drepo
from directory.db import make_engine, unit_of_work
from directory.errors import DomainError
from directory.identifiers import normalise_nhs_number
from directory.models import Actor, Purpose, Role
from interop import notify
from interop.pds import PdsClient, PdsConfig, PdsError, check_child
from interop.pds_trace import CONFIDENT_SCORE, TraceCandidate, confirm_trace, trace_child

pds_app = typer.Typer(
    help="The national demographics service (PDS): verify, refresh and trace.", no_args_is_help=True
)
notifications_app = typer.Typer(help="Outbound notifications: the dead-letter list.", no_args_is_help=True)
console = Console()


def _operator() -> Actor:
    return Actor(
        subject=f"cli:{getpass.getuser()}",
        role=Role.DIRECTORY_ADMIN,
        client_id="childindex-cli",
        purpose=Purpose.ADMINISTRATION,
    )


def _child_id(session: object, ref: str) -> uuid.UUID:
    """A child by record id, or by the NHS number it holds (the number never reaches a log)."""
    try:
        return uuid.UUID(ref)
    except ValueError:
        pass
    child = drepo.child_by_identifier(session, "nhs", normalise_nhs_number(ref))  # type: ignore[arg-type]
    if child is None:
        raise typer.BadParameter("no child record has that id or NHS number")
    return child.id


def _pds(settings: Settings) -> PdsClient:
    cfg = PdsConfig.from_settings(settings)
    if cfg is None:
        console.print(
            "[red]No demographics service is configured: set CHILDINDEX_PDS_BASE_URL "
            "and its credentials.[/red]"
        )
        raise typer.Exit(2)
    return PdsClient(cfg)


def _check(child_ref: str, *, refresh: bool) -> None:
    settings = Settings()
    engine = make_engine(settings.database_url)
    client = _pds(settings)
    try:
        with unit_of_work(engine) as session:
            checked = check_child(
                session,
                client,
                actor=_operator(),
                child_id=_child_id(session, child_ref),
                refresh=refresh,
                today=date.today(),
            )
    except PdsError as exc:
        console.print(f"[red]{exc.message}[/red] Nothing was changed.")
        raise typer.Exit(1) from None
    except DomainError as exc:
        console.print(f"[red]{exc.message}[/red] Nothing was changed.")
        raise typer.Exit(1) from None
    colour = "green" if checked.status in ("verified", "superseded") else "yellow"
    console.print(f"[{colour}]{checked.status}[/{colour}] (record {checked.child_id})")
    if checked.changed:
        console.print("updated: " + ", ".join(checked.changed))
    if checked.differences:
        console.print(
            "held differently by the service: "
            + ", ".join(checked.differences)
            + " (run `childindex pds refresh`)"
        )
    if checked.status not in ("verified", "superseded"):
        raise typer.Exit(1)


@pds_app.command("verify")
def pds_verify(child: Annotated[str, typer.Argument(help="Child record id or NHS number")]) -> None:
    """Verify a child's NHS number (a superseded number is replaced by the current one); audited."""
    _check(child, refresh=False)


@pds_app.command("refresh")
def pds_refresh(child: Annotated[str, typer.Argument(help="Child record id or NHS number")]) -> None:
    """Verify, then bring name, date of birth, sex and address up to date from the service; audited."""
    _check(child, refresh=True)


@pds_app.command("trace")
def pds_trace(
    child: Annotated[str, typer.Argument(help="Record id of a child without an NHS number")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Accept a confident single match without asking")
    ] = False,
) -> None:
    """Trace a record without an NHS number by its own current details, show what the service found,
    and add the NHS number once confirmed (a confident match only with --yes); audited."""
    settings = Settings()
    engine = make_engine(settings.database_url)
    client = _pds(settings)
    try:
        with unit_of_work(engine) as session:
            traced = trace_child(session, client, actor=_operator(), child_id=_child_id(session, child))
    except (PdsError, DomainError) as exc:
        console.print(f"[red]{exc.message}[/red] Nothing was changed.")
        raise typer.Exit(1) from None
    candidate = traced.candidate
    if candidate is None:
        found = "more than one person matches" if traced.result == "too-many" else "no one matches"
        console.print(
            f"[yellow]{traced.result}[/yellow]: {found} (record {traced.child_id}). Nothing was changed."
        )
        raise typer.Exit(1)
    _show_candidate(traced.result, candidate)
    if not _accepted(candidate.confident, yes=yes):
        console.print("Not confirmed. Nothing was changed.")
        raise typer.Exit(1)
    try:
        with unit_of_work(engine) as session:
            changed = confirm_trace(
                session,
                client,
                actor=_operator(),
                child_id=traced.child_id,
                nhs_number=candidate.nhs_number,
                today=date.today(),
            )
    except (PdsError, DomainError) as exc:
        console.print(f"[red]{exc.message}[/red] Nothing was changed.")
        raise typer.Exit(1) from None
    what = ", ".join(changed) or "nothing (the record already held it)"
    console.print(f"[green]added[/green] the NHS number (record {traced.child_id}; changed: {what})")


def _show_candidate(result: str, c: TraceCandidate) -> None:
    colour = "green" if c.confident else "yellow"
    score = f"{c.score:.2f}" if c.score is not None else "no score"
    console.print(f"[{colour}]{result}[/{colour}] (score {score}; confident from {CONFIDENT_SCORE:.2f})")
    table = Table("NHS number", "name", "date of birth", "sex", "postcode", "GP")
    withheld = "(withheld)" if c.location_withheld else ""
    table.add_row(
        c.nhs_number,
        " ".join([*c.given, c.family or ""]).strip(),
        c.birth_date.isoformat() if c.birth_date else "",
        c.sex,
        c.postcode or withheld,
        c.gp_ods_code or withheld,
    )
    console.print(table)
    if c.differences:
        console.print("the record holds differently: " + ", ".join(c.differences))


def _accepted(confident: bool, *, yes: bool) -> bool:
    """--yes accepts a confident match; anything else is for a person to confirm at the prompt."""
    if yes and confident:
        return True
    if yes:
        console.print("[yellow]Not confident enough to accept with --yes: confirm it interactively.[/yellow]")
        return False
    return typer.confirm("Add this NHS number to the record?", default=False)


@notifications_app.command("dead")
def notifications_dead() -> None:
    """List the notifications that gave up after every retry."""
    engine = make_engine(Settings().database_url)
    rows = notify.dead_letters(engine)
    table = Table("id", "event", "subscription", "attempts", "last error", "created")
    for n in rows:
        table.add_row(
            str(n.id),
            n.event,
            str(n.subscription_id),
            str(n.attempts),
            n.last_error or "",
            n.created_at.isoformat(),
        )
    console.print(table)
    console.print(f"{len(rows)} dead-lettered")


@notifications_app.command("retry")
def notifications_retry(
    notification_id: Annotated[int | None, typer.Argument(help="One notification id")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead-lettered notification")] = False,
) -> None:
    """Put dead-lettered notifications back in the queue (the worker delivers them)."""
    engine = make_engine(Settings().database_url)
    if all_ == (notification_id is not None):
        raise typer.BadParameter("give one notification id, or --all")
    if all_:
        console.print(f"{notify.replay_all(engine)} queued again")
        return
    try:
        notify.replay(engine, notification_id)  # type: ignore[arg-type]
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"notification {notification_id} queued again")
