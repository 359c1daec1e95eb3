"""The hash-chained audit log: append-only, verifiable, and 'who looked at this child'."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session
from typer.testing import CliRunner

from childindex.cli import app as cli
from directory import audit
from directory.models import Role
from tests.fixtures.builders import actor, make_child


def _events(engine: Engine, n: int) -> None:
    with Session(engine) as s:
        for i in range(n):
            audit.append(
                s,
                actor=actor(subject=f"user{i}"),
                action="child.read",
                target_type="child",
                target_id="0" * 32,
                outcome="success",
            )
        s.commit()


def test_chain_verifies_and_links(engine: Engine) -> None:
    _events(engine, 5)
    with Session(engine) as s:
        result = audit.verify(s)
        assert result.ok and result.checked == 5
        rows = s.exec(sa.select(audit.AuditEvent).order_by(audit.AuditEvent.seq)).scalars().all()
        assert rows[0].prev_hash == audit.GENESIS
        assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))


def test_database_refuses_edits_and_deletes(engine: Engine) -> None:
    _events(engine, 2)
    with engine.connect() as conn:
        for stmt in (
            "UPDATE audit_event SET outcome = 'x' WHERE seq = 1",
            "DELETE FROM audit_event WHERE seq = 1",
        ):
            try:
                conn.exec_driver_sql(stmt)
                raise AssertionError("the database allowed " + stmt)
            except DBAPIError as exc:
                assert "append-only" in str(exc)
                conn.rollback()


def _tamper(engine: Engine, sql: str) -> None:
    """Do what an attacker with the database owner's rights could: drop the guard, then edit."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")
            for stmt in sql.split(";"):
                conn.exec_driver_sql(stmt)
            conn.exec_driver_sql("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only")
        else:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_event_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_event_no_delete")
            for stmt in sql.split(";"):
                conn.exec_driver_sql(stmt)


def test_verify_detects_an_edit(engine: Engine) -> None:
    _events(engine, 4)
    _tamper(engine, "UPDATE audit_event SET actor_subject = 'someone-else' WHERE seq = 2")
    with Session(engine) as s:
        result = audit.verify(s)
    assert not result.ok
    assert any("event 2 was changed" in p for p in result.problems)


def test_verify_detects_a_deletion_in_the_middle_and_at_the_end(engine: Engine) -> None:
    _events(engine, 5)
    _tamper(engine, "DELETE FROM audit_subject WHERE seq = 3; DELETE FROM audit_event WHERE seq = 3")
    with Session(engine) as s:
        result = audit.verify(s)
    assert any("missing" in p for p in result.problems)
    _tamper(engine, "DELETE FROM audit_subject WHERE seq = 5; DELETE FROM audit_event WHERE seq = 5")
    with Session(engine) as s:
        result = audit.verify(s)
    assert any("anchor" in p for p in result.problems)


def test_cli_audit_verify_exit_codes(engine: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _events(engine, 3)
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "3 events verified" in ok.output
    _tamper(engine, "UPDATE audit_event SET purpose = 'other' WHERE seq = 1")
    bad = runner.invoke(cli, ["audit", "verify"])
    assert bad.exit_code == 1
    assert "event 1 was changed" in bad.output


def test_who_looked_lists_reads_of_that_child_only(session: Session) -> None:
    a = make_child(session)
    b = make_child(session)
    audit.append(
        session, actor=actor(subject="reader-a"), action="child.read", target_type="child", target_id=a
    )
    audit.append(
        session, actor=actor(subject="reader-b"), action="child.read", target_type="child", target_id=b
    )
    audit.append(session, actor=actor(subject="searcher"), action="search", children=[a, b])
    looked = {e.actor_subject for e in audit.who_looked(session, child_id=a)}
    assert "reader-a" in looked and "searcher" in looked and "reader-b" not in looked


def test_actor_fields_are_recorded(session: Session) -> None:
    child = make_child(session)
    event = audit.append(
        session,
        actor=actor(Role.PRACTITIONER, subject="sam", client_id="web"),
        action="child.read",
        target_type="child",
        target_id=child,
    )
    assert (
        event.actor_subject,
        event.actor_role,
        event.actor_organisation,
        event.client_id,
        event.purpose,
        event.request_id,
    ) == ("sam", "practitioner", "Test Org", "web", "considering-caf", "test")


def test_group_commit_records_every_concurrent_search_once_in_one_chain(engine: Engine) -> None:
    """Twenty threads audit at once through audit.record: every event lands, the chain verifies,
    and the events shared transactions (fewer commits than events) without losing one."""
    from concurrent.futures import ThreadPoolExecutor

    def look(i: int) -> None:
        with Session(engine) as s:  # no transaction open: goes through the group commit
            audit.record(s, actor=actor(subject=f"user{i}"), action="search", detail={"n": i})

    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(look, range(200)))
    with Session(engine) as s:
        result = audit.verify(s)
        assert result.ok and result.checked == 200
        subjects = s.exec(sa.select(audit.AuditEvent.actor_subject)).scalars().all()
        assert sorted(subjects) == sorted(f"user{i}" for i in range(200))


