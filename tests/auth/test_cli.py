"""`childindex grants ...` and the demo accounts, on the test database."""

from __future__ import annotations

import re

import pyotp
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from auth.demo import create_demo_accounts, demo_codes, link_demo_practitioners
from auth.models import LocalUser
from childindex.cli import app as cli
from directory.db import unit_of_work
from directory.models import Practitioner
from tests.fixtures.auth_builders import make_grant
from tests.fixtures.builders import make_org, make_practitioner

runner = CliRunner()


@pytest.fixture
def db_env(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Point the CLI at the test database."""
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    return engine


def test_grant_renew_suspend_revoke_and_expiring(db_env: Engine) -> None:
    r = runner.invoke(
        cli,
        [
            "grants",
            "grant",
            "pat",
            "--role",
            "practitioner",
            "--reason",
            "new starter",
            "--training",
            "2026-01-05",
            "--vetting",
            "2025-12-01",
            "--days",
            "20",
        ],
    )
    assert r.exit_code == 0, r.output
    grant_id = re.search(r"[0-9a-f-]{36}", r.output)
    assert grant_id
    r = runner.invoke(cli, ["grants", "expiring", "--days", "30"])
    assert r.exit_code == 0 and "pat" in r.output
    r = runner.invoke(cli, ["grants", "renew", grant_id.group(0), "--reason", "annual", "--days", "90"])
    assert r.exit_code == 0, r.output
    assert "pat" not in runner.invoke(cli, ["grants", "expiring", "--days", "30"]).output
    r = runner.invoke(cli, ["grants", "suspend", grant_id.group(0), "--reason", "on leave"])
    assert r.exit_code == 0 and "suspended" in r.output
    r = runner.invoke(cli, ["grants", "revoke", grant_id.group(0), "--reason", "left"])
    assert r.exit_code == 0 and "revoked" in r.output
    r = runner.invoke(cli, ["grants", "renew", grant_id.group(0), "--reason", "oops"])
    assert r.exit_code == 1 and "revoked" in r.output
    with db_env.connect() as conn:
        acts = [
            a
            for (a,) in conn.execute(
                sa.text("SELECT action FROM audit_event WHERE actor_subject LIKE 'cli:%' ORDER BY seq")
            )
        ]
    assert acts == ["grant.create", "grant.renew", "grant.suspend", "grant.revoke"]


def test_list_filters(db_env: Engine) -> None:
    with unit_of_work(db_env) as s:
        make_grant(s, "someone")
    r = runner.invoke(cli, ["grants", "list", "--subject", "someone"])
    assert r.exit_code == 0 and "someone" in r.output


def test_demo_accounts_sign_in(engine: Engine, api: TestClient) -> None:
    with unit_of_work(engine) as s:
        lines = create_demo_accounts(s, issuer="http://testserver")
    text = "\n".join(lines)
    password = re.search(r"password for every demo user: (\S+)", text)
    totp = re.search(r"demo.practitioner\s+a practitioner[^\n]*\n\s+TOTP secret (\w+)", text)
    secret = re.search(r"client_secret (\S+)", text)
    assert password and totp and secret
    r = api.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("demo-trust-system", secret.group(1)),
    )
    assert r.status_code == 200, r.text
    assert pyotp.TOTP(totp.group(1)).now().isdigit()
    assert "code right now" not in text  # a one-time code is never kept: it would not work tomorrow
    assert "/oauth/authorize" not in text  # (it answers "Unknown client_id" when opened by hand)
    for username in ("demo.practitioner", "demo.designated", "demo.admin", "demo.locality", "demo.auditor"):
        assert username in text
    with unit_of_work(engine) as s:
        assert create_demo_accounts(s) == []  # nothing new to make, nothing to print twice
        codes = "\n".join(demo_codes(s))
    assert re.search(r"demo.practitioner\s+\d{6}", codes) and re.search(r"demo.auditor\s+\d{6}", codes)


def test_demo_practice_accounts_act_as_seeded_practitioners(engine: Engine, api: TestClient) -> None:
    with unit_of_work(engine) as s:
        school = make_org(s, name="Cowley School", kind="school")
        senco = make_practitioner(s, school, name="Sally Senco", role="SENCO", email="s@school.example")
        hv = make_practitioner(
            s,
            school,
            name="Harriet Visitor",
            role="health visitor",
            email="h@nhs.example",
            phone="07700 900111",
        )
        senco_id, hv_id = senco.id, hv.id
        create_demo_accounts(s, issuer="http://testserver")
        text = "\n".join(link_demo_practitioners(s))
    assert "demo.practitioner acts as Sally Senco, SENCO" in text
    assert "demo.designated acts as Harriet Visitor, health visitor (07700 900111, h@nhs.example)" in text
    with Session(engine) as s:
        users = {u.username: u for u in s.exec(select(LocalUser)).all()}
        assert users["demo.practitioner"].practitioner_id == senco_id
        assert users["demo.designated"].practitioner_id == hv_id
        assert users["demo.admin"].practitioner_id is None
        # signed in, you are called by the name your actions are recorded under
        assert users["demo.practitioner"].display_name == "Sally Senco"
        assert users["demo.admin"].display_name == "Ada Admin (demo)"
        assert s.get(Practitioner, senco_id).subject == "demo.practitioner"  # type: ignore[union-attr]
    with unit_of_work(engine) as s:  # a second run keeps the links and says so
        again = "\n".join(link_demo_practitioners(s))
    assert "demo.practitioner acts as Sally Senco" in again


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pa\u202etap"], "letters"),
        (["pat\x07"], "letters"),
        (["pat", "--training", "2099-01-01"], "future"),
        (["pat", "--vetting", "2001-01-01"], "older than"),
        (["pat", "--days", "4000"], "1095 days"),
        (["pat", "--days", "999999999"], "1095 days"),
    ],
)
def test_the_cli_validates_subjects_and_dates(db_env: Engine, args: list[str], message: str) -> None:
    """The operator's CLI is not held to an admin's own rank, but it is to safe subjects and dates."""
    r = runner.invoke(cli, ["grants", "grant", *args, "--role", "practitioner", "--reason", "r"])
    assert r.exit_code == 1, (r.output, r.exception)
    assert message in r.output
    with db_env.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM access_grant")).scalar_one() == 0


def test_the_cli_makes_client_grants_pending_for_a_second_operator(
    db_env: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with unit_of_work(db_env) as s:
        make_grant(s, "pat")
    monkeypatch.setattr("getpass.getuser", lambda: "olga")
    r = runner.invoke(
        cli,
        ["grants", "grant", "trust-epr", "--kind", "client", "--role", "system", "--responsible", "pat"]
        + ["--reason", "EPR"],
    )
    assert r.exit_code == 0, r.output
    assert "pending" in r.output and "grants approve" in r.output
    grant_id = re.search(r"[0-9a-f-]{36}", r.output)
    assert grant_id
    mine = runner.invoke(cli, ["grants", "approve", grant_id.group(0), "--reason", "ok"])
    assert mine.exit_code == 1 and "second administrator" in mine.output
    monkeypatch.setattr("getpass.getuser", lambda: "oscar")
    r = runner.invoke(cli, ["grants", "approve", grant_id.group(0), "--reason", "DPIA seen"])
    assert r.exit_code == 0, r.output
    with db_env.connect() as conn:
        status, approver = conn.execute(
            sa.text("SELECT status, approved_by FROM access_grant WHERE subject = 'trust-epr'")
        ).one()
    assert (status, approver) == ("active", "cli:oscar")
