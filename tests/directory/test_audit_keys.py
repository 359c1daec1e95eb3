"""The audit chain cannot be quietly rewritten: keyed with HMAC-SHA256 (the key outside the
database) and anchored by checkpoints kept elsewhere. The attacks are those of someone with the
database owner's rights but not the audit key file."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from childindex.cli import app as cli
from directory import audit, keyfile
from directory.keyfile import KeyRing
from directory.models import AuditEvent, AuditHead, AuditSubject, utcnow
from tests.fixtures.builders import actor
from tests.fixtures.keys import own_keys, restore_run_keys

EVENTS = AuditEvent.__table__  # type: ignore[attr-defined]
HEAD = AuditHead.__table__  # type: ignore[attr-defined]
SUBJECTS = AuditSubject.__table__  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _run_keys_afterwards() -> Iterator[None]:
    yield
    restore_run_keys()


def _events(engine: Engine, n: int, *, who: str = "user") -> None:
    with Session(engine) as s:
        for i in range(n):
            audit.append(s, actor=actor(subject=f"{who}{i}"), action="child.read", detail={"i": i})
        s.commit()


def _verify(engine: Engine, **kw: object) -> audit.Verification:
    with Session(engine) as s:
        return audit.verify(s, **kw)  # type: ignore[arg-type]


def _as_owner(engine: Engine, work: Sequence[sa.Executable]) -> None:
    """Run statements as the database's owner may: with the append-only guard switched off."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")
        else:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_event_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_event_no_delete")
        for stmt in work:
            conn.execute(stmt)
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only")


def _rewrite_tail(engine: Engine, *, from_seq: int, subject: str, how: str) -> None:
    """Change every event from `from_seq` on, link the chain up again and move the head to its new
    end, computing each hash the only ways one can without the key: plain SHA-256 as the event
    stands ("sha256"), SHA-256 with the key id cleared ("unkeyed"), or an HMAC with a key of one's
    own under a made-up key id ("own-key")."""
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(EVENTS).order_by(EVENTS.c.seq))]
    prev = next((r["hash"] for r in rows if r["seq"] == from_seq - 1), audit.GENESIS)
    own = secrets.token_bytes(32)
    work: list[sa.Executable] = []
    for row in rows:
        if row["seq"] < from_seq:
            continue
        row["actor_subject"], row["prev_hash"] = subject, prev
        if how == "unkeyed" and "key_id" in row:
            row["key_id"] = None
        if how == "own-key" and "key_id" in row:
            row["key_id"] = "0badc0de"
            row["hash"] = hmac.new(own, audit._canonical(row), hashlib.sha256).hexdigest()
        else:
            row["hash"] = hashlib.sha256(audit._canonical(row)).hexdigest()
        prev = row["hash"]
        changed = {k: row[k] for k in ("actor_subject", "prev_hash", "hash", "key_id") if k in row}
        work.append(sa.update(EVENTS).where(EVENTS.c.seq == row["seq"]).values(changed))
    work.append(sa.update(HEAD).where(HEAD.c.id == 1).values(hash=prev))
    _as_owner(engine, work)


@pytest.mark.parametrize("how", ["sha256", "unkeyed", "own-key"])
def test_rewriting_the_tail_and_the_head_without_the_key_fails_verify(engine: Engine, how: str) -> None:
    _events(engine, 6)
    assert _verify(engine).ok
    _rewrite_tail(engine, from_seq=4, subject="someone-else", how=how)
    result = _verify(engine)
    assert not result.ok, "a rewritten tail and head passed verify"
    expected = {
        "sha256": "event 4 was changed after it was written",
        "unkeyed": "event 4 is not keyed though events before it are",
        "own-key": "signed with the audit key 0badc0de, which",
    }[how]
    assert any(expected in p for p in result.problems), result.problems


