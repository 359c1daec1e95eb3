"""What `childindex demo` prints: where to go, how to sign in, and a few requests to try on the demo
county (ids only; synthetic data)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
import typer
from rich.console import Console
from sqlalchemy.engine import Engine

from childindex.settings import Settings
from directory.db import unit_of_work
from directory.models import Assessment, Child

console = Console()


def print_demo_accounts(settings: Settings, engine: Engine) -> None:
    """Create the demo sign-in accounts once; keep their secrets in var/ so a re-run can show them."""
    from pathlib import Path

    from auth.demo import create_demo_accounts

    saved = Path("var/demo-credentials.txt")
    with unit_of_work(engine) as session:
        lines = create_demo_accounts(session, issuer=settings.issuer)
    if not lines[0].startswith("Demo accounts already exist"):
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text("\n".join(lines) + "\n")
        saved.chmod(0o600)
    elif saved.exists():
        lines = saved.read_text().splitlines()
    console.print("\n".join(lines), soft_wrap=True, highlight=False, markup=False)
    console.print(f"(These demo secrets are kept in {saved}.)\n")


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


def print_demo_help(engine: Engine, host: str, port: int) -> None:
    child_id, lead_id, other_id, shielded_id = demo_examples(engine)
    base = f"http://{host}:{port}"
    me = other_id or lead_id
    header = f"-H 'X-Dev-Actor: subject=demo-practitioner; role=practitioner; practitioner={me}'"
    purpose = "-H 'X-Purpose-Of-Use: considering-caf'"
    console.print(
        f"""
[bold]childindex demo[/bold] (synthetic data, development mode) on [link]{base}[/link]
Web pages: open {base}/ and choose Sign in, with a demo account printed below
(username, password, then a code from an authenticator app or the 'code right now' shown).
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
