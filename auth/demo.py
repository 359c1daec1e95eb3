"""Demo accounts: users with TOTP, their grants, a system client and a practitioner app."""

from __future__ import annotations

import json
import secrets
from datetime import date, timedelta

import pyotp
from sqlmodel import Session, col, select

from auth.clients import hash_secret
from auth.grants import ROLE_SCOPES
from auth.models import AccessGrant, LocalUser, OAuthClient, SubjectKind
from auth.users import create_user, provisioning_uri
from directory.models import Practitioner, Role, utcnow

DEMO_AUTHORITY = "Demoshire County Council"
DEMO_REDIRECT = "http://127.0.0.1:8765/callback"
_USERS = [
    ("demo.practitioner", "Pat Practitioner (demo)", Role.PRACTITIONER),
    ("demo.designated", "Dee Designated (demo)", Role.DESIGNATED_PRACTITIONER),
    ("demo.admin", "Ada Admin (demo)", Role.DIRECTORY_ADMIN),
    ("demo.locality", "Lena Locality (demo)", Role.LOCAL_DELIVERY_TEAM),
    ("demo.auditor", "Audrey Auditor (demo)", Role.AUDITOR),
]
# What each demo account is for, in words (printed beside it)
_WHAT = {
    "demo.practitioner": "a practitioner (a SENCO): find a child, read the card, signal a CAF",
    "demo.designated": "a designated practitioner: also sees shielded records",
    "demo.admin": "a directory administrator: access grants and system clients",
    "demo.locality": "a locality manager (local delivery team): worklist, panel, locality overview",
    "demo.auditor": "an auditor: who looked at which child, and the alerts",
}
# The seeded practitioner record each practice account acts as (preferred roles, first found).
_LINKS = {
    "demo.practitioner": ("SENCO", "family support worker"),
    "demo.designated": ("health visitor", "family support worker"),
    # the local delivery team's account is an early help worker's: the team's notices reach an inbox
    "demo.locality": ("family support worker",),
}


def _practitioner_for(session: Session, roles: tuple[str, ...]) -> Practitioner | None:
    """A seeded practitioner with a phone and an email, not yet linked to a sign-in (deterministic)."""
    free = (
        select(Practitioner)
        .where(
            Practitioner.active,
            col(Practitioner.subject).is_(None),
            col(Practitioner.phone).is_not(None),
            col(Practitioner.email).is_not(None),
        )
        .order_by(col(Practitioner.name), col(Practitioner.id))
    )
    for role in roles:
        found = session.exec(free.where(Practitioner.role == role)).first()
        if found is not None:
            return found
    return session.exec(free).first()


def link_demo_practitioners(session: Session) -> list[str]:
    """Link each demo practice account to a seeded practitioner record (both ways); lines to print.

    The account's practitioner_id goes into its access tokens, and Practitioner.subject names the
    account, so a CAF signalled or an involvement recorded from the pages is attributed to a real
    practitioner whose phone and email the card shows. Accounts already linked are left alone.
    """
    lines = []
    for username, roles in _LINKS.items():
        user = session.exec(select(LocalUser).where(LocalUser.username == username)).first()
        if user is None:
            continue
        practitioner = session.get(Practitioner, user.practitioner_id) if user.practitioner_id else None
        if practitioner is None:
            practitioner = _practitioner_for(session, roles)
            if practitioner is None:
                lines.append(f"  {username} is not linked to a practitioner (no practitioners seeded)")
                continue
            user.practitioner_id = practitioner.id
            practitioner.subject = username
        # the name shown when signed in is the practitioner's the actions are recorded under
        user.display_name = practitioner.name
        session.add_all([user, practitioner])
        session.flush()
        lines.append(
            f"  {username} acts as {practitioner.name}, {practitioner.role} "
            f"({practitioner.phone}, {practitioner.email})"
        )
    return lines


def _grant(
    session: Session, subject: str, kind: SubjectKind, role: Role, responsible: str | None = None
) -> None:
    now = utcnow()
    session.add(
        AccessGrant(
            subject=subject,
            subject_kind=kind.value,
            role=role.value,
            authority=DEMO_AUTHORITY,
            organisation="Demoshire (demo)",
            localities=json.dumps([]),
            scopes=" ".join(ROLE_SCOPES[role]),
            training_completed_on=date.today(),
            vetting_checked_on=date.today(),
            valid_from=now - timedelta(minutes=1),
            valid_until=now + timedelta(days=30),
            granted_by="demo",
            reason="demo account",
            responsible=responsible,
            approved_by="demo" if responsible else None,
            approved_at=now if responsible else None,
            created_at=now,
            updated_at=now,
        )
    )


def create_demo_accounts(session: Session, *, issuer: str = "http://127.0.0.1:8000") -> list[str]:
    """Create the demo users (password + TOTP) that do not exist yet, their grants and, the first time,
    the clients; return the lines to keep and print (never a one-time code: see `demo_codes`)."""
    existing = set(session.exec(select(LocalUser.username)).all())
    missing = [u for u in _USERS if u[0] not in existing]
    if not missing:
        return []
    first_time = len(missing) == len(_USERS)
    password = secrets.token_urlsafe(12)
    who = "every demo user" if first_time else ", ".join(u[0] for u in missing)
    lines = [
        "Demo sign-in (demo data only; never use these accounts with real data):" if first_time else "",
        f"  password for {who}: {password}",
    ]
    for username, name, role in missing:
        user = create_user(
            session, username=username, password=password, display_name=name, organisation="Demoshire (demo)"
        )
        _grant(session, username, SubjectKind.USER, role)
        lines.append(f"  {username:<18} {_WHAT[username]}")
        lines.append(f"    TOTP secret {user.totp_secret}  (authenticator: {provisioning_uri(user)})")
    link_demo_practitioners(session)
    if not first_time:
        return lines
    secret = secrets.token_urlsafe(24)
    session.add(
        OAuthClient(
            client_id="demo-trust-system",
            name="Demo health trust EPR (system)",
            auth_method="client_secret_basic",
            secret_hash=hash_secret(secret),
            allowed_scopes=" ".join(ROLE_SCOPES[Role.SYSTEM]),
            grant_types="client_credentials",
        )
    )
    _grant(session, "demo-trust-system", SubjectKind.CLIENT, Role.SYSTEM, responsible="demo.admin")
    session.add(
        OAuthClient(
            client_id="demo-app",
            name="Demo practitioner app (public, PKCE)",
            auth_method="none",
            allowed_scopes="directory.search directory.write grants.admin audit.read",
            grant_types="authorization_code refresh_token",
            redirect_uris=DEMO_REDIRECT,
        )
    )
    session.flush()
    lines += [
        "System client (client credentials, client_secret_basic):",
        f"  client_id demo-trust-system  client_secret {secret}",
        f"  curl -s -u demo-trust-system:{secret} -d grant_type=client_credentials {issuer}/oauth/token",
        "Practitioner app (authorization code + PKCE S256, public client):",
        f"  client_id demo-app  redirect_uri {DEMO_REDIRECT}",
        f"  metadata: {issuer}/.well-known/oauth-authorization-server",
    ]
    return lines


def demo_codes(session: Session) -> list[str]:
    """Each demo account's authenticator code at this moment (they change every 30 seconds)."""
    users = session.exec(
        select(LocalUser)
        .where(col(LocalUser.username).in_([u[0] for u in _USERS]))
        .order_by(col(LocalUser.username))
    ).all()
    return [f"  {u.username:<18} {pyotp.TOTP(u.totp_secret).now()}" for u in users]
