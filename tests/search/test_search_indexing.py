"""The outbox indexer is idempotent and resumable; reindex rebuilds from the database."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from childindex.cli import app as cli
from directory import service
from directory.models import Role, ShieldSet
from search.embedded import EmbeddedBackend
from search.indexer import drain, pending
from search.matching import MatchingEngine
from search.port import SearchQuery
from tests.fixtures.builders import actor, make_child

DOB = date.today() - timedelta(days=365 * 5)


def _children(engine: Engine, n: int) -> list[str]:
    with Session(engine) as s:
        ids = [
            make_child(
                s,
                names=[{"given": f"Child{i}", "family": "Ashworth"}],
                date_of_birth=(DOB - timedelta(days=i)).isoformat(),
            ).hex
            for i in range(n)
        ]
        s.commit()
    return ids


def test_a_crash_mid_run_loses_nothing(engine: Engine) -> None:
    backend = EmbeddedBackend(engine)
    backend.ensure_ready()
    ids = _children(engine, 7)
    # "Crash" after the first batch of 3: the rest stays pending and is picked up next run.
    assert drain(engine, backend, batch=3, max_batches=1, wait=True) == 3
    assert pending(engine) == 4
    assert drain(engine, backend, batch=3, wait=True) == 4
    assert backend.count() == 7 and pending(engine) == 0
    # Replaying everything (a crash after the backend write but before the mark) changes nothing.
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE outbox SET processed_at = NULL"))
    drain(engine, backend, wait=True)
    assert backend.count() == 7
    found = MatchingEngine(backend).search(
        SearchQuery(given="Child3", family="Ashworth", birth_date=DOB - timedelta(days=3))
    )
    assert found.matches[0].child_id == ids[3]


def test_shielding_and_archiving_reach_the_index(engine: Engine) -> None:
    backend = EmbeddedBackend(engine)
    backend.ensure_ready()
    ids = _children(engine, 2)
    drain(engine, backend, wait=True)
    with Session(engine) as s:
        import uuid

        service.set_shield(
            s,
            actor=actor(Role.DESIGNATED_PRACTITIONER),
            child_id=uuid.UUID(hex=ids[0]),
            data=ShieldSet(reason="refuge"),
        )
        service.merge_children(
            s,
            actor=actor(Role.DIRECTORY_ADMIN),
            duplicate_id=uuid.UUID(hex=ids[1]),
            into_id=uuid.UUID(hex=ids[0]),
        )
        s.commit()
    drain(engine, backend, wait=True)
    assert backend.count() == 1
    (record,) = backend.by_identifier(*_nhs_of(engine, ids[0]))
    assert record.shielded and record.postcodes == ()


def _nhs_of(engine: Engine, child_hex: str) -> tuple[str, str]:
    with engine.connect() as conn:
        value = (
            conn.execute(sa.text("SELECT value FROM child_identifier WHERE system = 'nhs'")).scalars().all()
        )
    import uuid

    with Session(engine) as s:
        from directory import repository as repo

        idents = repo.child_identifiers(s, uuid.UUID(hex=child_hex))
    assert value
    return ("nhs", next(i.value for i in idents if i.system == "nhs"))


def test_reindex_command_rebuilds_from_the_database(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    _children(engine, 5)
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CHILDINDEX_SEARCH_BACKEND", "embedded")
    result = CliRunner().invoke(cli, ["reindex", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert "Indexed 5 children" in result.output
    backend = EmbeddedBackend(engine)
    assert backend.count() == 5 and pending(engine) == 0


def test_migration_0011_queues_every_shielded_child_for_the_indexer(engine: Engine) -> None:
    """An index built before shielded children were keyed by their official name alone is
    brought in line: the migration queues each shielded child, and only those, for the indexer."""
    from alembic import command

    from childindex.migrations import alembic_config, upgrade

    ids = _children(engine, 3)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE child SET shielded = :yes"), {"yes": False})
        conn.execute(sa.text("DELETE FROM outbox"))
    with Session(engine) as s:
        import uuid

        service.set_shield(
            s,
            actor=actor(Role.DESIGNATED_PRACTITIONER),
            child_id=uuid.UUID(hex=ids[1]),
            data=ShieldSet(reason="adopted"),
        )
        s.commit()
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM outbox"))
    command.downgrade(alembic_config(engine), "0010")
    upgrade(engine)
    with engine.connect() as conn:
        queued = conn.execute(sa.text("SELECT topic, entity_id FROM outbox")).all()
    assert [(topic, entity) for topic, entity in queued] == [("child", ids[1])]
