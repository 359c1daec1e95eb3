"""The hash-chained audit log: append-only, verifiable, and 'who looked at this child'."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session
from typer.testing import CliRunner

from directory import audit
from directory.cli import app as cli
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
