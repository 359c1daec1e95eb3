"""`childindex clients ...`: register a connected system (its OAuth client and access grant in one
step), list, show, rotate its keys or secret, switch it off. Audited as "cli:<login user>".

The work is auth/onboarding.py's (the same as /api/v1/clients); the operator at the shell is not
limited to a grant of their own, but a client's grant still waits for a second operator or
administrator to approve it (`childindex grants approve`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from auth import onboarding as svc
from auth import registry
from auth.onboarding import ClientDisable, ClientOnboard, ClientRead, ClientRotate
from childindex.cli.grants import _authority, _database_url, _operator, _rules
from childindex.cli.grants import _run as _run_reporting_errors
from directory.db import make_engine, unit_of_work

app = typer.Typer(help="Connected systems: OAuth clients and their access grants.", no_args_is_help=True)
console = Console()


def _jwks_text(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        console.print(
            f"Cannot read the JWKS file: {exc.strerror}", style="red", markup=False, highlight=False
        )
        raise typer.Exit(1) from None


def _show(view: ClientRead) -> None:
    table = Table(show_header=False)
    table.add_row("client id", view.client_id)
    table.add_row("name", view.name)
    table.add_row("authenticates with", view.auth_method)
    table.add_row("keys", view.jwks_url or ", ".join(view.key_ids) or "-")
    table.add_row("scopes", " ".join(view.scopes))
    table.add_row("active", "yes" if view.active else "[red]switched off[/red]")
    table.add_row("registered by", view.registered_by or "-")
    for g in view.grants:
        table.add_row(
            "grant",
            f"{g.id} {g.status}, {g.organisation or '-'}, contact {g.responsible or '-'}, "
            f"until {g.valid_until.date()}",
        )
    Console().print(table)


def _act(action: Callable[[], None]) -> None:
    _run_reporting_errors(action)


@app.command()
def register(
    client_id: Annotated[str, typer.Argument(help="The client id the system will use")],
    name: Annotated[str, typer.Option(help="The system's name, e.g. 'Demoshire Trust EPR'")],
    scopes: Annotated[str, typer.Option(help="Space-separated scopes, e.g. 'system/Patient.rs'")],
    contact: Annotated[str, typer.Option(help="The person who answers for it (their username)")],
    ods: Annotated[str, typer.Option(help="Its organisation's ODS code")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log)")],
    jwks_file: Annotated[Path | None, typer.Option(help="Its public keys (a JWK Set file)")] = None,
    jwks_url: Annotated[str | None, typer.Option(help="Or the https URL of its JWK Set")] = None,
    secret: Annotated[bool, typer.Option("--secret", help="Give it a generated secret instead")] = False,
    days: Annotated[int, typer.Option(min=1, help="Its grant lasts N days")] = 365,
) -> None:
    """Register a system and its access grant (pending a second operator's approval)."""
    if secret and (jwks_file or jwks_url):
        console.print("Give keys (--jwks-file or --jwks-url) or --secret, not both.", style="red")
        raise typer.Exit(1)

    def act() -> None:
        data = ClientOnboard(
            client_id=client_id,
            name=name,
            auth_method="client_secret_basic" if secret else "private_key_jwt",
            jwks=_jwks_text(jwks_file),
            jwks_url=jwks_url,
            scopes=scopes.split(),
            organisation=ods,
            responsible=contact,
            valid_days=days,
            reason=reason,
        )
        with unit_of_work(make_engine(_database_url())) as session:
            done = svc.onboard(
                session,
                actor=_operator(),
                admin_grant=None,
                data=data,
                default_authority=_authority(),
                rules=_rules(),
            )
        console.print(f"[green]Registered[/green] {done.client_id}.", highlight=False)
        _show(done)
        if done.secret:
            console.print("Its secret, shown this once (keep it in the system's secret store):")
            console.print(done.secret, markup=False, highlight=False, soft_wrap=True)
        console.print(done.next_step, markup=False, highlight=False, soft_wrap=True)

    _act(act)


@app.command("list")
def list_() -> None:
    """Every registered client, with the status of its grant."""
    with unit_of_work(make_engine(_database_url())) as session:
        table = Table("client id", "name", "method", "active", "grant", "organisation", "contact")
        for c in registry.list_clients(session):
            grants = svc.client_grants(session, c.client_id)
            g = grants[-1] if grants else None
            table.add_row(
                c.client_id,
                c.name,
                c.auth_method,
                "yes" if c.active else "no",
                g.status if g else "-",
                (g.organisation or "-") if g else "-",
                (g.responsible or "-") if g else "-",
            )
        Console().print(table)


@app.command()
def show(client_id: str) -> None:
    """One client: keys, scopes, whether it is on, and its grants."""

    def act() -> None:
        with unit_of_work(make_engine(_database_url())) as session:
            _show(
                ClientRead.of(registry.get_client(session, client_id), svc.client_grants(session, client_id))
            )

    _act(act)


@app.command()
def rotate(
    client_id: str,
    jwks_file: Annotated[Path | None, typer.Option(help="Its new public keys (a JWK Set file)")] = None,
    jwks_url: Annotated[str | None, typer.Option(help="Or the new https URL of its JWK Set")] = None,
    reason: Annotated[str, typer.Option(help="Why")] = "keys rotated",
) -> None:
    """Replace its keys (private_key_jwt) or its secret (a new one is shown once)."""

    def act() -> None:
        data = ClientRotate(jwks=_jwks_text(jwks_file), jwks_url=jwks_url, reason=reason)
        with unit_of_work(make_engine(_database_url())) as session:
            client, secret = svc.rotate(session, actor=_operator(), client_id=client_id, data=data)
            what = "secret" if secret else "keys"
            console.print(f"[green]Rotated[/green] the {what} of {client.client_id}.", highlight=False)
        if secret:
            console.print("Its new secret, shown this once:")
            console.print(secret, markup=False, highlight=False, soft_wrap=True)
        console.print("Tokens already issued keep working until they expire (minutes).")

    _act(act)


@app.command()
def disable(client_id: str, reason: Annotated[str, typer.Option(help="Why")]) -> None:
    """Switch it off at once: no new tokens, and its tokens already issued are refused at next use."""

    def act() -> None:
        with unit_of_work(make_engine(_database_url())) as session:
            client = svc.disable(
                session, actor=_operator(), client_id=client_id, data=ClientDisable(reason=reason)
            )
            console.print(f"{client.client_id} is [bold]switched off[/bold].", highlight=False)

    _act(act)
