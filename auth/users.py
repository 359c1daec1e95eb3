"""Local accounts: argon2id passwords plus a TOTP second factor; lock-out per address (auth/lockout.py)."""

from __future__ import annotations

import uuid
from datetime import datetime

import pyotp
from sqlmodel import Session, select

from auth import lockout
from auth.clients import _DUMMY_HASH, hash_secret, verify_secret
from auth.models import LocalUser
from directory.models import utcnow


class SignInFailed(Exception):
    """Sign-in refused; the message is safe to show (it never says which factor was wrong)."""


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    display_name: str,
    organisation: str | None = None,
    practitioner_id: uuid.UUID | None = None,
    totp_secret: str | None = None,
) -> LocalUser:
    """A local account with a fresh TOTP secret (returned on the row, to enrol an authenticator)."""
    user = LocalUser(
        username=username,
        password_hash=hash_secret(password),
        totp_secret=totp_secret or pyotp.random_base32(),
        display_name=display_name,
        organisation=organisation,
        practitioner_id=practitioner_id,
    )
    session.add(user)
    session.flush()
    return user


def provisioning_uri(user: LocalUser, issuer_name: str = "childindex") -> str:
    """The otpauth:// URI an authenticator app scans."""
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.username, issuer_name=issuer_name)


def _totp_step(user: LocalUser, code: str, now: datetime) -> int | None:
    totp = pyotp.TOTP(user.totp_secret)
    step = totp.timecode(now)
    for offset in (0, -1, 1):  # one step of clock drift either way
        if pyotp.utils.strings_equal(totp.generate_otp(step + offset), code.strip()):
            return step + offset
    return None


def sign_in(
    session: Session,
    *,
    username: str,
    password: str,
    totp_code: str,
    source: str,
    now: datetime | None = None,
) -> LocalUser:
    """Check password and TOTP (each code good once) from the `source` address; count failures
    per account and address, and lock that address out (see auth/lockout.py)."""
    now = now or utcnow()
    refused = SignInFailed("The username, password or code is not right, or the account is locked.")
    user = session.exec(select(LocalUser).where(LocalUser.username == username)).first()
    if user is None:
        verify_secret(_DUMMY_HASH, password)  # same cost as a real check
        raise refused
    if not user.active or (user.locked_until is not None and user.locked_until > now):
        raise refused
    gate = lockout.gate(session, username=user.username, source=source, now=now)
    if not gate.open:
        verify_secret(_DUMMY_HASH, password)  # same cost, and no hint of whether it was right
        raise refused
    step = _totp_step(user, totp_code, now)
    if not verify_secret(user.password_hash, password) or step is None or step <= user.totp_last_step:
        lockout.failed(session, gate, now=now)
        raise refused
    lockout.succeeded(session, gate, now=now)
    user.totp_last_step = step
    user.last_login_at = now
    session.add(user)
    session.flush()
    return user


MIN_PASSWORD = 12  # characters: the one rule for a new password (the CLI and the enrolment page)


def find_user(session: Session, username: str) -> LocalUser | None:
    """The local account with exactly this username, if there is one."""
    return session.exec(select(LocalUser).where(LocalUser.username == username)).first()


def password_problem(password: str | None, again: str | None) -> str | None:
    """Why a new password (typed twice) cannot be used, in words a person can act on; None when it can."""
    if not password:
        return "Enter a password"
    if len(password) < MIN_PASSWORD:
        return f"The password must be at least {MIN_PASSWORD} characters long"
    if password != again:
        return "The two passwords are not the same: type the same password twice"
    return None


def enrol(
    session: Session, user: LocalUser, *, password: str, totp_code: str, now: datetime | None = None
) -> bool:
    """Finish enrolment: the code proves the authenticator app holds the secret, then the person's own
    password replaces the unusable one the account was created with. False (nothing changed) when
    the code is not right. The code is then used up, like a code at sign-in."""
    now = now or utcnow()
    step = _totp_step(user, totp_code, now)
    if step is None or step <= user.totp_last_step:
        return False
    user.password_hash = hash_secret(password)
    user.totp_last_step = step
    session.add(user)
    session.flush()
    return True
