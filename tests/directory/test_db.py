"""Prepared statements on the driver's cursor give what SQLAlchemy's Core gives, on both databases."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlalchemy.engine import Engine

from directory.db import (
    WAL_AUTOCHECKPOINT_PAGES,
    Prepared,
    WalCheckpointer,
    driver_reader,
    make_engine,
    reader,
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


def test_a_background_checkpoint_copies_the_log_into_the_database(tmp_path: Path) -> None:
    """Commits leave their pages in the write-ahead log (a commit copies them back only past
    WAL_AUTOCHECKPOINT_PAGES); the checkpointer's thread copies them while it runs, and stops."""
    path = tmp_path / "wal.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == WAL_AUTOCHECKPOINT_PAGES
        conn.exec_driver_sql("CREATE TABLE filler (body BLOB)")
    for _ in range(20):  # 20 commits of 50 pages each: far below the commits' own limit
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO filler VALUES (randomblob(200000))")
    before = path.stat().st_size
    assert Path(f"{path}-wal").stat().st_size > 3_000_000 and before < 1_000_000

    checkpointer = WalCheckpointer(engine, every=0.05)
    checkpointer.start()
    try:
        deadline = time.monotonic() + 10
        while path.stat().st_size < before + 3_000_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size >= before + 3_000_000  # the rows are in the database file now
        assert any(t.name == "sqlite-checkpoint" for t in threading.enumerate())
    finally:
        checkpointer.stop()
    assert not any(t.name == "sqlite-checkpoint" for t in threading.enumerate())
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM filler").scalar_one() == 20
    engine.dispose()


def test_only_a_sqlite_file_has_a_log_to_checkpoint(engine: Engine) -> None:
    in_memory = make_engine("sqlite://")
    assert not WalCheckpointer.applies(in_memory)
    assert WalCheckpointer.applies(engine) == (engine.dialect.name == "sqlite")
    checkpointer = WalCheckpointer(in_memory, every=0.05)
    checkpointer.start()  # nothing to do: no thread
    assert not any(t.name == "sqlite-checkpoint" for t in threading.enumerate())
    checkpointer.stop()
