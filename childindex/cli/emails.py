"""`childindex emails`: the emails to people that gave up after every retry, and replaying them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from childindex import mail
from childindex.settings import Settings
from directory.db import make_engine

emails_app = typer.Typer(help="Emails to people about their notices: dead letters.", no_args_is_help=True)
console = Console()


@emails_app.command("dead")
def emails_dead() -> None:
    """List the emails that gave up after every retry (kept until replayed)."""
    rows = mail.dead_letters(make_engine(Settings().database_url))
    # One line each, never wrapped or cut: the last error is what an operator needs whole.
    for row in rows:
        console.print(
            f"{row.id}  notice {row.notice_id}  attempts {row.attempts}  created {row.created_at.isoformat()}"
            f"  last error: {row.last_error or '-'}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    console.print(f"{len(rows)} dead-lettered")


@emails_app.command("retry")
def emails_retry(
    email_id: Annotated[int | None, typer.Argument(help="One email id")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead-lettered email")] = False,
) -> None:
    """Put dead-lettered emails back in the queue (the worker sends them)."""
    if all_ == (email_id is not None):
        raise typer.BadParameter("give one email id, or --all")
    try:
        count = mail.replay(make_engine(Settings().database_url), email_id)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"{count} queued again")
