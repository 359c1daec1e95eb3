"""What `childindex demo` prints: where to go, how to sign in, a few children to try (synthetic data:
the demo county's names are made up) and a few requests to try."""

from __future__ import annotations

import uuid
from pathlib import Path

import sqlalchemy as sa
import typer
from rich.console import Console
from sqlalchemy.engine import Engine

from childindex.settings import Settings
from directory.db import unit_of_work
from directory.models import (
    OPEN_CAF_STATUSES,
    Assessment,
    Child,
    ChildName,
    Involvement,
    Practitioner,
    RecordStatus,
)

console = Console()


SAVED = Path("var/demo-credentials.txt")


def print_demo_accounts(settings: Settings, engine: Engine) -> None:
    """Create the demo sign-in accounts that do not exist yet; keep their secrets in var/ so a re-run can
    show them, and print the authenticator codes of this moment (never kept: they last 30 seconds)."""
    from auth.demo import create_demo_accounts, demo_codes, link_demo_practitioners

    with unit_of_work(engine) as session:
        new = create_demo_accounts(session, issuer=settings.issuer)
        acts_as = link_demo_practitioners(session)
        codes = demo_codes(session)
    kept = [line for line in _saved_lines() if "code right now" not in line]  # (older files kept codes)
    if new:
        kept += new
        SAVED.parent.mkdir(parents=True, exist_ok=True)
        SAVED.write_text("\n".join(kept) + "\n")
        SAVED.chmod(0o600)
    if not kept:
        kept = [
            f"The demo accounts' passwords were not kept ({SAVED} is missing): delete var/ and run again."
        ]
    console.print("\n".join(kept), soft_wrap=True, highlight=False, markup=False)
    console.print(f"(These demo secrets are kept in {SAVED}.)\n", highlight=False)
    console.print(
        "The practice accounts act as these practitioner records (you sign in as them):", highlight=False
    )
    console.print("\n".join(acts_as), soft_wrap=True, highlight=False, markup=False)
    console.print(
        "\nAuthenticator codes right now (each lasts 30 seconds; `uv run childindex demo-codes` prints "
        "fresh ones, or add the TOTP secret to an authenticator app):",
        highlight=False,
    )
    console.print("\n".join(codes), highlight=False, markup=False)


def _saved_lines() -> list[str]:
    return SAVED.read_text().splitlines() if SAVED.exists() else []


def print_demo_codes(engine: Engine) -> None:
    """The demo accounts' authenticator codes at this moment."""
    from auth.demo import demo_codes

    with unit_of_work(engine) as session:
        codes = demo_codes(session)
    console.print("\n".join(codes) or "There are no demo accounts yet: run `make demo`.", highlight=False)


def demo_examples(
    engine: Engine,
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID | None, uuid.UUID | None]:
    """A CAF's Lead Professional and child, another practitioner and a shielded child (ids only)."""
    caf = Assessment.__table__  # type: ignore[attr-defined]
    child = Child.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(caf.c.child_id, caf.c.lead_practitioner_id, caf.c.initiator_id)
            .where(caf.c.status == "in_progress")
            .order_by(caf.c.id)
            .limit(1)
        ).first()
        if row is None:
            raise typer.BadParameter("the database has no CAF in progress to show")
        other = conn.execute(
            sa.select(caf.c.lead_practitioner_id)
            .where(
                caf.c.lead_practitioner_id != row.lead_practitioner_id,
                caf.c.lead_practitioner_id.is_not(None),
            )
            .order_by(caf.c.id)
            .limit(1)
        ).scalar()
        shielded = conn.execute(
            sa.select(child.c.id).where(child.c.shielded.is_(True)).order_by(child.c.id).limit(1)
        ).scalar()
    return row.child_id, row.lead_practitioner_id, other, shielded


def _name_and_birth(conn: sa.Connection, child_id: uuid.UUID) -> str:
    names = ChildName.__table__  # type: ignore[attr-defined]
    child = Child.__table__  # type: ignore[attr-defined]
    name = conn.execute(
        sa.select(names.c.given, names.c.family)
        .where(names.c.child_id == child_id, names.c.until.is_(None))
        .order_by(names.c.use != "official", names.c.id)
        .limit(1)
    ).first()
    born = conn.execute(sa.select(child.c.date_of_birth).where(child.c.id == child_id)).scalar()
    shown = f"{name.given} {name.family}" if name else "(no name)"
    return f"{shown}, born {born:%-d %B %Y}" if born else shown