def test_cli_verify_fails_on_a_rewritten_tail(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    _events(engine, 3)
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "3 events verified" in ok.output and "HMAC-SHA256" in ok.output
    _rewrite_tail(engine, from_seq=2, subject="nobody", how="sha256")
    bad = runner.invoke(cli, ["audit", "verify"])
    assert bad.exit_code == 1, bad.output
    assert "event 2 was changed" in bad.output


def test_removing_the_newest_events_shows_against_a_checkpoint(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting the last events and moving the head back leaves a chain whose every HMAC holds; only
    a checkpoint kept elsewhere can tell. `audit checkpoint` also refuses to bless the shorter chain."""
    _events(engine, 5)
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    store = tmp_path / "checkpoints"
    runner = CliRunner()
    taken = runner.invoke(cli, ["audit", "checkpoint", "--to", str(store)])
    assert taken.exit_code == 0, taken.output
    assert "Checkpoint of event 6" in taken.output  # (the checkpoint's own event is event 6)
    assert json.loads((store / "audit-checkpoint-000000000006.json").read_text())["seq"] == 6
    assert runner.invoke(cli, ["audit", "verify", "--checkpoint", str(store)]).exit_code == 0

    with engine.connect() as conn:
        four = conn.execute(sa.select(EVENTS.c.hash).where(EVENTS.c.seq == 4)).scalar_one()
    _as_owner(
        engine,
        [
            sa.delete(SUBJECTS).where(SUBJECTS.c.seq > 4),
            sa.delete(EVENTS).where(EVENTS.c.seq > 4),
            sa.update(HEAD).where(HEAD.c.id == 1).values(seq=4, hash=four),
        ],
    )
    assert _verify(engine).ok  # what no chain alone can see ...
    bad = runner.invoke(cli, ["audit", "verify", "--checkpoint", str(store)])
    assert bad.exit_code == 1, bad.output  # ... the checkpoint does
    assert "events at the end were removed" in bad.output
    again = runner.invoke(cli, ["audit", "checkpoint", "--to", str(store)])
    assert again.exit_code == 1, again.output
    assert "no longer holds event 6" in again.output


def test_a_checkpoint_checks_rewrites_before_it_and_cannot_be_forged(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _events(engine, 4)
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    runner = CliRunner()
    file = tmp_path / "head.json"
    assert runner.invoke(cli, ["audit", "checkpoint", "--to", str(file)]).exit_code == 0
    forged = json.loads(file.read_text())
    forged["seq"] = 2
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(forged))
    untrusted = runner.invoke(cli, ["audit", "verify", "--checkpoint", str(altered)])
    assert untrusted.exit_code == 1
    assert "altered or not signed with the audit key" in untrusted.output
    _rewrite_tail(engine, from_seq=5, subject="x", how="own-key")  # (the checkpoint's own event)
    bad = runner.invoke(cli, ["audit", "verify", "--checkpoint", str(file)])
    assert bad.exit_code == 1
    assert "event 5 is not the one the checkpoint taken at" in bad.output


def _legacy_events(engine: Engine, n: int) -> None:
    """Events as the version before keys wrote them: plain SHA-256 and no key id."""
    prev, rows = audit.GENESIS, []
    for seq in range(1, n + 1):
        row = {
            "seq": seq,
            "at": utcnow(),
            "request_id": None,
            "actor_subject": f"old{seq}",
            "actor_role": "practitioner",
            "actor_organisation": None,
            "client_id": None,
            "purpose": None,
            "action": "child.read",
            "target_type": None,
            "target_id": None,
            "outcome": "success",
            "detail": None,
            "prev_hash": prev,
            "key_id": None,
        }
        row["hash"] = prev = audit.event_hash(row)
        rows.append(row)
    with engine.begin() as conn:
        conn.execute(sa.insert(EVENTS), rows)
        conn.execute(sa.insert(HEAD).values(id=1, seq=n, hash=prev))


def test_a_chain_written_before_keys_carries_on_keyed(engine: Engine) -> None:
    _legacy_events(engine, 3)
    never = _verify(engine)
    assert not never.ok and any("is not keyed" in p for p in never.problems)
    with Session(engine) as s:
        assert audit.key_chain(s, actor=actor(subject="cli:ops"))  # what migrate and serve do
        assert not audit.key_chain(s, actor=actor(subject="cli:ops"))  # (once)
        s.commit()
    _events(engine, 2)
    result = _verify(engine)
    assert result.ok, result.problems
    assert (result.checked, result.unkeyed, result.key_ids) == (6, 3, (audit.chain_keys().current_id,))


def test_the_unkeyed_start_cannot_be_extended_over_the_keyed_events(engine: Engine) -> None:
    """Rewriting every keyed event as unkeyed (as if the chain had never been keyed) fails, and so
    does rewriting an unkeyed event: the first keyed event's HMAC covers the link to it."""
    _legacy_events(engine, 3)
    with Session(engine) as s:
        audit.key_chain(s, actor=actor())
        s.commit()
    _events(engine, 2)
    _rewrite_tail(engine, from_seq=4, subject="x", how="unkeyed")
    result = _verify(engine)
    assert any("last event (6) is not keyed" in p for p in result.problems), result.problems


def test_rewriting_the_unkeyed_start_breaks_the_first_keyed_link(engine: Engine) -> None:
    _legacy_events(engine, 3)
    with Session(engine) as s:
        audit.key_chain(s, actor=actor())
        s.commit()
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(EVENTS).where(EVENTS.c.seq <= 3))]
    prev, work = rows[0]["hash"], []
    for row in rows[1:]:
        row["actor_subject"], row["prev_hash"] = "x", prev
        row["hash"] = prev = audit.event_hash(row)
        work.append(sa.update(EVENTS).where(EVENTS.c.seq == row["seq"]).values(row))
    _as_owner(engine, work)
    result = _verify(engine)
    assert any("event 4 does not follow" in p for p in result.problems), result.problems


