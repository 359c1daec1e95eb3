"""Lock-out per account and source: failed sign-ins lock one address out of one account.

Counting failures per account let anyone lock anyone out: five wrong passwords for a colleague's
username and they could not work for 15 minutes. So failures are counted per (account, source
address) (see auth/source.py for how the address is found behind a proxy): five in a row from one
address lock that account from that address only, for 15 minutes, with an audit alert
(`alert.signin.locked`); the person at their own desk still signs in.

Many addresses failing for one account is a distributed guess at its password (and a TOTP code).
Each address could otherwise try five times every 15 minutes, so a thousand addresses would make
thousands of guesses. When failures come from `MANY_SOURCES` addresses the account has never been
signed in from (in the last `FAMILIAR_FOR`) within 15 minutes, an alert is raised
(`alert.signin.many-sources`) and, until those failures are 15 minutes old, no further unfamiliar
address may try: its attempts are refused without checking the password. Addresses the account
has signed in from before are unaffected, so the genuine user keeps signing in from where they
usually do; someone on a new network during an attack waits 15 minutes or asks an administrator.
Refusing rather than slowing down: a deliberately slow answer would hold a request thread that
other people's requests need.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from auth.actors import audit_actor
from auth.models import SignInSource
from directory import audit

LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=15)
MANY_SOURCES = 4
FAMILIAR_FOR = timedelta(days=90)


@dataclass
class Gate:
    """Whether this address may try this account now, and its record."""

    row: SignInSource
    open: bool
    familiar: bool


def _familiar(row: SignInSource, now: datetime) -> bool:
    return row.last_success_at is not None and row.last_success_at > now - FAMILIAR_FOR


def _failing_recently(row: SignInSource, now: datetime) -> bool:
    return row.last_failure_at is not None and row.last_failure_at > now - LOCK_FOR


def _strangers_failing(session: Session, username: str, source: str, now: datetime) -> int:
    """Other addresses, not the account's familiar ones, that failed in the last LOCK_FOR."""
    recent = now - LOCK_FOR
    familiar_since = now - FAMILIAR_FOR
    last_success = col(SignInSource.last_success_at)
    statement = select(func.count()).where(
        col(SignInSource.username) == username,
        col(SignInSource.source) != source,
        col(SignInSource.last_failure_at) > recent,
        sa.or_(last_success.is_(None), last_success <= familiar_since),
    )
    return int(session.exec(statement).one())


def gate(session: Session, *, username: str, source: str, now: datetime) -> Gate:
    """May `source` try to sign in as `username` now? (Refused tries are not counted.)"""
    row = session.get(SignInSource, (username, source))
    if row is None:
        row = SignInSource(username=username, source=source)
    familiar = _familiar(row, now)
    if row.locked_until is not None and row.locked_until > now:
        return Gate(row, False, familiar)
    if familiar or _failing_recently(row, now):
        return Gate(row, True, familiar)
    # A new address joining many failing ones: refused until theirs are LOCK_FOR old.
    return Gate(row, _strangers_failing(session, username, source, now) < MANY_SOURCES, familiar)


def failed(session: Session, g: Gate, *, now: datetime) -> None:
    """Count a failure from this address; lock it out after LOCK_AFTER in a row; alert."""
    row = g.row
    if not _failing_recently(row, now):
        row.failures = 0  # old failures are forgiven once they are LOCK_FOR old
    newly_failing = not g.familiar and not _failing_recently(row, now)
    row.failures += 1
    row.last_failure_at = now
    if row.failures >= LOCK_AFTER:
        row.locked_until = now + LOCK_FOR
        row.failures = 0
        audit.append(
            session,
            actor=audit_actor(row.username),
            action="alert.signin.locked",
            outcome="alert",
            target_type="user",
            target_id=row.username,
            detail={"source": row.source, "failures": LOCK_AFTER, "minutes": LOCK_FOR.seconds // 60},
        )
    session.add(row)
    session.flush()
    if newly_failing and _strangers_failing(session, row.username, row.source, now) + 1 == MANY_SOURCES:
        audit.append(
            session,
            actor=audit_actor(row.username),
            action="alert.signin.many-sources",
            outcome="alert",
            target_type="user",
            target_id=row.username,
            detail={"sources": MANY_SOURCES, "minutes": LOCK_FOR.seconds // 60, "latest": row.source},
        )


def succeeded(session: Session, g: Gate, *, now: datetime) -> None:
    """A good sign-in: this address is familiar from now on, its failures forgotten."""
    row = g.row
    row.failures = 0
    row.locked_until = None
    row.last_success_at = now
    session.add(row)
    session.flush()


def unlock(session: Session, *, username: str, source: str | None = None) -> int:
    """Lift the account's locks (or one address's) and forget unfamiliar addresses' failures, so the
    person can sign in from a new address at once (an administrator's decision); the number of
    addresses changed."""
    statement = select(SignInSource).where(col(SignInSource.username) == username)
    if source is not None:
        statement = statement.where(col(SignInSource.source) == source)
    changed = 0
    for row in session.exec(statement).all():
        if row.last_success_at is None:
            session.delete(row)  # a stranger's record: nothing to keep
        else:
            row.failures, row.locked_until, row.last_failure_at = 0, None, None
            session.add(row)
        changed += 1
    session.flush()
    return changed
