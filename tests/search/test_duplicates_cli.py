"""`childindex duplicates report --out FILE`: the pairs by id and grade, audited, no personal data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from childindex.cli import app as cli
from directory.models import AuditEvent, AuditSubject
from search.embedded import EmbeddedBackend
from search.indexer import drain
from tests.fixtures.builders import make_child

runner = CliRunner()


@pytest.fixture
def db_env(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Point the CLI at the test database, with the resident copy off (SQL answers)."""
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CHILDINDEX_SEARCH_RESIDENT", "false")
    return engine


def test_the_report_lists_the_planted_pair_by_id_and_audits_the_run(db_env: Engine, tmp_path: Path) -> None:
    engine = db_env
    address = {"line1": "2 Mill Lane", "town": "Leeds", "postcode": "LS6 2QT"}
    with Session(engine, expire_on_commit=False) as s:
        kept = make_child(
            s, names=[{"given": "Harriet", "family": "Kettleby"}], date_of_birth="2016-09-14", address=address
        )
        copy = make_child(
            s,
            names=[{"given": "Harriett", "family": "Kettleby"}],
            date_of_birth="2016-09-14",
            identifiers=[],
            address=address,
        )
        make_child(
            s,
            names=[{"given": "Oscar", "family": "Kettleby"}],
            date_of_birth="2016-09-14",
            sex="male",
            address=address,
        )
        s.commit()
    drain(engine, EmbeddedBackend(engine), wait=True)

    out = tmp_path / "pairs.csv"
    r = runner.invoke(cli, ["duplicates", "report", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open()))
    assert [(row["first"], row["second"]) for row in rows] == [tuple(sorted((str(kept), str(copy))))]
    text = out.read_text()
    assert "Kettleby" not in text and "Harriet" not in text and "LS6" not in text and "2016" not in text

    with Session(engine) as s:
        [event] = s.exec(select(AuditEvent).where(AuditEvent.action == "duplicates.report")).all()
        detail = json.loads(event.detail or "{}")
        assert detail["listed"] == 1 and detail["children"] == 3
        named = set(s.exec(select(AuditSubject.child_id).where(AuditSubject.seq == event.seq)).all())
    assert named == {kept, copy}

    as_json = tmp_path / "pairs.json"
    assert runner.invoke(cli, ["duplicates", "report", "--out", str(as_json)]).exit_code == 0
    assert json.loads(as_json.read_text())["pairs"][0]["grade"] in ("certain", "probable")
