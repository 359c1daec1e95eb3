"""A record's life cycle (issue #22 item 5), on SQLite and PostgreSQL: archived at the end of the age
range (later while the young person consents or a service above the universal level stays), after a
move out of the area, on a death; archived records hidden from practitioners and readable by data
managers and auditors; purged to a tombstone after the period, from every table and the index, with
the audit chain still verifying; a dry run changes nothing and a second run changes nothing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from directory import audit, service
from directory.db import unit_of_work
from directory.errors import NotFound
from directory.models import (
    CafSignal,
    Child,
    ChildLifecycle,
    ConsentCreate,
    Contact,
    DeathRecord,
    InvolvementCreate,
    Purpose,
    Role,
    ShieldClear,
    ShieldSet,
    utcnow,
)
from directory.service import lifecycle
from directory.service.common import add_years
from directory.service.lifecycle import PURGED_ROWS, PURGED_THROUGH, LifecycleRules, run_lifecycle
from search.embedded import EmbeddedBackend
from search.indexer import drain
from tests.directory.test_adoption import who
from tests.fixtures.builders import actor, make_child, make_org, make_practitioner, make_service

ADMIN = actor(Role.DIRECTORY_ADMIN, subject="cli:ops", purpose=Purpose.ADMINISTRATION)
RULES = LifecycleRules()
TEAM = Contact(name="the local delivery team")


def _born(years: int, days: int = 0) -> str:
    """A date of birth `years` and `days` before today."""
    return (add_years(date.today(), -years) - timedelta(days=days)).isoformat()


def _run(
    engine: Engine, *, now: datetime | None = None, dry_run: bool = False, **rules: Any
) -> lifecycle.LifecycleReport:
    with unit_of_work(engine) as s:
        # 03:00 today unless given: read at each run, not when the module was imported (a run that
        # crosses midnight would otherwise compare yesterday's clock with today's records)
        when = now or datetime.combine(date.today(), time(3), tzinfo=UTC)
        return run_lifecycle(s, actor=ADMIN, rules=LifecycleRules(**rules), now=when, dry_run=dry_run)


def _status(engine: Engine, child_id: uuid.UUID) -> str:
    with Session(engine) as s:
        child = s.get(Child, child_id)
        assert child is not None
        return child.status


def _snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (the audit log and the outbox included)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            out[table.name] = sorted(map(tuple, conn.execute(sa.select(table)).all()), key=repr)
    return out


@pytest.fixture
def world(engine: Engine) -> Iterator[dict[str, Any]]:
    """A service at level 1 (universal), one at level 2, a practitioner."""
    with unit_of_work(engine) as s:
        org = make_org(s, name="Demoshire Health", kind="nhs_trust")
        universal = make_service(s, org, name="School Nursing", level_of_need=1)
        targeted = make_service(s, org, name="Targeted Youth Support", level_of_need=2)
        p = make_practitioner(s, org, name="Nora Nurse")
        ids = {"universal": universal.id, "targeted": targeted.id, "p": p.id}
    yield ids


def _involve(engine: Engine, child_id: uuid.UUID, service_id: uuid.UUID, practitioner: uuid.UUID) -> None:
    with unit_of_work(engine) as s:
        service.record_involvement(
            s,
            actor=actor(practitioner_id=practitioner),
            child_id=child_id,
            data=InvolvementCreate(
                service_id=service_id,
                role="nurse",
                level_of_need=1,
                start_date=date.today() - timedelta(days=30),
            ),
        )


def test_records_are_archived_at_18_unless_the_young_person_consents_or_a_service_stays(
    engine: Engine, world: dict[str, Any]
) -> None:
    with unit_of_work(engine) as s:
        plain = make_child(s, date_of_birth=_born(18, 3))
        consenting = make_child(s, date_of_birth=_born(18, 3))
        supported = make_child(s, date_of_birth=_born(18, 3))
        universal_only = make_child(s, date_of_birth=_born(18, 3))
        younger = make_child(s, date_of_birth=_born(17, 360))
        service.record_consent(
            s,
            actor=ADMIN,
            child_id=consenting,
            data=ConsentCreate(
                scope="information_sharing",
                given_by_kind="young_person",
                given_by_name="the young person",
                young_person_competent=True,
            ),
        )
    _involve(engine, supported, world["targeted"], world["p"])
    _involve(engine, universal_only, world["universal"], world["p"])
    with unit_of_work(engine) as s:  # (a level-2 service: record it at level 2)
        s.execute(
            sa.text("UPDATE involvement SET level_of_need = 2 WHERE service_id = :s"),
            {"s": world["targeted"] if engine.dialect.name == "postgresql" else world["targeted"].hex},
        )
    report = _run(engine)
    assert (report.archived_aged_out, report.kept_past_archive_age) == (2, 2)
    assert _status(engine, plain) == _status(engine, universal_only) == "archived"
    assert _status(engine, consenting) == _status(engine, supported) == _status(engine, younger) == "active"
    with Session(engine) as s:
        row = s.get(Child, plain)
        assert row is not None and row.archived_reason == "aged-out"
        dates = s.get(ChildLifecycle, plain)
        assert dates is not None and dates.archived_at is not None
    # at the extended age the extension ends; withdrawing the consent ends it sooner
    later = datetime.combine(add_years(date.today(), 7), time(3), tzinfo=UTC)
    report = _run(engine, now=later, purge_after_years=50)
    assert report.archived_aged_out == 3  # consenting, supported, younger (now 24-25, past 25 for two)
    # a lower extended age is honoured (configurable)
    with unit_of_work(engine) as s:
        other = make_child(s, date_of_birth=_born(19, 3))
        service.record_consent(
            s,
            actor=ADMIN,
            child_id=other,
            data=ConsentCreate(
                scope="information_sharing",
                given_by_kind="young_person",
                given_by_name="the young person",
                young_person_competent=True,
            ),
        )
    assert _run(engine, extended_age=19).archived_aged_out == 1
    assert _status(engine, other) == "archived"


def test_a_dry_run_changes_nothing_and_a_second_run_changes_nothing(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        for _ in range(3):
            make_child(s, date_of_birth=_born(18, 40))
        make_child(s, date_of_birth=_born(5))
    before = _snapshot(engine)
    dry = _run(engine, dry_run=True)
    assert dry.archived_aged_out == 3 and dry.dry_run
    assert _snapshot(engine) == before
    assert _run(engine).archived_aged_out == 3
    after = _snapshot(engine)
    again = _run(engine)
    assert (again.archived_aged_out, again.archived_moved_away, again.purged) == (0, 0, 0)
    assert _snapshot(engine) == after


def test_archived_records_leave_practitioners_and_stay_readable_for_data_managers_and_auditors(
    client: TestClient, engine: Engine
) -> None:
    with unit_of_work(engine) as s:
        child = make_child(s, names=[{"given": "Tariq", "family": "Oyelaran"}], date_of_birth=_born(18, 10))
    backend = client.app.state.search_backend  # type: ignore[attr-defined]
    drain(engine, backend, wait=True)
    body = {"given": "Tariq", "family": "Oyelaran", "birth_date": _born(18, 10)}
    hits = client.post("/api/v1/children/search", headers=who(), json=body).json()["hits"]
    assert len(hits) == 1
    _run(engine)
    drain(engine, backend, wait=True)
    unknown = uuid.uuid4()
    for role in (
        "practitioner",
        "designated_practitioner",
        "child_protection",
        "local_delivery_team",
        "directory_admin",
        "system",
        "adoption_officer",
    ):
        a = client.get(f"/api/v1/children/{child}", headers=who(role))
        b = client.get(f"/api/v1/children/{unknown}", headers=who(role))
        assert a.status_code == b.status_code == 404, (role, a.text)
        assert a.json()["detail"] == b.json()["detail"]
        if role not in ("auditor",):
            found = client.post("/api/v1/children/search", headers=who(role), json=body)
            assert found.status_code != 200 or found.json()["hits"] == [], role
    fhir = client.get(
        "/fhir/Patient", params={"family": "Oyelaran", "birthdate": body["birth_date"]}, headers=who("system")
    )
    assert fhir.status_code == 200 and fhir.json()["total"] == 0
    assert client.get(f"/fhir/Patient/{child}", headers=who("system")).status_code == 404
    for role in ("data_manager", "auditor"):
        card = client.get(f"/api/v1/children/{child}", headers=who(role))
        assert card.status_code == 200, (role, card.text)
        assert card.json()["status"] == "archived" and card.json()["names"][0]["family"] == "Oyelaran"
        dates = client.get(f"/api/v1/children/{child}/lifecycle", headers=who(role))
        assert dates.status_code == 200 and dates.json()["archived_reason"] == "aged-out"
        history = client.get(f"/api/v1/children/{child}/history", headers=who(role))
        assert history.status_code == 200, (role, history.text)
        newest = max(history.json(), key=lambda v: v["version"])
        assert newest["changed"] == ["status"] and newest["source"] == "lifecycle"
        assert newest["details"]["status"] == "archived"
    # and an archived record cannot be changed: refused to an admin (who may not read it) exactly as an
    # unknown id, so that the refusal does not say it exists
    r = client.post(
        f"/api/v1/children/{child}/shielding", headers=who("directory_admin"), json={"reason": "x"}
    )
    u = client.post(
        f"/api/v1/children/{unknown}/shielding", headers=who("directory_admin"), json={"reason": "x"}
    )
    assert r.status_code == u.status_code == 404 and r.json()["detail"] == u.json()["detail"]


def test_a_death_closes_the_record_ends_involvements_and_the_open_caf(
    client: TestClient, engine: Engine, world: dict[str, Any]
) -> None:
    with unit_of_work(engine) as s:
        child = make_child(s, date_of_birth=_born(7))
    _involve(engine, child, world["universal"], world["p"])
    with unit_of_work(engine) as s:
        caf = service.signal_caf(
            s,
            actor=actor(practitioner_id=world["p"]),
            child_id=child,
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=utcnow(),
        )
        caf_id = caf.id
    died = (date.today() - timedelta(days=2)).isoformat()
    for role in ("practitioner", "data_manager", "auditor", "adoption_officer", "system"):
        refused = client.post(
            f"/api/v1/children/{child}/death", headers=who(role), json={"date_of_death": died}
        )
        assert refused.status_code == 403, role
    future = (date.today() + timedelta(days=2)).isoformat()
    bad = client.post(
        f"/api/v1/children/{child}/death", headers=who("directory_admin"), json={"date_of_death": future}
    )
    assert bad.status_code == 422 and _status(engine, child) == "active"
    r = client.post(
        f"/api/v1/children/{child}/death", headers=who("directory_admin"), json={"date_of_death": died}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "archived"
    with engine.connect() as conn:
        key = child if engine.dialect.name == "postgresql" else child.hex
        invs = conn.execute(
            sa.text("SELECT status, end_date FROM involvement WHERE child_id = :c"), {"c": key}
        ).all()
        assert [(s, str(e)) for s, e in invs] == [("ended", died)]
        cafkey = caf_id if engine.dialect.name == "postgresql" else caf_id.hex
        assert (
            conn.execute(sa.text("SELECT status FROM assessment WHERE id = :c"), {"c": cafkey}).scalar()
            == "withdrawn"
        )
        lead = conn.execute(
            sa.text(
                "SELECT count(*) FROM lead_professional_assignment WHERE child_id = :c AND ended_at IS NULL"
            ),
            {"c": key},
        ).scalar()
        assert lead == 0
    dates = client.get(f"/api/v1/children/{child}/lifecycle", headers=who("data_manager")).json()
    assert dates["archived_reason"] == "died" and dates["died_on"] == died
    again = client.post(
        f"/api/v1/children/{child}/death", headers=who("directory_admin"), json={"date_of_death": died}
    )
    # Archived, the record is beyond an admin's reach: refused exactly as an id never used.
    unknown = client.post(
        f"/api/v1/children/{uuid.uuid4()}/death", headers=who("directory_admin"), json={"date_of_death": died}
    )
    assert again.status_code == unknown.status_code == 404
    assert again.json()["detail"] == unknown.json()["detail"]
    with engine.connect() as conn:
        details = " ".join(str(d) for d in conn.execute(sa.text("SELECT detail FROM audit_event")).scalars())
    assert died not in details  # the date of death is on the record, not in the audit log


def test_a_move_away_archives_the_record_after_the_period(client: TestClient, engine: Engine) -> None:
    with unit_of_work(engine) as s:
        child = make_child(s, date_of_birth=_born(9))
    moved = date.today() - timedelta(days=10)
    r = client.post(
        f"/api/v1/children/{child}/moved-away",
        headers=who("directory_admin"),
        json={"authority": "Northshire County Council", "moved_on": moved.isoformat()},
    )
    assert r.status_code == 200, r.text
    assert r.json()["moved_to"] == "Northshire County Council" and r.json()["status"] == "active"
    refused = client.post(
        f"/api/v1/children/{child}/moved-away",
        headers=who("practitioner"),
        json={"authority": "Elsewhere", "moved_on": moved.isoformat()},
    )
    assert refused.status_code == 403
    assert _run(engine, moved_away_archive_days=11).archived_moved_away == 0
    assert _status(engine, child) == "active"
    report = _run(engine, moved_away_archive_days=10)
    assert report.archived_moved_away == 1 and _status(engine, child) == "archived"
    with Session(engine) as s:
        row = s.get(Child, child)
        assert row is not None and row.archived_reason == "moved-away"


def _full_record(engine: Engine, world: dict[str, Any]) -> uuid.UUID:
    """A child with names, identifiers, address, carer, involvement, consent, a CAF, a shield note."""
    with unit_of_work(engine) as s:
        child = make_child(
            s,
            names=[
                {"given": "Zephyrine", "family": "Quillfeather"},
                {"given": "Zeph", "family": "Q", "use": "usual"},
            ],
            date_of_birth=_born(10),
        )
        service.record_consent(
            s,
            actor=ADMIN,
            child_id=child,
            data=ConsentCreate(scope="caf", given_by_kind="parent_carer", given_by_name="Jane Quillfeather"),
        )
    _involve(engine, child, world["universal"], world["p"])
    with unit_of_work(engine) as s:
        service.signal_caf(
            s,
            actor=actor(practitioner_id=world["p"]),
            child_id=child,
            data=CafSignal(no_risk_of_significant_harm=True),
            signal_days=14,
            now=utcnow(),
        )
        service.set_shield(
            s, actor=ADMIN, child_id=child, data=ShieldSet(reason="refuge at Quillfeather Lane")
        )
        service.clear_shield(
            s, actor=ADMIN, child_id=child, data=ShieldClear(reason="Quillfeather family rehoused")
        )
    return child


def test_purge_deletes_the_personal_data_everywhere_and_leaves_a_tombstone(
    engine: Engine, world: dict[str, Any]
) -> None:
    backend = EmbeddedBackend(engine)
    backend.ensure_ready()
    child = _full_record(engine, world)
    keep = _full_record(engine, world)  # another child's record is untouched
    drain(engine, backend, wait=True)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM search_record")).scalar() == 2
    with unit_of_work(engine) as s:
        lifecycle.record_death(
            s, actor=ADMIN, child_id=child, data=DeathRecord(date_of_death=date.today()), today=date.today()
        )
    before_keep = _rows_of(engine, keep)
    # not yet: the period has not passed
    assert _run(engine).purged == 0
    # six years after the archiving (at any time of day the test runs: an hour on, not a fixed hour)
    later = utcnow() + timedelta(hours=1)
    six_years = datetime.combine(add_years(later.date(), 6), later.timetz())
    assert _run(engine, now=six_years, dry_run=True).purged == 1
    assert _status(engine, child) == "archived"
    report = _run(engine, now=six_years)
    assert report.purged == 1
    drain(engine, backend, wait=True)
    assert _status(engine, child) == "purged"
    rows = _rows_of(engine, child)
    assert all(n == 0 for n in rows.values()), rows
    assert _rows_of(engine, keep) == before_keep
    with Session(engine) as s:
        tomb = s.get(Child, child)
        assert tomb is not None
        assert (tomb.date_of_birth, tomb.expected_delivery_date, tomb.sex, tomb.locality_id) == (
            None,
            None,
            "unknown",
            None,
        )
        assert (tomb.shielded_reason, tomb.archived_reason, tomb.mother_id) == (None, None, None)
        dates = s.get(ChildLifecycle, child)
        assert dates is not None and dates.archived_at is not None and dates.purged_at is not None
        assert (dates.died_on, dates.moved_to, dates.moved_on) == (None, None, None)
        # the index has dropped it; the chain still verifies; no event holds what was purged
        reader = actor(Role.DATA_MANAGER, purpose=Purpose.ADMINISTRATION)
        with pytest.raises(NotFound):  # a tombstone is read by nobody
            service.read_card(s, actor=reader, child_id=child, now=utcnow(), fallback_team=TEAM)
        assert audit.verify(s).ok
    with engine.connect() as conn:
        ids = {str(r) for r in conn.execute(sa.text("SELECT child_id FROM search_record")).scalars()}
        assert child.hex not in {i.replace("-", "") for i in ids} and len(ids) == 1
        dump = " ".join(
            " ".join(str(v) for v in row) for row in conn.execute(sa.text("SELECT * FROM audit_event")).all()
        )
    for secret in ("Zephyrine", "Quillfeather", "refuge", "rehoused", "Jane"):
        assert secret not in dump, secret
    # a second run finds nothing more to purge
    assert _run(engine, now=six_years).purged == 0


def _rows_of(engine: Engine, child_id: uuid.UUID) -> dict[str, int]:
    """Rows naming the child in every table the purge covers."""
    key = child_id if engine.dialect.name == "postgresql" else child_id.hex
    out: dict[str, int] = {}
    with engine.connect() as conn:
        for table, column, parent, parent_column in PURGED_THROUGH:
            out[table] = conn.execute(
                sa.text(
                    f"SELECT count(*) FROM {table} WHERE {column} IN "
                    f"(SELECT id FROM {parent} WHERE {parent_column} = :c)"
                ),
                {"c": key},
            ).scalar_one()
        for table, column in PURGED_ROWS:
            out[table] = conn.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE {column} = :c"), {"c": key}
            ).scalar_one()
    return out


KNOWINGLY_KEPT = {
    "child": "the tombstone itself (id, status, dates)",
    "child_lifecycle": "the archive and purge dates (the rest is cleared)",
    "audit_subject": "ids only: which events concerned the child (the chain must still verify)",
    "adoption_link": "sealed records are never purged by the life cycle",
    "involvement_version": "",  # on PURGED_ROWS
}


def test_every_table_that_names_a_child_is_purged_or_knowingly_kept() -> None:
    """A table added with a child_id column must be added to PURGED_ROWS (or here, with the reason)."""
    covered = {t for t, _ in PURGED_ROWS} | {t for t, *_ in PURGED_THROUGH}
    for table in SQLModel.metadata.sorted_tables:
        if any(c.name == "child_id" for c in table.columns) or table.name == "tac_member":
            assert table.name in covered or KNOWINGLY_KEPT.get(table.name), table.name
    with_fk = {
        t.name
        for t in SQLModel.metadata.sorted_tables
        for fk in t.foreign_keys
        if fk.column.table.name == "child"
    }
    assert with_fk <= covered | set(KNOWINGLY_KEPT), with_fk - covered - set(KNOWINGLY_KEPT)


def test_the_archive_aged_out_command_is_the_lifecycle_run(
    engine: Engine, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`childindex lifecycle run --dry-run` reports and changes nothing; the run (by its old name
    too) archives."""
    from typer.testing import CliRunner

    from childindex.cli import app as cli

    if engine.dialect.name != "sqlite":
        pytest.skip("the command is exercised once, on a SQLite file")
    url = str(engine.url)
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", url)
    with unit_of_work(engine) as s:
        old = make_child(s, date_of_birth=_born(18, 5))
    runner = CliRunner()
    dry = runner.invoke(cli, ["lifecycle", "run", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "1 record(s) would be archived at the end of the age range" in dry.output
    assert _status(engine, old) == "active"
    done = runner.invoke(cli, ["archive-aged-out"])
    assert done.exit_code == 0, done.output
    assert "1 record(s) archived at the end of the age range" in done.output
    assert _status(engine, old) == "archived"


def test_two_runs_at_once_archive_each_record_once(engine: Engine) -> None:
    """Two runs of the life cycle at the same moment (a cron job started twice): each record is
    archived once, with one audit event."""
    with unit_of_work(engine) as s:
        ids = [make_child(s, date_of_birth=_born(18, 3 + i)) for i in range(6)]
    barrier = threading.Barrier(2)

    def run() -> int:
        barrier.wait()
        return _run(engine).archived_aged_out

    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(lambda _: run(), range(2)))
    assert all(_status(engine, c) == "archived" for c in ids)
    with engine.connect() as conn:
        events = conn.execute(
            sa.text("SELECT count(*) FROM audit_event WHERE action = 'child.archive'")
        ).scalar()
    assert events == 6 and sum(counts) == 6, counts
    assert audit_ok(engine)


def audit_ok(engine: Engine) -> bool:
    with Session(engine) as s:
        return audit.verify(s).ok


def test_a_record_both_aged_out_and_moved_away_is_archived_once(client: TestClient, engine: Engine) -> None:
    with unit_of_work(engine) as s:
        child = make_child(s, date_of_birth=_born(18, 3))
    moved = client.post(
        f"/api/v1/children/{child}/moved-away",
        headers=who("directory_admin"),
        json={
            "authority": "Northshire County Council",
            "moved_on": (date.today() - timedelta(days=200)).isoformat(),
        },
    )
    assert moved.status_code == 200, moved.text
    report = _run(engine)
    assert (report.archived_aged_out, report.archived_moved_away) == (1, 0)
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT count(*) FROM audit_event WHERE action = 'child.archive'")).scalar()
            == 1
        )
