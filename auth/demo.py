"""Demo accounts: users with TOTP, their grants, a system client and a practitioner app."""

from __future__ import annotations

import json
import secrets
from datetime import date, timedelta

import pyotp
from sqlmodel import Session, select

from auth.clients import hash_secret
from auth.grants import ROLE_SCOPES
from auth.models import AccessGrant, LocalUser, OAuthClient, SubjectKind
from auth.users import create_user, provisioning_uri
from directory.models import Role, utcnow

DEMO_AUTHORITY = "Demoshire County Council"
DEMO_REDIRECT = "http://127.0.0.1:8765/callback"
_USERS = [
    ("demo.practitioner", "Pat Practitioner (demo)", Role.PRACTITIONER),
    ("demo.designated", "Dee Designated (demo)", Role.DESIGNATED_PRACTITIONER),
    ("demo.admin", "Ada Admin (demo)", Role.DIRECTORY_ADMIN),
]


def _grant(session: Session, subject: str, kind: SubjectKind, role: Role) -> None:
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
            created_at=now,
            updated_at=now,
        )
    )


def create_demo_accounts(session: Session, *, issuer: str = "http://127.0.0.1:8000") -> list[str]:
    """Create demo users (password + TOTP), grants and clients; return the lines to print."""
    if session.exec(select(LocalUser).where(LocalUser.username == _USERS[0][0])).first():
        return ["Demo accounts already exist (their secrets were printed when they were made)."]
    password = secrets.token_urlsafe(12)
    lines = [
        "Demo sign-in (demo data only; never use these accounts with real data):",
        f"  sign-in page: {issuer}/oauth/authorize (reached from an app; see below)",
        f"  password for every demo user: {password}",
    ]
    for username, name, role in _USERS:
        user = create_user(
            session, username=username, password=password, display_name=name, organisation="Demoshire (demo)"
        )
        _grant(session, username, SubjectKind.USER, role)
        lines.append(f"  {username:<18} role {role.value:<24} TOTP secret {user.totp_secret}")
        lines.append(f"    authenticator: {provisioning_uri(user)}")
        lines.append(
            f"    code right now: {pyotp.TOTP(user.totp_secret).now()}"
            "  (python -c \"import pyotp; print(pyotp.TOTP('<secret>').now())\")"
        )
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
    _grant(session, "demo-trust-system", SubjectKind.CLIENT, Role.SYSTEM)
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
