"""`childindex pds verify|refresh` against the demographics service (respx at the HTTP boundary,
the recorded responses in data/), through the domain and audited; `childindex notifications`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from childindex.cli import app as cli
from directory.db import unit_of_work
from interop import notify
from tests.fixtures.builders import make_child

DATA = Path(__file__).parent / "data"
BASE = "https://pds.example.nhs.uk/personal-demographics/FHIR/R4"
TOKEN = "https://auth.example.nhs.uk/oauth2/token"
runner = CliRunner()


def body(name: str) -> dict[str, Any]:
    """A stored response body."""
    return json.loads((DATA / name).read_text())


@pytest.fixture
def env(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Point the CLI at the test database and a demographics service."""
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CHILDINDEX_PDS_BASE_URL", BASE)
    monkeypatch.setenv("CHILDINDEX_PDS_TOKEN_URL", TOKEN)
    monkeypatch.setenv("CHILDINDEX_PDS_CLIENT_ID", "childindex")
    monkeypatch.setenv("CHILDINDEX_PDS_CLIENT_SECRET", "s3cret")
    monkeypatch.setenv("CHILDINDEX_PDS_RETRIES", "2")
    return engine


def _child(engine: Engine, nhs: str) -> str:
    with unit_of_work(engine) as s:
        return str(make_child(s, identifiers=[{"system": "nhs", "value": nhs}]))


def _token(mock: respx.MockRouter) -> None:
    mock.post(TOKEN).respond(200, json={"access_token": "tok-1", "expires_in": 599, "token_type": "Bearer"})


def _rows(engine: Engine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), params)]


def _audit(engine: Engine, action: str) -> list[dict[str, Any]]:
    rows = _rows(engine, "SELECT detail FROM audit_event WHERE action = :a ORDER BY seq", a=action)
    return [json.loads(r[0]) if r[0] else {} for r in rows]


def test_verify_reports_differences_without_changing_anything(env: Engine) -> None:
    child = _child(env, "9000000009")
    with respx.mock() as mock:
        _token(mock)
        mock.get(f"{BASE}/Patient/9000000009").respond(200, json=body("pds_patient_9000000009.json"))
        r = runner.invoke(cli, ["pds", "verify", child])
    assert r.exit_code == 0, r.output
    assert "verified" in r.output and "given name" in r.output and "Jane" not in r.output
    assert _audit(env, "child.nhs-number.verify") == [{"result": "verified"}]
    assert _audit(env, "child.demographics.refresh") == []
    assert _rows(env, "SELECT given FROM child_name WHERE use = 'official'") == [("Olivia",)]


def test_refresh_brings_the_record_up_to_date_through_the_domain(env: Engine) -> None:
    _child(env, "9000000009")
    with respx.mock() as mock:
        _token(mock)
        mock.get(f"{BASE}/Patient/9000000009").respond(200, json=body("pds_patient_9000000009.json"))
        r = runner.invoke(cli, ["pds", "refresh", "900 000 0009"])  # by NHS number too
    assert r.exit_code == 0, r.output
    assert "updated: name, date of birth, address" in r.output
    names = _rows(env, "SELECT use, given, family FROM child_name ORDER BY use")
    assert names == [("official", "Jane", "Smith"), ("previous", "Olivia", "Smith")]
    assert _rows(env, "SELECT postcode FROM child_address WHERE until IS NULL") == [("LS1 6AE",)]
    assert _rows(env, "SELECT count(*) FROM child_address") == [(2,)]  # the old address kept as history
    assert _audit(env, "child.demographics.refresh") == [
        {"source": "pds", "changed": "name, date of birth, address"}
    ]
    assert _rows(env, "SELECT count(*) FROM audit_event WHERE action = 'child.address.change'") == [(1,)]
    assert "Jane" not in r.output and "LS1" not in r.output  # the command prints field names, not values


