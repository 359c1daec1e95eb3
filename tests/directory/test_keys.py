"""Key files: production refuses to start without them and says how to make them; development and
the demo make their own; an upgrade from the version before seals its secrets and keys its chain."""

from __future__ import annotations

import json
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from auth.models import LocalUser
from auth.users import create_user
from childindex import keys
from childindex.app import create_app
from childindex.cli import app as cli
from childindex.migrations import upgrade
from childindex.settings import Settings
from directory import audit, keyfile
from directory.db import make_engine, unit_of_work
from directory.models import AuditEvent, AuditHead, Subscription, UTCDateTime, utcnow
from tests.conftest import POSTGRES_URL, need_service
from tests.fixtures.keys import restore_run_keys

TOTP = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture(autouse=True)
def _run_keys_afterwards() -> Iterator[None]:
    yield
    restore_run_keys()


def test_production_refuses_to_start_without_key_files() -> None:
    settings = Settings(
        environment="production", database_url="sqlite://", audit_key_file=None, secrets_key_file=None
    )
    with pytest.raises(keys.KeysMissing) as refused:
        create_app(settings)
    message = str(refused.value)
    for hint in (
        "CHILDINDEX_AUDIT_KEY_FILE is not set",
        "`childindex keys generate audit /etc/childindex/audit.key`",
        "CHILDINDEX_SECRETS_KEY_FILE is not set",
        "`childindex keys generate secrets /etc/childindex/secrets.key`",
    ):
        assert hint in message


def test_serve_stops_before_starting_without_key_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHILDINDEX_ENVIRONMENT", "production")
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", f"sqlite:///{tmp_path}/c.db")
    monkeypatch.setenv("CHILDINDEX_SECRETS_KEY_FILE", str(tmp_path / "missing.key"))
    monkeypatch.delenv("CHILDINDEX_AUDIT_KEY_FILE")
    result = CliRunner().invoke(cli, ["serve"], terminal_width=400)
    assert result.exit_code == 1, result.output
    assert "Not started: CHILDINDEX_AUDIT_KEY_FILE is not set" in result.output
    assert f"{tmp_path / 'missing.key'} does not exist: make one with `childindex keys generate secrets" in (
        result.output
    )
    assert not (tmp_path / "c.db").exists()  # (stopped before touching the database)


def test_a_key_file_of_the_other_kind_is_refused(tmp_path: Path) -> None:
    audit_key = keyfile.generate(tmp_path / "audit.key", "audit")
    settings = Settings(audit_key_file=audit_key.path, secrets_key_file=audit_key.path)
    with pytest.raises(keys.KeysMissing, match="is not a secrets key file"):
        keys.install(settings)


def test_development_makes_its_key_files_under_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        environment="development", database_url="sqlite://", audit_key_file=None, secrets_key_file=None
    )
    engine = make_engine(f"sqlite:///{tmp_path}/dev.db")
    upgrade(engine)
    with TestClient(create_app(settings, engine=engine)) as client:
        assert client.get("/healthz").status_code == 200
    made = {p: keyfile.read(tmp_path / "var" / f"{p}.key", p) for p in keyfile.PURPOSES}
    for ring in made.values():
        assert stat.S_IMODE(Path(ring.path).stat().st_mode) == 0o600
    assert audit.chain_keys().current_id == made["audit"].current_id
    with unit_of_work(engine) as s:
        create_user(s, username="dev", password="x", display_name="Dev", totp_secret=TOTP)
    create_app(settings, engine=engine)  # a second start uses the same files
    with Session(engine) as s:
        assert s.exec(select(LocalUser.totp_secret)).one() == TOTP


