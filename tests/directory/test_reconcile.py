"""Feeds that reconcile instead of adding: each outcome, precedence, shields, idempotent re-runs."""

from __future__ import annotations

import csv
import uuid
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from childindex.feed_command import write_report
from childindex.feeds import reconcile_files
from directory import service
from directory.importer.precedence import Precedence, load_precedence
from directory.importer.reconcile import ReconcileResult
from directory.models import Actor, Role, ShieldSet
from search.embedded import EmbeddedBackend
from search.indexer import drain
from tests.conftest import count
from tests.directory.test_importer import HEADER, nhs

TODAY = date(2026, 11, 23)
ADMIN = Actor(subject="cli:test", role=Role.DIRECTORY_ADMIN, client_id="childindex-cli")
SHIELDER = Actor(subject="dp", role=Role.DESIGNATED_PRACTITIONER)

# nhs_number,upn,local_id,given,middle,family,known_as,previous_family,date_of_birth,
# expected_delivery_date,sex,address_line1,town,postcode,parent_name,parent_relationship,
# parent_phone,parent_email,parental_responsibility


def row(
    n: int = 1,
    *,
    nhs_no: str | None = None,
    local: str = "",
    given: str = "Amelia",
    family: str = "Ward",
    born: str = "2015-03-02",
    sex: str = "F",
    line1: str = "12 Mill Lane",
    postcode: str = "OX4 1AB",
) -> str:
    """One CSV row in the import layout."""
    ident = nhs(n) if nhs_no is None else nhs_no
    return f"{ident},,{local},{given},,{family},,,{born},,{sex},{line1},Oxford,{postcode},,,,,"


def feed(tmp_path: Path, *rows: str, name: str = "feed.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def run(
    engine: Engine, path: Path, source: str, precedence: Precedence | None = None, *, batch: int = 2
) -> ReconcileResult:
    backend = EmbeddedBackend(engine)
    backend.ensure_ready()
    return reconcile_files(
        engine,
        [path],
        fmt="csv",
        source=source,
        backend=backend,
        precedence=precedence or Precedence(),
        actor=ADMIN,
        today=TODAY,
        batch=batch,
    )


