"""The `childindex seed` and `childindex import` commands, through Typer's test runner."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from childindex.cli import app
from directory.db import make_engine
from tests.directory.seed_fixtures import scalar
from tests.directory.test_importer import BAD_NHS, GOOD_1, GOOD_2, write_csv

runner = CliRunner()


def test_seed_command_loads_an_empty_database_and_refuses_a_second_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    first = runner.invoke(app, ["seed", "--children", "150", "--seed", "3", "--database-url", url])
    assert first.exit_code == 0, first.output
    assert "Seeded 150 children (seed 3)" in first.output
    engine = make_engine(url)
    assert scalar(engine, "SELECT count(*) FROM child") == 150
    again = runner.invoke(app, ["seed", "--children", "10", "--database-url", url])
    assert again.exit_code == 1 and "already holds data" in again.output
    assert scalar(engine, "SELECT count(*) FROM child") == 150


def test_import_command_reports_lines_not_contents_and_fails_on_rejections(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    path = write_csv(tmp_path, GOOD_1, BAD_NHS, GOOD_2)
    report = tmp_path / "rejected.csv"
    result = runner.invoke(app, ["import", str(path), "--database-url", url, "--report", str(report)])
    assert result.exit_code == 1, result.output
    assert "Imported 2 new children" in result.output
    assert "children.csv line 3: nhs_number" in result.output
    for secret in ("Oliver", "Smith", "9434765918", "2014-01-01", "Amelia", "Ward"):
        assert secret not in result.output
    assert report.read_text().splitlines()[1].startswith("children.csv,3,nhs_number,")

    strict = runner.invoke(
        app, ["import", str(path), "--format", "csv", "--all-or-nothing", "--database-url", url]
    )
    assert strict.exit_code == 1 and "Nothing imported" in strict.output

    clean = write_csv(tmp_path, GOOD_1, GOOD_2, name="clean.csv")
    again = runner.invoke(app, ["import", str(clean), "--database-url", url])
    assert again.exit_code == 0, again.output
    assert "Imported 0 new children" in again.output and "2 already" in again.output
    assert scalar(make_engine(url), "SELECT count(*) FROM child") == 2