def test_group_commit_reports_a_failed_event_to_its_caller_and_keeps_the_rest(engine: Engine) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import pytest

    def look(i: int) -> None:
        with Session(engine) as s:
            # An event that cannot be stored: a child id that is not a UUID fails in every dialect.
            children = ["not-a-uuid"] if i == 7 else []
            audit.record(s, actor=actor(subject=f"user{i}"), action="search", children=children)

    with ThreadPoolExecutor(max_workers=10) as pool:
        futures = [pool.submit(look, i) for i in range(30)]
    failed = [i for i, f in enumerate(futures) if f.exception() is not None]
    assert failed == [7]
    with pytest.raises(Exception):  # noqa: B017 - the caller gets the error itself
        futures[7].result()
    with Session(engine) as s:
        result = audit.verify(s)
        assert result.ok and result.checked == 29


def test_record_joins_an_open_transaction_instead_of_waiting_for_it(engine: Engine) -> None:
    """A caller already holding the write lock must not wait for a writer that needs that lock."""
    with Session(engine) as s:
        make_child(s)  # the session now has a transaction open
        audit.record(s, actor=actor(), action="search")
        s.rollback()  # ... and the event shares its fate
    with Session(engine) as s:
        assert audit.verify(s).checked == 0


_WRITER = """
import sys
from concurrent.futures import ThreadPoolExecutor
from sqlmodel import Session
from directory import audit
from childindex import keys
from directory.db import make_engine
from childindex.settings import Settings
from tests.fixtures.builders import actor

keys.install(Settings())  # (the key files the test run named in the environment)
engine = make_engine(sys.argv[1])
name = sys.argv[2]

def look(i):
    with Session(engine) as s:
        audit.record(s, actor=actor(subject=f"{name}-{i}"), action="search", detail={"n": i})

with ThreadPoolExecutor(max_workers=8) as pool:
    list(pool.map(look, range(150)))
"""


def test_group_commits_of_several_processes_take_turns_on_one_chain(engine: Engine) -> None:
    """Three processes (as three server workers) audit at once into the same database: on SQLite
    they take turns through the lock file, on PostgreSQL through the advisory lock; every event
    lands once and the chain verifies."""
    import subprocess
    import sys
    from pathlib import Path

    url = engine.url.render_as_string(hide_password=False)
    root = Path(__file__).resolve().parents[2]
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, url, f"p{n}"], cwd=root, stderr=subprocess.PIPE)
        for n in range(3)
    ]
    for w in writers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err.decode()
    with Session(engine) as s:
        result = audit.verify(s)
        assert result.ok, result.problems
        assert result.checked == 450
        subjects = s.exec(sa.select(audit.AuditEvent.actor_subject)).scalars().all()
        assert sorted(subjects) == sorted(f"p{n}-{i}" for n in range(3) for i in range(150))
        # Each event is stamped once the chain is locked, so times never go back along the chain.
        times = s.exec(sa.select(audit.AuditEvent.at).order_by(audit.AuditEvent.seq)).scalars().all()
        assert times == sorted(times)
    if engine.dialect.name == "sqlite":
        assert Path(f"{engine.url.database}-audit.lock").exists()
