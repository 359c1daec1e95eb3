"""`childindex users ...`: create, disable, enable and unlock local sign-in accounts (password + TOTP)."""

from __future__ import annotations

import os
import uuid
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.console import Console
from sqlmodel import col, select

from auth import lockout
from auth.grant_rules import check_subject
from auth.models import LocalUser, RefreshToken, SubjectKind
from auth.users import MIN_PASSWORD, create_user, provisioning_uri
from childindex.cli.grants import _database_url, _operator
from childindex.migrations import upgrade
from directory import audit
from directory.db import make_engine, unit_of_work
from directory.models import utcnow

app = typer.Typer(
    help="Local sign-in accounts (password + TOTP); access itself comes from a grant.", no_args_is_help=True
)
console = Console()


def _password() -> str:
    given = os.environ.get("CHILDINDEX_NEW_USER_PASSWORD")
    if given is not None:
        return given
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@app.command()
def create(
    username: str,
    name: Annotated[str, typer.Option(help="Display name")],
    organisation: Annotated[str | None, typer.Option(help="Organisation")] = None,
    practitioner_id: Annotated[uuid.UUID | None, typer.Option(help="Their practitioner record")] = None,
) -> None:
    """Create an account; prints the TOTP enrolment link once. Give it a grant with `grants grant`."""
    try:
        username = check_subject(username)
    except ValueError as exc:
        console.print(f"Nothing created: the username may {exc}.", style="red", markup=False, highlight=False)
        raise typer.Exit(1) from None
    password = _password()
    if len(password) < MIN_PASSWORD:
        console.print(f"[red]Nothing created:[/red] the password needs at least {MIN_PASSWORD} characters.")
        raise typer.Exit(1)
    engine = make_engine(_database_url())
    upgrade(engine)
    with unit_of_work(engine) as session:
        if session.exec(select(LocalUser).where(LocalUser.username == username)).first() is not None:
            console.print(f"[red]Nothing created:[/red] an account named {username} already exists.")
            raise typer.Exit(1)
        user = create_user(
            session,
            username=username,
            password=password,
            display_name=name,
            organisation=organisation,
            practitioner_id=practitioner_id,
        )
        audit.append(session, actor=_operator(), action="user.create", target_type="user", target_id=username)
        uri = provisioning_uri(user)
    console.print(f"Account {username} created. Enrol their authenticator app with (shown once):")
    console.print(uri, soft_wrap=True, highlight=False, markup=False)
    console.print("They can search only once they hold a current grant: childindex grants grant ...")


def _set_active(username: str, active: bool) -> None:
    engine = make_engine(_database_url())
    with unit_of_work(engine) as session:
        user = session.exec(select(LocalUser).where(LocalUser.username == username)).first()
        if user is None:
            console.print(f"[red]No account named {username}.[/red]")
            raise typer.Exit(1)
        user.active = active
        session.add(user)
        ended = 0
        if not active:  # every sign-in ends now, and stays ended if the account is enabled again
            result = session.execute(
                sa.update(RefreshToken)
                .where(
                    col(RefreshToken.subject) == username,
                    col(RefreshToken.subject_kind) == SubjectKind.USER.value,
                    col(RefreshToken.revoked_at).is_(None),
                )
                .values(revoked_at=utcnow())
            )
            ended = int(result.rowcount)  # type: ignore[attr-defined]
        audit.append(
            session,
            actor=_operator(),
            action="user.enable" if active else "user.disable",
            target_type="user",
            target_id=username,
            detail={"refresh_tokens_ended": ended} if not active else None,
        )
    console.print(f"Account {username} {'enabled' if active else 'disabled'}.")
    if not active:
        console.print("Its sign-ins have ended; its tokens are refused from their next request.")


@app.command()
def disable(username: str) -> None:
    """Stop an account from signing in (its grant stays, for the record)."""
    _set_active(username, False)


@app.command()
def enable(username: str) -> None:
    """Let a disabled account sign in again."""
    _set_active(username, True)


@app.command()
def unlock(
    username: str,
    source: Annotated[str | None, typer.Option(help="Only this address (as in the alert)")] = None,
) -> None:
    """Lift a sign-in lock-out now: from every address (and let new addresses try), or from one."""
    engine = make_engine(_database_url())
    with unit_of_work(engine) as session:
        if session.exec(select(LocalUser).where(LocalUser.username == username)).first() is None:
            console.print(f"[red]No account named {username}.[/red]")
            raise typer.Exit(1)
        changed = lockout.unlock(session, username=username, source=source)
        audit.append(
            session,
            actor=_operator(),
            action="user.unlock",
            target_type="user",
            target_id=username,
            detail={"source": source, "addresses": changed},
        )
    console.print(f"Account {username}: sign-in failures cleared for {changed} address(es).")