def scalar(engine: Engine, sql: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def versions(engine: Engine) -> int:
    return int(scalar(engine, "SELECT coalesce(sum(version), 0) FROM child"))  # type: ignore[arg-type]


def outcomes(result: ReconcileResult) -> list[tuple[int, str, str]]:
    return [(o.line, o.outcome.value, o.reason) for o in result.lines]


def test_a_new_feed_creates_and_a_rerun_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    path = feed(
        tmp_path,
        row(1),
        row(
            2, given="Oscar", family="Ng", born="2012-07-09", sex="M", line1="4 Elm Road", postcode="OX1 2JD"
        ),
    )
    first = run(engine, path, "pds")
    assert (first.created, first.updated, first.unchanged, first.held) == (2, 0, 0, 0)
    assert outcomes(first) == [(2, "created", "no-match"), (3, "created", "no-match")]
    before = (versions(engine), count(engine, "audit_event"), count(engine, "child_name"))
    again = run(engine, path, "pds")
    assert (again.created, again.updated, again.unchanged, again.held) == (0, 0, 2, 0)
    assert outcomes(again) == [(2, "unchanged", "identifier"), (3, "unchanged", "identifier")]
    # no new versions, names or records; one audit event: the run's own
    assert (versions(engine), count(engine, "audit_event"), count(engine, "child_name")) == (
        before[0],
        before[1] + 1,
        before[2],
    )
    assert count(engine, "child") == 2


def test_a_source_changes_only_the_fields_it_is_trusted_for(engine: Engine, tmp_path: Path) -> None:
    run(engine, feed(tmp_path, row(1)), "pds")
    child = scalar(engine, "SELECT id FROM child")
    moved_and_renamed = feed(
        tmp_path, row(1, family="Hughes", line1="9 New Street", postcode="OX1 2JD"), name="b.csv"
    )
    result = run(engine, moved_and_renamed, "pds")  # pds: trusted for the name, not the address
    assert (result.updated, result.unchanged) == (1, 0)
    assert result.ignored == {"address": 1}
    with engine.connect() as conn:
        names = {(r.use, r.family) for r in conn.execute(sa.text("SELECT use, family FROM child_name"))}
    assert names == {("official", "Hughes"), ("previous", "Ward")}
    assert scalar(engine, "SELECT postcode FROM child_address WHERE until IS NULL") == "OX4 1AB"
    # the authority's own system is trusted for the address (and not for the name)
    social = run(
        engine,
        feed(tmp_path, row(1, family="Smith", line1="9 New Street", postcode="OX1 2JD"), name="c.csv"),
        "social-care",
    )
    assert social.updated == 1 and social.ignored == {"name": 1}
    assert scalar(engine, "SELECT postcode FROM child_address WHERE until IS NULL") == "OX1 2JD"
    assert scalar(engine, "SELECT family FROM child_name WHERE use = 'official'") == "Hughes"
    assert (
        scalar(engine, "SELECT count(*) FROM child") == 1 and scalar(engine, "SELECT id FROM child") == child
    )
    # each change audited by the fields' names and the source, never their values
    detail = str(
        scalar(
            engine,
            "SELECT detail FROM audit_event WHERE action = 'child.details.change' ORDER BY seq DESC LIMIT 1",
        )
    )
    assert "social-care" in detail and "OX1" not in detail and "Smith" not in detail


def test_an_unknown_source_is_trusted_for_nothing_and_the_file_overrides_defaults(
    engine: Engine, tmp_path: Path
) -> None:
    run(engine, feed(tmp_path, row(1)), "pds")
    result = run(engine, feed(tmp_path, row(1, family="Hughes"), name="b.csv"), "school-census")
    assert (result.updated, result.unchanged, result.ignored) == (0, 1, {"name": 1})
    config = tmp_path / "precedence.json"
    config.write_text('{"school-census": ["name", "upn"]}', encoding="utf-8")
    result = run(
        engine,
        feed(tmp_path, row(1, family="Hughes"), name="c.csv"),
        "school-census",
        load_precedence(config),
    )
    assert result.updated == 1
    config.write_text('{"school-census": ["colour"]}', encoding="utf-8")
    with pytest.raises(ValueError, match="colour"):
        load_precedence(config)


def test_an_uncertain_match_is_held_once_and_the_report_names_no_details(
    engine: Engine, tmp_path: Path
) -> None:
    run(engine, feed(tmp_path, row(1)), "pds")
    # no identifier the directory knows; same name, date of birth a digit out, elsewhere
    near = row(2, nhs_no="", local="mosaic:M1", born="2015-03-03", line1="3 Far Lane", postcode="OX1 2JD")
    path = feed(tmp_path, near, name="b.csv")
    result = run(engine, path, "social-care")
    assert (result.created, result.held) == (0, 1), outcomes(result)
    assert outcomes(result) == [(2, "held", "review")]
    assert count(engine, "match_review") == 1 and count(engine, "child") == 1
    again = run(engine, path, "social-care")
    assert again.held == 1 and count(engine, "match_review") == 1  # held once, not once a run
    report = tmp_path / "report.csv"
    write_report(again, report)
    assert list(csv.reader(report.open())) == [
        ["file", "line", "outcome", "reason"],
        ["b.csv", "2", "held", "review"],
    ]


def test_a_row_beside_a_shielded_child_is_held_and_says_nothing_more(engine: Engine, tmp_path: Path) -> None:
    run(engine, feed(tmp_path, row(1)), "pds")
    child = uuid.UUID(str(scalar(engine, "SELECT id FROM child")).replace("-", ""))
    with Session(engine) as session:
        service.set_shield(session, actor=SHIELDER, child_id=child, data=ShieldSet(reason="fleeing violence"))
        session.commit()
    backend = EmbeddedBackend(engine)
    backend.ensure_ready()
    drain(engine, backend, wait=True)
    # the same child from another system, with an identifier the directory does not hold
    twin = feed(tmp_path, row(2, nhs_no="", local="mosaic:M7"), name="b.csv")
    result = run(engine, twin, "social-care")
    assert outcomes(result) == [(2, "held", "review")]
    assert count(engine, "child") == 1  # never a second, unshielded record beside it
    assert scalar(engine, "SELECT shielded_candidate FROM match_review") in (True, 1)
    # from a source not trusted for addresses, a move of the shielded child is held, changing nothing
    v = versions(engine)
    moved = run(engine, feed(tmp_path, row(1, line1="1 Other Road", postcode="OX1 2JD"), name="c.csv"), "pds")
    assert outcomes(moved) == [(2, "held", "review")]
    assert versions(engine) == v
    assert scalar(engine, "SELECT postcode FROM child_address WHERE until IS NULL") == "OX4 1AB"
    # a re-run holds the same rows again without queueing them twice
    assert count(engine, "match_review") == 2
    again = run(engine, feed(tmp_path, row(1, line1="1 Other Road", postcode="OX1 2JD"), name="c.csv"), "pds")
    assert outcomes(again) == [(2, "held", "review")] and count(engine, "match_review") == 2


def test_bad_rows_are_rejected_with_a_code_and_nothing_half_written(engine: Engine, tmp_path: Path) -> None:
    bad_nhs = row(1, nhs_no="9434765918")
    path = feed(tmp_path, bad_nhs, row(2), row(2, given="Other"), row(3, postcode="NOT A PC"))
    result = run(engine, path, "pds")
    assert outcomes(result) == [
        (2, "rejected", "invalid"),
        (3, "created", "no-match"),
        (4, "rejected", "repeated-in-run"),
        (5, "rejected", "invalid"),
    ]
    assert count(engine, "child") == 1 and count(engine, "child_identifier") == 1
    assert [(r.line, r.field) for r in result.rejected] == [
        (2, "nhs_number"),
        (4, "identifier"),
        (5, "postcode"),
    ]


def test_the_command_reports_counts_and_writes_a_report_without_data(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from childindex.cli import app

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    path = feed(tmp_path, row(1), row(2, nhs_no="9434765918"))
    report = tmp_path / "report.csv"
    runner = CliRunner()
    first = runner.invoke(
        app, ["import", "--source", "pds", str(path), "--database-url", url, "--report", str(report)]
    )
    assert first.exit_code == 1, first.output  # a row was rejected
    assert "1 created, 0 updated, 0 unchanged, 0 held for review, 1" in " ".join(first.output.split())
    text = report.read_text()
    assert text.splitlines() == [
        "file,line,outcome,reason",
        "feed.csv,2,created,no-match",
        "feed.csv,3,rejected,invalid",
    ]
    assert "Amelia" not in text and "OX4" not in text and nhs(1) not in text
    bad = runner.invoke(app, ["import", "--source", "Not A Name", str(path), "--database-url", url])
    assert bad.exit_code == 2 and "Nothing imported" in bad.output