def test_rotating_the_audit_key_keeps_old_events_verifiable(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with own_keys(tmp_path) as settings:
        _events(engine, 2)
        before = audit.chain_keys().current_id
        monkeypatch.setenv("CHILDINDEX_AUDIT_KEY_FILE", str(settings.audit_key_file))
        monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
        rotated = CliRunner().invoke(cli, ["audit", "rotate-key"])
        assert rotated.exit_code == 0, rotated.output
        after = audit.chain_keys().current_id
        assert after != before
        _events(engine, 2)
        result = _verify(engine)
        assert result.ok, result.problems
        assert result.key_ids == (before, after)
        with engine.connect() as conn:
            used = conn.execute(sa.select(EVENTS.c.key_id).order_by(EVENTS.c.seq)).scalars().all()
        assert used == [before, before, after, after, after]  # (the rotation's own event: the new key)
        # Lose the old key, and its events can no longer be checked.
        only_new = audit.ChainKeys(KeyRing("audit", "(new key only)", audit.chain_keys().ring.keys[-1:]))
        lost = _verify(engine, keys=only_new)
        assert not lost.ok
        assert any(f"2 event(s) are signed with the audit key {before}" in p for p in lost.problems)


def test_no_audit_key_no_event(engine: Engine) -> None:
    audit.use_keys(None)
    audit.load_keys_with(None)
    with Session(engine) as s, pytest.raises(audit.AuditKeyMissing, match="CHILDINDEX_AUDIT_KEY_FILE"):
        audit.append(s, actor=actor(), action="child.read")


def test_a_process_verifies_events_signed_with_a_key_added_after_it_started(
    engine: Engine, tmp_path: Path
) -> None:
    """A server started before `audit rotate-key` (its keys loaded then) reads the key file again
    when it meets the new key, rather than calling the rotation's events unverifiable."""
    with own_keys(tmp_path):
        _events(engine, 1)
        loaded = audit.chain_keys()
        audit.use_keys(keyfile.add_key(loaded.ring))  # (as `audit rotate-key` in another process)
        _events(engine, 1)
        result = _verify(engine, keys=loaded)
        assert result.ok, result.problems
        assert len(result.key_ids) == 2
