"""`childindex users ...`: accounts are created with a TOTP enrolment link, disabled and enabled, audited."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select
from typer.testing import CliRunner

from auth.models import LocalUser
from auth.users import SignInFailed, sign_in
from childindex.cli import app as cli
from directory.db import unit_of_work
from directory.models import utcnow

runner = CliRunner()
PASSWORD = "a long enough passphrase"


@pytest.fixture
def db_env(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Point the CLI at the test database."""
    monkeypatch.setenv("CHILDINDEX_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CHILDINDEX_NEW_USER_PASSWORD", PASSWORD)
    return engine


def test_create_disable_enable(db_env: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    r = runner.invoke(
        cli, ["users", "create", "sam.senco", "--name", "Sam Senco", "--organisation", "Cowley"]
    )
    assert r.exit_code == 0, r.output
    assert "otpauth://totp/" in r.output
    again = runner.invoke(cli, ["users", "create", "sam.senco", "--name", "Sam"])
    assert again.exit_code == 1 and "already exists" in again.output
    with unit_of_work(db_env) as s:
        secret = s.exec(select(LocalUser).where(LocalUser.username == "sam.senco")).one().totp_secret

    def try_sign_in(minutes: int) -> None:
        at = utcnow() + timedelta(minutes=minutes)  # a fresh TOTP step each time
        with unit_of_work(db_env) as s:
            code = pyotp.TOTP(secret).at(at)
            sign_in(s, username="sam.senco", password=PASSWORD, totp_code=code, source="192.0.2.1", now=at)

    try_sign_in(1)
    assert runner.invoke(cli, ["users", "disable", "sam.senco"]).exit_code == 0
    with pytest.raises(SignInFailed):
        try_sign_in(2)
    assert runner.invoke(cli, ["users", "enable", "sam.senco"]).exit_code == 0
    try_sign_in(3)
    assert runner.invoke(cli, ["users", "disable", "nobody"]).exit_code == 1
    with db_env.connect() as conn:
        actions = (
            conn.execute(sa.text("SELECT action FROM audit_event WHERE target_type = 'user'")).scalars().all()
        )
    assert actions == ["user.create", "user.disable", "user.enable"]


def test_short_password_creates_nothing(db_env: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHILDINDEX_NEW_USER_PASSWORD", "short")
    r = runner.invoke(cli, ["users", "create", "pat", "--name", "Pat"])
    assert r.exit_code == 1 and "12 characters" in r.output
    with db_env.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM local_user")).scalar_one() == 0


@pytest.mark.parametrize("username", ["sam\u202eocnes", "sam senco", "s\u0430m", "sam\x00"])
def test_usernames_are_safe_subjects(db_env: Engine, username: str) -> None:
    """A username becomes a grant's subject: the same safe characters."""
    r = runner.invoke(cli, ["users", "create", username, "--name", "Sam"])
    assert r.exit_code == 1 and "Nothing created" in r.output
    with db_env.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM local_user")).scalar_one() == 0


def test_unlock_lifts_a_lock_out(db_env: Engine) -> None:
    assert runner.invoke(cli, ["users", "create", "sam.senco", "--name", "Sam Senco"]).exit_code == 0
    with unit_of_work(db_env) as s:
        secret = s.exec(select(LocalUser).where(LocalUser.username == "sam.senco")).one().totp_secret
    start = utcnow()

    def attempt(minutes: int, password: str = PASSWORD, source: str = "198.51.100.7") -> None:
        at = start + timedelta(minutes=minutes)
        with unit_of_work(db_env) as s:
            code = pyotp.TOTP(secret).at(at)
            try:
                sign_in(s, username="sam.senco", password=password, totp_code=code, source=source, now=at)
            except SignInFailed:
                s.commit()  # the failure is counted, as the sign-in page does
                raise

    for minute in range(5):
        with pytest.raises(SignInFailed):
            attempt(minute, "wrong")
    with pytest.raises(SignInFailed):
        attempt(6)  # locked from that address
    assert runner.invoke(cli, ["users", "unlock", "sam.senco", "--source", "198.51.100.7"]).exit_code == 0
    attempt(7)
    assert runner.invoke(cli, ["users", "unlock", "nobody"]).exit_code == 1
    with db_env.connect() as conn:
        actions = conn.execute(sa.text("SELECT action FROM audit_event WHERE action LIKE '%lock%'")).scalars()
        assert list(actions) == ["alert.signin.locked", "user.unlock"]
