"""Commands for what is kept outside the database: `keys generate`, `secrets rotate`, and the audit
log's `audit verify`, `audit checkpoint` and `audit rotate-key`."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlmodel import Session

from childindex import keys
from childindex.settings import Settings
from directory import audit, audit_checkpoint, keyfile
from directory.audit_checkpoint import CheckpointError
from directory.db import make_engine, unit_of_work
from directory.keyfile import KeyFileError
from directory.models import Actor, Purpose, Role

keys_app = typer.Typer(help="Key files, kept outside the database.", no_args_is_help=True)
secrets_app = typer.Typer(help="Secrets encrypted at rest in the database.", no_args_is_help=True)
audit_app = typer.Typer(help="The keyed, hash-chained audit log.", no_args_is_help=True)
console = Console()


def _operator() -> Actor:
    return Actor(
        subject=f"cli:{getpass.getuser()}",
        role=Role.DIRECTORY_ADMIN,
        client_id="childindex-cli",
        purpose=Purpose.ADMINISTRATION,
    )


def _fail(message: str) -> typer.Exit:
    console.print(message, style="red", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


@keys_app.command("generate")
def keys_generate(
    purpose: Annotated[str, typer.Argument(help="audit (the audit chain) or secrets (secrets at rest)")],
    path: Annotated[Path, typer.Argument(help="The key file to make, e.g. /etc/childindex/audit.key")],
) -> None:
    """Make a new key file, readable by you only; never overwrites one."""
    if purpose not in keyfile.PURPOSES:
        raise typer.BadParameter("audit or secrets", param_hint="PURPOSE")
    try:
        ring = keyfile.generate(path, "audit" if purpose == "audit" else "secrets")
    except (KeyFileError, OSError) as exc:
        raise _fail(f"No key file made: {exc}.") from None
    console.print(
        f"Made the {purpose} key file {ring.path} (key {ring.current_id}). Set "
        f"CHILDINDEX_{purpose.upper()}_KEY_FILE={path.resolve()} for the service, keep the file "
        "readable by its user only, and back it up apart from the database and its backups.",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@secrets_app.command("rotate")
def secrets_rotate(
    drop_old: Annotated[
        bool, typer.Option("--drop-old", help="Then remove older keys no secret needs from the key file")
    ] = False,
) -> None:
    """Add a new secrets key and encrypt every secret again under it (plain ones too)."""
    engine = make_engine(Settings().database_url)
    done = keys.rotate_secrets(engine, actor=_operator(), drop_old=drop_old)
    console.print(f"Secrets sealed again under the new key {done.key_id}: {done.resealed} value(s).")
    if done.dropped:
        console.print(f"Removed the older key(s) {', '.join(done.dropped)} from the key file.")
    for key_id, count in done.kept.items():
        console.print(f"Kept the older key {key_id}: {count} secret(s) written meanwhile still use it.")
    if not drop_old:
        console.print(
            "The older keys stay in the key file; once every server has been restarted, run "
            "`childindex secrets rotate --drop-old` to remove them.",
            markup=False,
            soft_wrap=True,
        )


@audit_app.command("verify")
def audit_verify(
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint file, or a folder of them (the newest is used); "
            "by default CHILDINDEX_AUDIT_CHECKPOINT_DIR",
        ),
    ] = None,
) -> None:
    """Check the audit chain with the audit key (and against the latest checkpoint); exit 1 when any
    event was edited, removed, inserted or rewritten without the key."""
    settings = Settings()
    chain_keys = audit.chain_keys()
    where = checkpoint or (Path(settings.audit_checkpoint_dir) if settings.audit_checkpoint_dir else None)
    anchor = None
    if where is not None:
        found = audit_checkpoint.latest_file(where)
        if found is None:
            raise _fail(f"No audit checkpoint in {where}.")
        try:
            anchor = audit_checkpoint.read(found, chain_keys)
        except CheckpointError as exc:
            raise _fail(f"Audit checkpoint not trusted: {exc}.") from None
    with unit_of_work(make_engine(settings.database_url)) as session:
        result = audit.verify(session, keys=chain_keys, checkpoint=anchor)
    if not result.ok:
        console.print(f"[red]Audit chain broken[/red] after checking {result.checked} events:")
        for problem in result.problems:
            console.print(f"  - {problem}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"[green]Audit chain intact:[/green] {result.checked} events verified.")
    if result.key_ids:
        console.print(f"Signed with the audit key(s) {', '.join(result.key_ids)} (HMAC-SHA256).")
    if result.unkeyed:
        console.print(
            f"The first {result.unkeyed} event(s) were written before the chain was keyed (SHA-256 only)."
        )
    if anchor is not None:
        console.print(f"It holds event {anchor.seq} as the checkpoint taken at {anchor.taken_at} saw it.")
    else:
        console.print(
            "No checkpoint checked: without one, removing the newest events would not show "
            "(see `childindex audit checkpoint`).",
            markup=False,
            soft_wrap=True,
        )


@audit_app.command("checkpoint")
def audit_checkpoint_command(
    to: Annotated[
        Path | None,
        typer.Option("--to", help="A folder (or a *.json file); by default CHILDINDEX_AUDIT_CHECKPOINT_DIR"),
    ] = None,
) -> None:
    """Write a signed checkpoint of the audit chain's end, to keep where the database's users cannot
    write; `audit verify` then notices events removed up to it."""
    settings = Settings()
    where = to or (Path(settings.audit_checkpoint_dir) if settings.audit_checkpoint_dir else None)
    if where is None:
        raise typer.BadParameter("give --to or set CHILDINDEX_AUDIT_CHECKPOINT_DIR", param_hint="--to")
    chain_keys = audit.chain_keys()
    engine = make_engine(settings.database_url)
    try:
        found = audit_checkpoint.latest_file(where) if where.is_dir() else None
        previous = audit_checkpoint.read(found, chain_keys) if found is not None else None
        with unit_of_work(engine) as session:
            audit.append(session, actor=_operator(), action="audit.checkpoint")
        with Session(engine) as session:
            cp = audit_checkpoint.take(session, chain_keys, previous=previous)
        path = audit_checkpoint.write(cp, chain_keys, where)
    except (CheckpointError, OSError) as exc:
        raise _fail(f"No checkpoint written: {exc}.") from None
    console.print(
        f"Checkpoint of event {cp.seq} written to {path}.", markup=False, highlight=False, soft_wrap=True
    )


@audit_app.command("rotate-key")
def audit_rotate_key() -> None:
    """Add a new audit key, which signs new events from now on; older keys stay to check old ones."""
    before = audit.chain_keys()
    try:
        ring = keyfile.add_key(before.ring)
    except (KeyFileError, OSError) as exc:
        raise _fail(f"No key added: {exc}.") from None
    audit.use_keys(ring)
    with unit_of_work(make_engine(Settings().database_url)) as session:
        audit.append(
            session,
            actor=_operator(),
            action="audit.key.rotate",
            detail={"key_id": ring.current_id, "previous": before.current_id},
        )
    console.print(
        f"The audit key {ring.current_id} signs new events from now on (after restarting the service); "
        f"keep the older keys in {ring.path}: old events are checked with them. Take a checkpoint now.",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