def test_keys_generate_makes_a_private_file_and_never_overwrites(tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "etc" / "audit.key"
    made = runner.invoke(cli, ["keys", "generate", "audit", str(path)], terminal_width=400)
    assert made.exit_code == 0, made.output
    assert f"CHILDINDEX_AUDIT_KEY_FILE={path}" in made.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_text()
    again = runner.invoke(cli, ["keys", "generate", "audit", str(path)], terminal_width=400)
    assert again.exit_code == 1 and "never overwritten" in again.output
    assert path.read_text() == before
    assert runner.invoke(cli, ["keys", "generate", "other", str(tmp_path / "x")]).exit_code == 2


@pytest.fixture(params=["sqlite", "postgres"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database at the version before keys (revision 0006): a SQLite file, or a schema of
    its own on the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/old.db"
        return
    if not POSTGRES_URL:
        need_service("PostgreSQL", "CHILDINDEX_TEST_POSTGRES_URL")
    schema = f"before_keys_{uuid.uuid4().hex[:8]}"
    admin = make_engine(POSTGRES_URL or "")
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def _as_before(engine: Engine) -> None:
    """What the version before left: plain secrets, and a chain of plain SHA-256 events."""
    now = utcnow()
    plain = sa.String()
    with engine.begin() as conn:
        conn.execute(
            sa.insert(LocalUser.__table__).values(  # type: ignore[attr-defined]
                id=uuid.uuid4(),
                username="old",
                password_hash="x",
                totp_secret=sa.bindparam(None, TOTP, type_=plain),
                totp_last_step=0,
                display_name="Old",
                active=True,
                failed_logins=0,
                created_at=now,
            )
        )
        # the columns the version before had (the model's own table has columns added since)
        then = sa.table(
            "subscription",
            *(sa.column(c) for c in ("owner", "endpoint", "kind", "events", "secret", "status")),
            sa.column("id", sa.Uuid()),
            sa.column("created_at", UTCDateTime()),
        )
        conn.execute(
            sa.insert(then).values(
                id=uuid.uuid4(),
                owner="trust",
                endpoint="https://hooks.example/x",
                kind="webhook",
                events="caf-signalled",
                secret=sa.bindparam(None, "old-hook-secret", type_=plain),
                status="active",
                created_at=now,
            )
        )
        conn.exec_driver_sql(
            "INSERT INTO signing_key (kid, alg, private_jwk, created_at) VALUES (%s, %s, %s, %s)"
            if engine.dialect.name == "postgresql"
            else "INSERT INTO signing_key (kid, alg, private_jwk, created_at) VALUES (?, ?, ?, ?)",
            (
                "old-kid",
                "ES256",
                json.dumps({"kty": "EC", "d": "old-private-part"}),
                now.replace(tzinfo=None),
            ),
        )
        prev = audit.GENESIS
        for seq in (1, 2, 3):
            row = {
                "seq": seq,
                "at": now,
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
            }
            row["hash"] = prev = audit.event_hash({**row, "key_id": None})
            conn.execute(sa.insert(AuditEvent.__table__).values(row))  # type: ignore[attr-defined]
        conn.execute(sa.insert(AuditHead.__table__).values(id=1, seq=3, hash=prev))  # type: ignore[attr-defined]


def test_migrate_seals_the_secrets_and_keys_the_chain_of_the_version_before(
    old_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(old_database)
    upgrade(engine, "0006")
    _as_before(engine)
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", old_database)
    runner = CliRunner()
    migrated = runner.invoke(cli, ["migrate"], terminal_width=400)
    assert migrated.exit_code == 0, migrated.output
    assert "3 secret(s) stored in plain text are now encrypted" in migrated.output
    assert "The audit chain is keyed from now on" in migrated.output
    with engine.connect() as conn:
        stored = [
            conn.exec_driver_sql(f"SELECT {column} FROM {table}").scalar_one()
            for table, column in (
                ("local_user", "totp_secret"),
                ("subscription", "secret"),
                ("signing_key", "private_jwk"),
            )
        ]
    assert all(v.startswith("v1:") for v in stored)
    if engine.dialect.name == "postgresql":  # (widened for the sealed values; SQLite has no limit)
        widths = sa.inspect(engine).get_columns("local_user") + sa.inspect(engine).get_columns("subscription")
        lengths = {c["name"]: getattr(c["type"], "length", 0) for c in widths}
        assert lengths["totp_secret"] is None and lengths["secret"] is None
    assert not any(secret in v for v in stored for secret in (TOTP, "old-hook-secret", "old-private-part"))
    with Session(engine) as s:
        assert s.exec(select(LocalUser.totp_secret)).one() == TOTP
        assert s.exec(select(Subscription.secret)).one() == "old-hook-secret"
    verified = runner.invoke(cli, ["audit", "verify"], terminal_width=400)
    assert verified.exit_code == 0, verified.output
    assert "5 events verified" in verified.output  # 3 before, then the keying and the sealing
    assert "The first 3 event(s) were written before the chain was keyed" in verified.output
    again = runner.invoke(cli, ["migrate"], terminal_width=400)
    assert again.exit_code == 0 and "encrypted" not in again.output and "keyed" not in again.output
    engine.dispose()


def test_a_key_file_others_can_read_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    made = {p: keyfile.generate(tmp_path / f"{p}.key", p) for p in keyfile.PURPOSES}
    Path(made["secrets"].path).chmod(0o644)
    with caplog.at_level("WARNING", logger="childindex.keys"):
        keys.install(Settings(audit_key_file=made["audit"].path, secrets_key_file=made["secrets"].path))
    assert [r.getMessage() for r in caplog.records] == [
        f"the secrets key file {made['secrets'].path} can be read by others than its owner: chmod 600 it"
    ]


def test_a_key_file_only_the_services_own_group_can_read_is_not_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """0440/0640 with the file's group one the process is in (a Kubernetes pod's fsGroup, as
    deploy/k8s mounts the key Secret) is the service's own: no warning. Any account: warned."""
    made = {p: keyfile.generate(tmp_path / f"{p}.key", p) for p in keyfile.PURPOSES}
    for ring in made.values():
        Path(ring.path).chmod(0o440)
    settings = Settings(audit_key_file=made["audit"].path, secrets_key_file=made["secrets"].path)
    with caplog.at_level("WARNING", logger="childindex.keys"):
        keys.install(settings)
    assert caplog.records == []
    Path(made["audit"].path).chmod(0o444)
    with caplog.at_level("WARNING", logger="childindex.keys"):
        keys.install(settings)
    assert [r.getMessage() for r in caplog.records] == [
        f"the audit key file {made['audit'].path} can be read by others than its owner: chmod 600 it"
    ]
