"""Secrets at rest: signing keys, TOTP secrets and webhook secrets are encrypted in the database
with the secrets key (kept outside it), rotate to a new key, and fail clearly without their key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from auth import keys as signing_keys
from auth.models import LocalUser, SigningKey
from auth.users import sign_in
from childindex import keys
from childindex.cli import app as cli
from directory import keyfile, sealed
from directory.db import unit_of_work
from directory.models import AuditEvent, Notification, Subscription
from interop import notify
from tests.fixtures.auth_builders import PASSWORD, make_user
from tests.fixtures.builders import actor
from tests.fixtures.keys import own_keys, restore_run_keys

TOTP = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
HOOK_SECRET = "hook-secret-3f9a1c"


@pytest.fixture(autouse=True)
def _run_keys_afterwards() -> Iterator[None]:
    yield
    restore_run_keys()


def _secrets(engine: Engine) -> tuple[str, str]:
    """One of each secret, written as the service writes them; returns the signing key's kid and
    its private part ("d")."""
    with unit_of_work(engine) as s:
        make_user(s, "sam", totp_secret=TOTP)
        row = signing_keys.rotate(s, alg="ES256")
        notify.subscribe(
            s,
            owner="trust",
            endpoint="https://hooks.example/ci",
            events=["caf-signalled"],
            secret=HOOK_SECRET,
        )
        return row.kid, json.loads(row.private_jwk)["d"]


def _raw(engine: Engine, sql: str) -> list[str]:
    with engine.connect() as conn:
        return [str(v) for v in conn.exec_driver_sql(sql).scalars().all()]


def test_secrets_are_not_stored_in_plain_text(engine: Engine) -> None:
    kid, d = _secrets(engine)
    stored = {
        "totp": _raw(engine, "SELECT totp_secret FROM local_user"),
        "jwk": _raw(engine, "SELECT private_jwk FROM signing_key"),
        "hook": _raw(engine, "SELECT secret FROM subscription"),
    }
    for name, secret in (("totp", TOTP), ("jwk", d), ("hook", HOOK_SECRET)):
        [value] = stored[name]
        assert secret not in value, f"the {name} secret is stored in plain text"
        assert value.startswith(f"v1:{sealed.sealer().current_id}:")
    # ... and the service still reads them as they were.
    with Session(engine) as s:
        assert s.exec(select(LocalUser.totp_secret)).one() == TOTP
        assert s.exec(select(Subscription.secret)).one() == HOOK_SECRET
        assert json.loads(s.get(SigningKey, kid).private_jwk)["d"] == d  # type: ignore[union-attr]


def test_the_service_signs_in_signs_tokens_and_webhooks_with_sealed_secrets(engine: Engine) -> None:
    kid, _ = _secrets(engine)
    with unit_of_work(engine) as s:
        assert (
            sign_in(
                s, username="sam", password=PASSWORD, totp_code=pyotp.TOTP(TOTP).now(), source="127.0.0.1"
            ).username
            == "sam"
        )
    store = signing_keys.KeyStore(engine, alg="ES256", max_age_days=90)
    assert store.current()[0] == kid
    with Session(engine) as s:
        sub = s.exec(select(Subscription)).one()
    note = Notification(id=1, subscription_id=sub.id, audit_seq=1, event="caf-signalled", payload="{}")
    raw, headers = notify._request(sub, note, "")
    assert headers[notify.SIGNATURE_HEADER] == notify.sign(HOOK_SECRET, headers[notify.TIMESTAMP_HEADER], raw)


def test_rotation_keeps_every_secret_readable_and_drops_the_old_key(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with own_keys(tmp_path) as settings:
        kid, d = _secrets(engine)
        old = sealed.sealer().current_id
        monkeypatch.setenv("CHILDINDEX_SECRETS_KEY_FILE", str(settings.secrets_key_file))
        monkeypatch.setenv("CHILDINDEX_AUDIT_KEY_FILE", str(settings.audit_key_file))
        monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
        done = CliRunner().invoke(cli, ["secrets", "rotate", "--drop-old"])
        assert done.exit_code == 0, done.output
        new = sealed.sealer().current_id
        assert new != old and f"new key {new}: 3 value(s)" in done.output
        ring = keyfile.read(str(settings.secrets_key_file), "secrets")
        assert ring.ids == [new]  # the old key is gone from the file ...
        for sql in (
            "SELECT totp_secret FROM local_user",
            "SELECT private_jwk FROM signing_key",
            "SELECT secret FROM subscription",
        ):
            assert [v.split(":")[1] for v in _raw(engine, sql)] == [new]  # ... as no secret needs it
        # A process that loads the key file afresh reads every secret, and the service works on.
        restore_run_keys()
        keys.install(settings)
        with Session(engine) as s:
            assert s.exec(select(LocalUser.totp_secret)).one() == TOTP
            assert s.exec(select(Subscription.secret)).one() == HOOK_SECRET
            assert json.loads(s.get(SigningKey, kid).private_jwk)["d"] == d  # type: ignore[union-attr]
        with unit_of_work(engine) as s:
            sign_in(
                s, username="sam", password=PASSWORD, totp_code=pyotp.TOTP(TOTP).now(), source="127.0.0.1"
            )
        with Session(engine) as s:
            logged = s.exec(select(AuditEvent).where(AuditEvent.action == "secrets.rotate")).one()
        assert json.loads(logged.detail or "{}") == {"dropped": [old], "key_id": new, "resealed": 3}


def test_a_running_process_reads_secrets_sealed_under_a_key_added_elsewhere(
    engine: Engine, tmp_path: Path
) -> None:
    with own_keys(tmp_path) as settings:
        box = sealed.sealer()
        assert isinstance(box, keys.AesGcmSealer)
        newer = keyfile.add_key(box.ring)  # as `secrets rotate` in another process does
        other = keys.AesGcmSealer(newer)
        stored = other.seal(TOTP, context="local_user.totp_secret")
        assert box.open(stored, context="local_user.totp_secret") == TOTP  # (re-reads the file)
        assert box.current_id == newer.current_id  # and seals with the new key from now on
        assert settings.secrets_key_file


def test_plain_secrets_from_before_are_refused_until_sealed(engine: Engine) -> None:
    """A plain value (left by the version before, or planted in the database) is not trusted; migrate
    and serve seal what the version before left."""
    with unit_of_work(engine) as s:
        user = make_user(s, "sam")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE local_user SET totp_secret = :t"), {"t": TOTP})
    with Session(engine) as s, pytest.raises(sealed.SecretsUnavailable, match="stored in plain text"):
        s.exec(select(LocalUser.totp_secret)).one()
    done = keys.bring_up_to_date(engine, actor=actor(subject="cli:ops"))
    assert done.sealed == 1
    assert TOTP not in _raw(engine, "SELECT totp_secret FROM local_user")[0]
    with Session(engine) as s:
        assert s.get(LocalUser, user.id).totp_secret == TOTP  # type: ignore[union-attr]
    assert keys.bring_up_to_date(engine, actor=actor()).sealed == 0


def test_a_missing_key_is_a_clear_error(engine: Engine, tmp_path: Path) -> None:
    _secrets(engine)
    with Session(engine) as s:
        user_id = s.exec(select(LocalUser.id)).one()
    # The key file lost the key the secrets were sealed with (a fresh one was made instead):
    stranger = keyfile.generate(tmp_path / "other.key", "secrets")
    sealed.use_sealer(keys.AesGcmSealer(stranger))
    with Session(engine) as s, pytest.raises(sealed.SecretsUnavailable) as lost:
        s.get(LocalUser, user_id)
    assert f"which {stranger.path} does not hold: restore that key" in str(lost.value)
    # No secrets key loaded at all:
    sealed.use_sealer(None)
    sealed.load_sealer_with(None)
    with Session(engine) as s, pytest.raises(sealed.SecretsUnavailable, match="CHILDINDEX_SECRETS_KEY_FILE"):
        s.get(LocalUser, user_id)


def test_a_sealed_secret_copied_to_another_column_does_not_open(engine: Engine) -> None:
    _secrets(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE local_user SET totp_secret = (SELECT secret FROM subscription)")
    with Session(engine) as s, pytest.raises(sealed.SecretsUnavailable, match="altered or copied"):
        s.exec(select(LocalUser.totp_secret)).one()
