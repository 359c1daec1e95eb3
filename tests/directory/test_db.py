"""Prepared statements on the driver's cursor give what SQLAlchemy's Core gives, on both databases."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlalchemy.engine import Engine

from directory.db import (
    Prepared,
    SqliteWriter,
    driver_reader,
    is_sqlite_file,
    make_engine,
    reader,
    sqlite_transaction,
)

_KNOWN = uuid.UUID("12345678-1234-5678-1234-567812345678")
_STATEMENT = sa.select(
    sa.literal(_KNOWN, sa.Uuid).label("fixed_id"),
    sa.literal(date(9999, 12, 31), sa.Date).label("fixed_day"),
    sa.literal("caf").label("fixed_text"),
    bindparam("some_id", type_=sa.Uuid).label("some_id"),
    bindparam("day", type_=sa.Date).label("day"),
    bindparam("at", type_=sa.DateTime).label("at"),
    bindparam("flag", type_=sa.Boolean).label("flag"),
    sa.cast(bindparam("n", type_=sa.Integer), sa.Integer).label("n"),
    (bindparam("n2", type_=sa.Integer) + bindparam("n2", type_=sa.Integer)).label("twice"),  # named twice
)


@pytest.mark.parametrize(
    "values",
    [
        {
            "some_id": uuid.uuid4(),
            "day": date(2016, 2, 29),
            "at": datetime(2026, 11, 23, 18, 5, 7, 123456),
            "flag": True,
            "n": 7,
            "n2": 21,
        },
        {"some_id": None, "day": None, "at": None, "flag": False, "n": None, "n2": 0},
    ],
)
def test_prepared_rows_are_the_rows_core_returns(engine: Engine, values: dict[str, object]) -> None:
    prepared = Prepared(_STATEMENT)
    with reader(engine) as conn:
        expected = [tuple(row) for row in conn.execute(_STATEMENT, values)]
        assert prepared.rows(conn, values) == expected  # on a Core connection
    with driver_reader(engine) as raw:
        assert prepared.rows(raw, values) == expected  # and on the pool's driver connection
    assert expected[0][0] == _KNOWN and isinstance(expected[0][1], date)


def test_prepared_converts_an_aware_datetime_as_core_does(engine: Engine) -> None:
    statement = sa.select(bindparam("at", type_=sa.DateTime(timezone=True)).label("at"))
    at = datetime(2026, 11, 23, 18, 5, 7, tzinfo=UTC)
    with reader(engine) as conn:
        assert Prepared(statement).rows(conn, {"at": at}) == [
            tuple(r) for r in conn.execute(statement, {"at": at})
        ]


def test_prepared_refuses_an_expanding_parameter(engine: Engine) -> None:
    statement = sa.select(sa.literal(1)).where(sa.literal(1).in_(bindparam("ids", expanding=True)))
    with driver_reader(engine) as raw, pytest.raises(ValueError, match="expanding"):
        Prepared(statement).rows(raw, {"ids": [1]})


def test_a_prepared_write_stores_what_core_stores_and_only_in_a_transaction(engine: Engine) -> None:
    from directory.models import AuditEvent

    table = AuditEvent.__table__  # type: ignore[attr-defined]
    write = Prepared(
        sa.insert(table).values({c.name: bindparam(c.name, type_=c.type) for c in table.columns})
    )

    def event(seq: int) -> dict[str, object]:
        at = datetime(2026, 11, 23, 18, 5, 7, 123456, tzinfo=UTC)
        return {c.name: None for c in table.columns} | {
            "seq": seq,
            "at": at,
            "actor_subject": "s",
            "actor_role": "practitioner",
            "action": "read",
            "target_id": str(_KNOWN),
            "outcome": "success",
            "prev_hash": "p",
            "hash": "h",
        }

    with engine.connect() as conn, pytest.raises(RuntimeError, match="transaction"):
        write.run(conn, [event(1)])
    with engine.begin() as conn:
        write.run(conn, [event(1), event(2)])
        conn.execute(sa.insert(table), event(3))
    with reader(engine) as conn:  # as the driver holds them: the stored forms are the same
        stored = conn.exec_driver_sql("SELECT seq, at, target_id, detail FROM audit_event ORDER BY seq").all()
    assert [r[0] for r in stored] == [1, 2, 3]
    assert [tuple(r)[1:] for r in stored] == [tuple(stored[2])[1:]] * 3


def test_a_sqlite_writer_commits_what_succeeds_and_rolls_back_what_raises(tmp_path: Path) -> None:
    """The audit's group commit writes on a SQLite file through its own driver connection."""
    engine = make_engine(f"sqlite:///{tmp_path / 'writer.db'}")
    assert is_sqlite_file(engine)
    table = sa.table("scratch", sa.column("n", sa.Integer))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE scratch (n INTEGER NOT NULL)")
    write = Prepared(sa.insert(table).values(n=bindparam("n", type_=sa.Integer)))
    writer = SqliteWriter.open(engine)
    try:
        with pytest.raises(RuntimeError, match="transaction"):
            write.run(writer, [{"n": 0}])
        with sqlite_transaction(writer):
            assert writer.in_transaction()
            write.run(writer, [{"n": 1}, {"n": 2}])
        assert not writer.in_transaction()
        with pytest.raises(sqlite3.IntegrityError), sqlite_transaction(writer):
            write.run(writer, [{"n": 3}])
            write.run(writer, [{"n": None}])  # NOT NULL: the whole transaction goes
        assert not writer.in_transaction()
        with sqlite_transaction(writer):  # and the connection is usable again
            write.run(writer, [{"n": 4}])
    finally:
        writer.close()
    with reader(engine) as conn:
        assert conn.exec_driver_sql("SELECT n FROM scratch ORDER BY n").scalars().all() == [1, 2, 4]
    engine.dispose()