def test_a_superseded_number_is_replaced_by_the_current_one(env: Engine) -> None:
    child = _child(env, "9000000017")
    with respx.mock() as mock:
        _token(mock)
        mock.get(f"{BASE}/Patient/9000000017").respond(200, json=body("pds_patient_9000000009.json"))
        r = runner.invoke(cli, ["pds", "verify", child])
    assert r.exit_code == 0, r.output
    assert "superseded" in r.output and "updated: nhs number" in r.output
    assert _rows(env, "SELECT value FROM child_identifier WHERE system = 'nhs'") == [("9000000009",)]
    assert _audit(env, "child.demographics.refresh") == [{"source": "pds", "changed": "nhs number"}]


def test_not_found_changes_nothing_and_fails(env: Engine) -> None:
    child = _child(env, "9000000033")
    with respx.mock() as mock:
        _token(mock)
        mock.get(f"{BASE}/Patient/9000000033").respond(404, json=body("pds_not_found.json"))
        r = runner.invoke(cli, ["pds", "refresh", child])
    assert r.exit_code == 1 and "not-found" in r.output
    assert _audit(env, "child.nhs-number.verify") == [{"result": "not-found"}]
    assert _audit(env, "child.demographics.refresh") == []


def test_timeouts_and_throttling_are_retried_then_given_up(env: Engine) -> None:
    child = _child(env, "9000000009")
    with respx.mock() as mock:
        _token(mock)
        route = mock.get(f"{BASE}/Patient/9000000009").mock(
            side_effect=[
                httpx.ReadTimeout("slow"),
                httpx.Response(429, json=body("pds_throttled.json"), headers={"Retry-After": "0"}),
                httpx.Response(200, json=body("pds_patient_9000000009.json")),
            ]
        )
        r = runner.invoke(cli, ["pds", "verify", child])
    assert r.exit_code == 0 and route.call_count == 3, r.output
    with respx.mock() as mock:
        _token(mock)
        route = mock.get(f"{BASE}/Patient/9000000009").mock(side_effect=httpx.ReadTimeout("slow"))
        r = runner.invoke(cli, ["pds", "refresh", child])
    assert r.exit_code == 1 and route.call_count == 3
    assert "timed out" in r.output and "Nothing was changed" in r.output
    assert len(_audit(env, "child.nhs-number.verify")) == 1  # the failed run left nothing, not even its audit


def test_without_a_configured_service_the_command_says_so(
    env: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHILDINDEX_PDS_BASE_URL")
    r = runner.invoke(cli, ["pds", "verify", _child(env, "9000000009")])
    assert r.exit_code == 2 and "CHILDINDEX_PDS_BASE_URL" in r.output


def test_dead_letters_are_listed_and_retried(env: Engine) -> None:
    with unit_of_work(env) as s:
        sub = notify.subscribe(
            s, owner="trust", endpoint="https://trust.example.nhs.uk/hook", events=["caf-signalled"]
        )
        sub_id = sub.id
    with env.begin() as conn:
        for seq in (1, 2):
            conn.execute(
                sa.text(
                    "INSERT INTO notification (subscription_id, audit_seq, event, payload, status, "
                    "attempts, next_attempt_at, last_error, created_at) "
                    "VALUES (:s, :q, 'caf-signalled', '{}', 'dead', 6, "
                    ":t, 'HTTP 500', :t)"
                ),
                {
                    "s": sub_id.hex if env.dialect.name == "sqlite" else sub_id,
                    "q": seq,
                    "t": "2026-01-01 00:00:00",
                },
            )
    r = runner.invoke(cli, ["notifications", "dead"])
    assert r.exit_code == 0 and "2 dead-lettered" in r.output and "HTTP 500" in r.output, r.output
    ids = [row[0] for row in _rows(env, "SELECT id FROM notification ORDER BY id")]
    assert runner.invoke(cli, ["notifications", "retry", str(ids[0])]).exit_code == 0
    assert runner.invoke(cli, ["notifications", "retry", str(ids[0])]).exit_code == 1  # no longer dead
    r = runner.invoke(cli, ["notifications", "retry", "--all"])
    assert r.exit_code == 0 and "1 queued again" in r.output
    assert _rows(env, "SELECT DISTINCT status FROM notification") == [("pending",)]
