"""The synthetic county: deterministic for a seed, and every practice rule holds in it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from childindex.demo.seed import SeedError, seed
from directory import audit
from directory import repository as repo
from directory.identifiers import is_valid_nhs_number, is_valid_upn, normalise_postcode
from directory.service import validate_birth
from tests.directory.seed_fixtures import (  # noqa: F401  (fixtures)
    ACTOR,
    db,
    postgres_schema,
    scalar,
    sqlite_engine,
)

TODAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
N = 1500


def _rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def _seed(engine: Engine, *, children: int = N, seed_: int = 7, parallel: bool = False) -> None:
    seed(
        engine,
        children=children,
        seed=seed_,
        actor=ACTOR,
        today=TODAY,
        now=NOW,
        batch=400,
        parallel=parallel,
    )


def test_the_same_seed_gives_the_same_rows(tmp_path: Path) -> None:
    first, second, other = (sqlite_engine(tmp_path, f"{n}.db") for n in ("a", "b", "c"))
    _seed(first, children=400)
    _seed(second, children=400, parallel=True)  # generated in a second process
    _seed(other, children=400, seed_=8)
    queries = [
        "SELECT id, date_of_birth, sex, locality_id, school_id FROM child ORDER BY id",
        "SELECT child_id, system, value FROM child_identifier ORDER BY system, value",
        "SELECT child_id, use, given, family FROM child_name ORDER BY id",
        "SELECT id, status, lead_practitioner_id FROM assessment ORDER BY id",
        "SELECT id, name, role FROM practitioner ORDER BY id",
    ]
    for sql in queries:
        assert _rows(first, sql) == _rows(second, sql), sql
    assert _rows(first, queries[0]) != _rows(other, queries[0])


def test_seed_counts_and_refuses_a_database_with_data(db: Engine) -> None:  # noqa: F811
    _seed(db)
    assert scalar(db, "SELECT count(*) FROM child") == N
    assert scalar(db, "SELECT count(*) FROM locality") == 8
    for table in ("involvement", "assessment", "tac", "tac_member", "consent", "related_person"):
        assert scalar(db, f"SELECT count(*) FROM {table}") > 0, table
    with pytest.raises(SeedError):
        _seed(db, children=5)


def test_practice_rules_hold_in_the_seeded_county(db: Engine) -> None:  # noqa: F811
    _seed(db)
    open_ = "('signalled', 'in_progress', 'completed')"
    # never more than one open CAF, and each open CAF has its Lead Professional
    assert (
        scalar(
            db,
            f"""SELECT count(*) FROM (SELECT child_id FROM assessment
        WHERE status IN {open_} GROUP BY child_id HAVING count(*) > 1) x""",
        )
        == 0
    )
    assert (
        scalar(
            db,
            f"""SELECT count(*) FROM assessment a WHERE a.status IN {open_}
        AND NOT EXISTS (SELECT 1 FROM lead_professional_assignment l WHERE l.child_id = a.child_id
        AND l.ended_at IS NULL AND l.practitioner_id = a.lead_practitioner_id
        AND l.assessment_id = a.id)""",
        )
        == 0
    )
    assert (
        scalar(
            db,
            f"""SELECT count(*) FROM lead_professional_assignment l
        WHERE l.ended_at IS NULL AND NOT EXISTS (SELECT 1 FROM assessment a
        WHERE a.id = l.assessment_id AND a.status IN {open_})""",
        )
        == 0
    )
    # started CAFs have a 'caf' consent of the same child; signals have not expired yet
    assert (
        scalar(
            db,
            """SELECT count(*) FROM assessment a LEFT JOIN consent c
        ON c.id = a.consent_id AND c.child_id = a.child_id AND c.scope = 'caf'
        WHERE a.started_at IS NOT NULL AND c.id IS NULL""",
        )
        == 0
    )
    signals = _rows(db, "SELECT signal_expires_at FROM assessment WHERE status = 'signalled'")
    assert all(str(s[0]) > NOW.strftime("%Y-%m-%d %H:%M:%S") for s in signals)
    statuses = {r[0] for r in _rows(db, "SELECT DISTINCT status FROM assessment")}
    assert {"signalled", "in_progress", "completed", "closed"} <= statuses
    # hand-overs are recorded with who handed over and why
    assert (
        scalar(
            db,
            "SELECT count(*) FROM lead_professional_assignment WHERE from_practitioner_id IS NOT NULL",
        )
        > 0
    )
    # convened TACs have more than two practitioners, the Lead Professional among them
    assert (
        scalar(
            db,
            """SELECT count(*) FROM tac t WHERE t.status = 'convened' AND
        (SELECT count(*) FROM tac_member m WHERE m.tac_id = t.id AND m.left_at IS NULL) < 3""",
        )
        == 0
    )
    assert (
        scalar(
            db,
            """SELECT count(*) FROM tac t JOIN assessment a ON a.id = t.assessment_id
        WHERE t.status = 'convened' AND NOT EXISTS (SELECT 1 FROM tac_member m
        WHERE m.tac_id = t.id AND m.practitioner_id = a.lead_practitioner_id)""",
        )
        == 0
    )
    # sensitive involvements are covered by a consent of the child for their category
    assert (
        scalar(
            db,
            """SELECT count(*) FROM involvement i JOIN service s ON s.id = i.service_id
        LEFT JOIN consent c ON c.id = i.consent_id AND c.child_id = i.child_id
        AND c.scope = 'sensitive:' || s.sensitive_category
        WHERE i.sensitive AND c.id IS NULL""",
        )
        == 0
    )
    assert scalar(db, "SELECT count(*) FROM involvement WHERE sensitive") > 0
    # every child keeps a universal service (GP, health visitor, midwife, school or nursery)
    assert (
        scalar(
            db,
            """SELECT count(*) FROM child c WHERE NOT EXISTS (SELECT 1 FROM involvement i
            WHERE i.child_id = c.id AND i.status = 'active' AND i.level_of_need = 1)
            AND NOT EXISTS (SELECT 1 FROM involvement i JOIN service s ON s.id = i.service_id
            WHERE i.child_id = c.id AND i.status = 'active'
            AND s.service_type IN ('gp', 'school', 'early_years'))""",
        )
        == 0
    )
    # shielded children say why and who
    assert scalar(db, "SELECT count(*) FROM child WHERE shielded") == N // 500 + (N % 500 > 7)
    assert (
        scalar(
            db,
            "SELECT count(*) FROM child WHERE shielded AND (shielded_reason IS NULL OR shielded_by IS NULL)",
        )
        == 0
    )


def test_identifiers_are_valid_and_unique(db: Engine) -> None:  # noqa: F811
    _seed(db)
    nhs = [str(r[0]) for r in _rows(db, "SELECT value FROM child_identifier WHERE system = 'nhs'")]
    upn = [str(r[0]) for r in _rows(db, "SELECT value FROM child_identifier WHERE system = 'upn'")]
    assert len(nhs) > N * 0.95 and len(set(nhs)) == len(nhs)
    assert all(is_valid_nhs_number(v) for v in nhs)
    assert len(upn) > N * 0.6 and len(set(upn)) == len(upn)
    assert all(is_valid_upn(v) for v in upn)
    assert scalar(db, "SELECT count(*) FROM child_identifier WHERE system = 'local:mosaic'") > 0


def test_children_are_in_range_with_an_address_in_their_locality(db: Engine) -> None:  # noqa: F811
    _seed(db)
    children = _rows(db, "SELECT id, date_of_birth, expected_delivery_date, mother_id FROM child")
    for _, born, expected, _mother in children:
        validate_birth(
            date_of_birth=date.fromisoformat(str(born)) if born else None,
            expected_delivery_date=date.fromisoformat(str(expected)) if expected else None,
            today=TODAY,
        )
    unborn = [c for c in children if c[2] is not None]
    assert unborn and all(c[3] is not None for c in unborn)
    assert (
        scalar(
            db,
            """SELECT count(*) FROM child c WHERE c.mother_id IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM related_person r WHERE r.id = c.mother_id AND r.child_id = c.id
         AND r.relationship = 'mother')""",
        )
        == 0
    )
    assert (
        scalar(
            db,
            """SELECT count(*) FROM child c WHERE (SELECT count(*) FROM child_address a
        WHERE a.child_id = c.id AND a.until IS NULL) <> 1""",
        )
        == 0
    )
    assert (
        scalar(
            db,
            """SELECT count(*) FROM child c WHERE NOT EXISTS (SELECT 1 FROM child_name n
        WHERE n.child_id = c.id AND n.use = 'official')""",
        )
        == 0
    )
    assert scalar(db, "SELECT count(*) FROM child_name WHERE use = 'previous'") > 0
    assert scalar(db, "SELECT count(*) FROM child_address WHERE until IS NOT NULL") > 0
    with Session(db) as session:
        sample = _rows(
            db,
            """SELECT c.id, c.locality_id, a.postcode FROM child c JOIN child_address a
            ON a.child_id = c.id AND a.until IS NULL ORDER BY c.id LIMIT 300""",
        )
        for _, locality_id, value in sample:
            postcode = str(value)
            assert normalise_postcode(postcode) == postcode
            locality = repo.locality_for_postcode(session, postcode)
            assert locality is not None and str(locality.id).replace("-", "") == str(locality_id).replace(
                "-", ""
            )


def test_the_seed_run_is_audited_once(db: Engine) -> None:  # noqa: F811
    _seed(db, children=200)
    assert scalar(db, "SELECT count(*) FROM audit_event") == 1
    assert _rows(db, "SELECT action, detail FROM audit_event") == [("seed", '{"children":200,"seed":7}')]
    assert scalar(db, "SELECT count(*) FROM outbox") == 0
    with Session(db) as session:
        assert audit.verify(session).ok