def children_to_try(engine: Engine) -> list[str]:
    """Three or four children of the demo county to look up, and what each shows."""
    caf = Assessment.__table__  # type: ignore[attr-defined]
    child = Child.__table__  # type: ignore[attr-defined]
    involvement = Involvement.__table__  # type: ignore[attr-defined]
    practitioner = Practitioner.__table__  # type: ignore[attr-defined]
    live = child.c.status == RecordStatus.ACTIVE.value
    lines = []
    with engine.connect() as conn:
        open_caf = conn.execute(
            sa.select(caf.c.child_id, practitioner.c.name, practitioner.c.role)
            .join(child, child.c.id == caf.c.child_id)
            .join(practitioner, practitioner.c.id == caf.c.lead_practitioner_id)
            .where(caf.c.status == "in_progress", live, child.c.shielded.is_(False))
            .order_by(caf.c.id)
            .limit(1)
        ).first()
        if open_caf is not None:
            lines.append(
                f"  {_name_and_birth(conn, open_caf.child_id)}: a CAF in progress, Lead Professional "
                f"{open_caf.name} ({open_caf.role})"
            )
        shielded = conn.execute(
            sa.select(child.c.id).where(child.c.shielded.is_(True), live).order_by(child.c.id).limit(1)
        ).scalar()
        if shielded is not None:
            lines.append(
                f"  {_name_and_birth(conn, shielded)}: shielded. demo.practitioner is told only whom to ask; "
                "demo.designated sees the record with a shielded banner"
            )
        any_open = sa.select(caf.c.id).where(
            caf.c.child_id == child.c.id, caf.c.status.in_([s.value for s in OPEN_CAF_STATUSES])
        )
        involved = conn.execute(
            sa.select(child.c.id)
            .where(live, child.c.shielded.is_(False), ~sa.exists(any_open))
            .where(sa.exists(sa.select(involvement.c.id).where(involvement.c.child_id == child.c.id)))
            .order_by(child.c.id)
            .limit(1)
        ).scalar()
        if involved is not None:
            lines.append(
                f"  {_name_and_birth(conn, involved)}: services involved, no CAF: you could signal one"
            )
        nobody = conn.execute(
            sa.select(child.c.id)
            .where(live, child.c.shielded.is_(False))
            .where(~sa.exists(sa.select(involvement.c.id).where(involvement.c.child_id == child.c.id)))
            .order_by(child.c.id)
            .limit(1)
        ).scalar()
        if nobody is not None:
            lines.append(f"  {_name_and_birth(conn, nobody)}: no service recorded as working with them")
    return lines


def print_demo_help(engine: Engine, host: str, port: int) -> None:
    child_id, lead_id, other_id, shielded_id = demo_examples(engine)
    children = "\n".join(children_to_try(engine))
    base = f"http://{host}:{port}"
    me = other_id or lead_id
    header = f"-H 'X-Dev-Actor: subject=demo-practitioner; role=practitioner; practitioner={me}'"
    purpose = "-H 'X-Purpose-Of-Use: considering-caf'"
    console.print(
        f"""
[bold]childindex demo[/bold] (synthetic data, development mode) on [link]{base}[/link]
[bold]Sign in:[/bold] open {base}/ and choose "Sign in", then give a demo account's username and
password (printed below) and the 6-digit code of this moment (printed below too, or from
`uv run childindex demo-codes`, or from an authenticator app given the account's TOTP secret).

[bold]Children to try[/bold] (made-up children of the demo county; search by name and date of birth):
{children}

API documentation: {base}/docs

The API takes a Bearer token (see the system client below), or in development mode only,
these headers:
  X-Dev-Actor: subject=<you>; role=practitioner; practitioner=<practitioner id>
  X-Purpose-Of-Use: considering-caf

Who is working with this child, is a CAF open, who is the Lead Professional?
  curl -s {base}/api/v1/children/{child_id} \\
    {header} \\
    {purpose}

Try to start a second CAF for the same child (refused, naming who holds the open one):
  curl -s -X POST {base}/api/v1/children/{child_id}/caf -H 'Content-Type: application/json' \\
    {header} \\
    -d '{{"no_risk_of_significant_harm": true}}'
""",
        soft_wrap=True,
        highlight=False,
    )
    if shielded_id is not None:
        console.print(
            f"""A shielded child (details withheld; you are told whom to ask):
  curl -s {base}/api/v1/children/{shielded_id} \\
    {header} \\
    {purpose}
""",
            soft_wrap=True,
            highlight=False,
        )
