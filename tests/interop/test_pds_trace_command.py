"""`childindex pds trace CHILD [--yes]` against recorded answers of the demographics service (respx at
the HTTP boundary; tests/fixtures/pds_trace/), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import respx
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from childindex.cli import app as cli
from directory import repository as drepo
from directory.db import unit_of_work
from directory.models import AuditEvent, Child
from tests.fixtures.builders import make_child

DATA = Path(__file__).parents[1] / "fixtures" / "pds_trace"
BASE = "https://pds.example.nhs.uk/personal-demographics/FHIR/R4"
TOKEN = "https://auth.example.nhs.uk/oauth2/token"
runner = CliRunner()


@pytest.fixture
def env(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Point the CLI at the test database and a demographics service."""
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CHILDINDEX_PDS_BASE_URL", BASE)
    monkeypatch.setenv("CHILDINDEX_PDS_TOKEN_URL", TOKEN)
    monkeypatch.setenv("CHILDINDEX_PDS_CLIENT_ID", "childindex")
    monkeypatch.setenv("CHILDINDEX_PDS_CLIENT_SECRET", "s3cret")
    monkeypatch.setenv("CHILDINDEX_PDS_RETRIES", "0")
    return engine


def _untraced(engine: Engine) -> str:
    with unit_of_work(engine) as s:
        return str(
            make_child(
                s,
                names=[{"given": "Jane", "family": "Smith"}],
                date_of_birth="2018-10-22",
                identifiers=[],
                address={"line1": "1 Trevelyan Square", "town": "Leeds", "postcode": "LS1 6AE"},
            )
        )


def _held(engine: Engine, child: str) -> tuple[int, list[str]]:
    with Session(engine) as s:
        record = s.get(Child, uuid.UUID(child))
        assert record is not None
        return record.version, [i.value for i in drepo.child_identifiers(s, record.id) if i.system == "nhs"]


def _run(answer: str | None, args: list[str], *, typed: str | None = None) -> Any:
    with respx.mock() as mock:
        mock.post(TOKEN).respond(200, json={"access_token": "t", "expires_in": 599, "token_type": "Bearer"})
        search = mock.get(f"{BASE}/Patient")
        if answer is None:
            search.respond(503)
        else:
            search.respond(200, json=json.loads((DATA / answer).read_text()))
        return runner.invoke(cli, ["pds", "trace", *args], input=typed)


def test_yes_accepts_a_confident_match(env: Engine) -> None:
    child = _untraced(env)
    version = _held(env, child)[0]
    r = _run("one_match.json", [child, "--yes"])
    assert r.exit_code == 0, r.output
    assert "match" in said_(r) and "9000000009" in said_(r) and "added" in said_(r)
    assert _held(env, child) == (version + 1, ["9000000009"])
    with Session(env) as s:
        change = s.exec(select(AuditEvent).where(AuditEvent.action == "child.details.change")).all()[-1]
    assert json.loads(change.detail or "{}") == {"changed": "nhs number", "source": "pds"}


def test_yes_does_not_accept_a_low_score(env: Engine) -> None:
    child = _untraced(env)
    before = _held(env, child)
    r = _run("low_score.json", [child, "--yes"])
    assert r.exit_code == 1 and "not-confident" in said_(r) and "Not confident enough" in said_(r)
    assert "family name, postcode" in said_(r)
    assert _held(env, child) == before


def test_a_person_confirms_a_low_score_at_the_prompt(env: Engine) -> None:
    child = _untraced(env)
    r = _run("low_score.json", [child], typed="y\n")
    assert r.exit_code == 0, r.output
    assert _held(env, child)[1] == ["9000000009"]


def test_declining_at_the_prompt_changes_nothing(env: Engine) -> None:
    child = _untraced(env)
    before = _held(env, child)
    r = _run("one_match.json", [child], typed="n\n")
    assert r.exit_code == 1 and "Nothing was changed" in said_(r)
    assert _held(env, child) == before


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ("none.json", "no one matches"),
        ("too_many.json", "more than one person matches"),
        (None, "unavailable"),
    ],
)
def test_none_too_many_and_the_service_down_change_nothing(
    env: Engine, answer: str | None, said: str
) -> None:
    child = _untraced(env)
    before = _held(env, child)
    r = _run(answer, [child, "--yes"])
    assert r.exit_code == 1 and said in said_(r) and "Nothing was changed" in said_(r)
    assert _held(env, child) == before


def said_(r: Any) -> str:
    """The command's output with Rich's line wrapping undone (the width differs between runners)."""
    return " ".join(str(r.output).split())
