"""Background jobs run exactly once across nodes sharing a database, and take over (directory/jobs.py).

Two `Job` objects on one database stand for two nodes: each has its own lease (its own PostgreSQL
connection, its own open file on SQLite), exactly as two processes would.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from directory import jobs
from search.embedded import EmbeddedBackend
from search.indexer import BackgroundIndexer, pending
from tests.fixtures.builders import make_child


class Counting(jobs.Job):
    """A job that counts its rounds, and notes any moment two of its kind work at once."""

    name = "test-counting"
    working: set[int] = set()
    overlap = False
    guard = threading.Lock()

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, interval=0.02)
        self.takeover_seconds = 0.1
        self.rounds = 0

    def work(self) -> None:
        with Counting.guard:
            if Counting.working:
                Counting.overlap = True
            Counting.working.add(id(self))
        time.sleep(0.005)
        with Counting.guard:
            Counting.working.discard(id(self))
        self.rounds += 1


@pytest.fixture
def two(engine: Engine) -> Iterator[tuple[Counting, Counting]]:
    Counting.working, Counting.overlap = set(), False
    a, b = Counting(engine), Counting(engine)
    yield a, b
    a.stop()
    b.stop()


def _until(check: Callable[[], bool], seconds: float = 5.0) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"not within {seconds:.1f} s")
        time.sleep(0.01)
    return time.monotonic() - start


def test_one_lease_at_a_time_and_released_for_the_next(engine: Engine) -> None:
    first, second = jobs.Lease(engine, "test-lease"), jobs.Lease(engine, "test-lease")
    other = jobs.Lease(engine, "test-other")
    assert first.acquire()
    assert not second.acquire()  # another node (connection or open file) holds it
    assert other.acquire()  # each job has its own key
    assert "test-lease" in jobs.held()
    assert jobs.holders(engine, ("test-lease", "nobody")) == {"test-lease": True, "nobody": False}
    first.release()
    assert second.acquire()
    second.release()
    other.release()
    assert "test-lease" not in jobs.held()


def test_only_the_holder_works_and_the_other_takes_over_on_stop(two: tuple[Counting, Counting]) -> None:
    a, b = two
    a.start()
    _until(lambda: a.rounds > 3)
    b.start()
    time.sleep(0.5)
    assert a.holding and not b.holding
    assert b.rounds == 0  # started, but never worked: A holds the lease
    a.stop()  # a clean shutdown releases the lease ...
    took = _until(lambda: b.rounds > 0)
    assert took < 1.0  # ... and B's next try (every takeover_seconds) takes it
    assert b.holding and not a.holding
    assert not Counting.overlap


def test_a_cron_command_does_nothing_while_another_node_runs_it(engine: Engine) -> None:
    with jobs.exclusive(engine, "lifecycle") as mine:
        assert mine
        with jobs.exclusive(engine, "lifecycle") as theirs:
            assert not theirs
    with jobs.exclusive(engine, "lifecycle") as again:
        assert again


def _postgres(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the lease connection and NOTIFY are PostgreSQL's")


def _kill_lease_connection(engine: Engine, name: str) -> None:
    key = jobs.lease_key(name)
    with engine.begin() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND ((classid::bigint << 32) | objid::bigint) = :k AND granted"
            ),
            {"k": key},
        ).all()
    assert [tuple(r) for r in killed] == [(True,)]


def test_a_lost_lease_connection_stops_the_work_at_once_and_one_node_takes_over(
    engine: Engine, two: tuple[Counting, Counting], caplog: pytest.LogCaptureFixture
) -> None:
    _postgres(engine)
    a, b = two
    a.start()
    _until(lambda: a.holding and a.rounds > 0)
    b.start()
    time.sleep(0.3)
    _kill_lease_connection(engine, Counting.name)  # a network blip, or the server's idle killer
    # a stops at once: it notices at its next round (every 0.02 s) and says so
    _until(lambda: any("lease connection lost" in r.getMessage() for r in caplog.records), 1.0)
    total = a.rounds + b.rounds
    _until(lambda: a.rounds + b.rounds > total + 5)  # and one of them (whichever tried first) resumes
    time.sleep(0.3)
    assert a.holding != b.holding
    assert not Counting.overlap


def test_a_write_wakes_the_indexer_holder_at_once_through_notify(engine: Engine) -> None:
    _postgres(engine)
    backend = EmbeddedBackend(engine)
    backend.ensure_ready()
    indexer = BackgroundIndexer(engine, backend, interval=30.0)  # the timer alone would take 30 s
    indexer.start()
    try:
        _until(lambda: indexer.holding)
        time.sleep(0.3)  # the first round has run; the indexer now waits on its connection
        with Session(engine) as session:
            make_child(session)
            session.commit()
        took = _until(lambda: pending(engine) == 0, 5.0)
        assert took < 1.0
    finally:
        indexer.stop()
    assert not jobs.holders(engine, ("indexer",))["indexer"]  # stop() released it


def test_the_life_cycle_command_does_nothing_while_another_node_runs_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import date, timedelta

    from typer.testing import CliRunner

    from childindex.cli import app as cli

    if engine.dialect.name != "sqlite":
        pytest.skip("the command is exercised on a SQLite file (the lease is the same Lease on both)")
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", str(engine.url))
    today = date.today()
    with Session(engine) as s:
        old = make_child(
            s, date_of_birth=(today.replace(year=today.year - 18) - timedelta(days=5)).isoformat()
        )
        s.commit()
    with jobs.exclusive(engine, "lifecycle") as mine:  # another node's run, still going
        assert mine
        out = CliRunner().invoke(cli, ["lifecycle", "run"])
    assert out.exit_code == 0, out.output
    assert "nothing done here" in out.output
    with engine.connect() as conn:
        status = conn.execute(sa.text("SELECT status FROM child WHERE id = :i"), {"i": old.hex}).scalar()
    assert status == "active"
    done = CliRunner().invoke(cli, ["lifecycle", "run"])
    assert "1 record(s) archived at the end of the age range" in done.output


def test_nodes_starting_together_migrate_once_and_both_start(engine: Engine) -> None:
    """Each node migrates on start: two at once on an empty database both succeed (one waits).
    Two processes, as two nodes are (Alembic's context is one per process)."""
    _postgres(engine)
    import subprocess
    import sys

    schema = f"two_nodes_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = engine.url.update_query_dict({"options": f"-csearch_path={schema}"})
    code = (
        "import sys; from childindex.migrations import upgrade; from directory.db import make_engine; "
        "upgrade(make_engine(sys.argv[1]))"
    )
    try:
        nodes = [
            subprocess.Popen(
                [sys.executable, "-c", code, url.render_as_string(hide_password=False)],
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        errors = [p.communicate(timeout=300)[1].decode() for p in nodes]
        assert [p.returncode for p in nodes] == [0, 0], errors
        with engine.connect() as conn:
            version = conn.exec_driver_sql(f'SELECT count(*) FROM "{schema}".alembic_version').scalar()
        assert version == 1
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
