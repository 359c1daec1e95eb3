"""A death the demographics service reports (`deceasedDateTime`) closes the record on
`childindex pds refresh`: archived with reason died, involvements ended (respx at the boundary)."""

from __future__ import annotations

from datetime import date, timedelta

import respx
from sqlalchemy.engine import Engine

from childindex.cli import app as cli
from tests.interop.test_pds_command import BASE, _audit, _child, _rows, _token, body, env, runner

__all__ = ["env"]  # (the fixture, used by name)


def test_a_reported_death_closes_the_record(env: Engine) -> None:
    child = _child(env, "9000000009")
    died = date.today() - timedelta(days=3)
    patient = {
        **body("pds_patient_9000000009.json"),
        "deceasedDateTime": f"{died.isoformat()}T10:15:00+00:00",
    }
    with respx.mock() as mock:
        _token(mock)
        mock.get(f"{BASE}/Patient/9000000009").respond(200, json=patient)
        verified = runner.invoke(cli, ["pds", "verify", child])
        assert verified.exit_code == 0, verified.output
        assert _rows(env, "SELECT status FROM child") == [("active",)]  # verify changes nothing
        r = runner.invoke(cli, ["pds", "refresh", child])
    assert r.exit_code == 0, r.output
    assert "died" in r.output
    assert _rows(env, "SELECT status, archived_reason FROM child") == [("archived", "died")]
    assert [str(d) for (d,) in _rows(env, "SELECT died_on FROM child_lifecycle")] == [died.isoformat()]
    assert _audit(env, "child.archive") == [{"reason": "died"}]
