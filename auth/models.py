"""Tables of auth/: access grants, local users, OAuth clients, tokens and signing keys."""

from __future__ import annotations

import enum
import json
import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from directory.models import Role, UTCDateTime, utcnow
from directory.sealed import Sealed


class SubjectKind(enum.StrEnum):
    """Who a grant or token is for: a person or a calling system."""

    USER = "user"
    CLIENT = "client"


class GrantStatus(enum.StrEnum):
    """Where a grant stands; only an active grant inside its dates lets anyone in.

    A system client's grant is made pending: it goes live when a second administrator approves it.
    """

    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class ClientAuthMethod(enum.StrEnum):
    """How a client proves who it is at the token endpoint."""

    PRIVATE_KEY_JWT = "private_key_jwt"
    CLIENT_SECRET_BASIC = "client_secret_basic"
    NONE = "none"  # a public client (browser or native app): PKCE only


def _id() -> uuid.UUID:
    return uuid.uuid4()


def _ts(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


def _in(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class AccessGrant(SQLModel, table=True):
    """What a user or client may do, where, until when, and on whose say-so."""

    __tablename__ = "access_grant"
    __table_args__ = (
        sa.CheckConstraint(_in("subject_kind", SubjectKind), name="grant_subject_kind"),
        sa.CheckConstraint(_in("status", GrantStatus), name="grant_status"),
        sa.CheckConstraint(_in("role", Role), name="grant_role"),
        sa.CheckConstraint("valid_until > valid_from", name="grant_dates"),
    )
    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    subject: str = Field(max_length=200, index=True)
    subject_kind: str = Field(max_length=8)
    role: str = Field(max_length=40)
    authority: str = Field(max_length=120)
    organisation: str | None = Field(default=None, max_length=200)
    localities: str = Field(default="[]")  # JSON list of locality codes; [] = the whole authority
    scopes: str = Field(max_length=1000)  # space-separated
    training_completed_on: date | None = None
    vetting_checked_on: date | None = None
    valid_from: datetime = _ts()
    valid_until: datetime = _ts()
    status: str = Field(default=GrantStatus.ACTIVE.value, max_length=10)
    status_reason: str | None = Field(default=None, max_length=500)
    granted_by: str = Field(max_length=200)
    reason: str = Field(max_length=500)
    # A client's grant: the person who answers for it (their own grant must stay current), and the
    # second administrator who approved it (NULL on grants made before approvals existed).
    responsible: str | None = Field(default=None, max_length=200)
    approved_by: str | None = Field(default=None, max_length=200)
    approved_at: datetime | None = _ts(default=None)
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)
    version: int = 1

    def scope_set(self) -> set[str]:
        """The grant's scopes as a set."""
        return set(self.scopes.split())

    def locality_list(self) -> list[str]:
        """The locality codes the grant covers (empty: all of the authority)."""
        return list(json.loads(self.localities or "[]"))


class LocalUser(SQLModel, table=True):
    """A person who signs in here with a password and a TOTP second factor."""

    __tablename__ = "local_user"
    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    username: str = Field(max_length=100, unique=True)
    password_hash: str = Field(max_length=200)  # argon2id
    totp_secret: str = Field(max_length=64, sa_type=Sealed("local_user.totp_secret"))  # base32, sealed
    totp_last_step: int = 0  # the last time step accepted: a code is good once
    display_name: str = Field(max_length=160)
    organisation: str | None = Field(default=None, max_length=200)
    practitioner_id: uuid.UUID | None = Field(default=None, foreign_key="practitioner.id")
    active: bool = True
    failed_logins: int = 0
    locked_until: datetime | None = _ts(default=None)
    created_at: datetime = _ts(default_factory=utcnow)
    last_login_at: datetime | None = _ts(default=None)


class SignInSource(SQLModel, table=True):
    """Sign-ins to one account from one address: failures lock that address out, not the account."""

    __tablename__ = "signin_source"
    username: str = Field(primary_key=True, max_length=100)
    source: str = Field(primary_key=True, max_length=64)  # an IP address (see auth/source.py)
    failures: int = 0  # in a row, since the last success or lock
    locked_until: datetime | None = _ts(default=None)
    last_failure_at: datetime | None = _ts(default=None)
    last_success_at: datetime | None = _ts(default=None)


class OAuthClient(SQLModel, table=True):
    """A registered application or system (e.g. a health trust's EPR)."""

    __tablename__ = "oauth_client"
    __table_args__ = (sa.CheckConstraint(_in("auth_method", ClientAuthMethod), name="client_auth_method"),)
    client_id: str = Field(primary_key=True, max_length=100)
    name: str = Field(max_length=160)
    auth_method: str = Field(max_length=24)
    secret_hash: str | None = Field(default=None, max_length=200)  # argon2id
    jwks: str | None = None  # JSON Web Key Set, for private_key_jwt
    jwks_url: str | None = Field(default=None, max_length=500)
    allowed_scopes: str = Field(max_length=1000)
    grant_types: str = Field(max_length=200)  # space-separated
    redirect_uris: str = Field(default="")  # space-separated, exact match
    active: bool = True
    created_at: datetime = _ts(default_factory=utcnow)
    registered_by: str | None = Field(default=None, max_length=200)  # may not approve or renew its grant


class RefreshToken(SQLModel, table=True):
    """A refresh token (only its hash); rotation keeps one family, reuse revokes it."""

    __tablename__ = "refresh_token"
    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    family_id: uuid.UUID = Field(index=True)
    client_id: str = Field(max_length=100)
    subject: str = Field(max_length=200)
    subject_kind: str = Field(max_length=8)
    scope: str = Field(max_length=1000)
    amr: str = Field(default="", max_length=100)
    issued_at: datetime = _ts(default_factory=utcnow)
    expires_at: datetime = _ts()
    rotated_at: datetime | None = _ts(default=None)
    revoked_at: datetime | None = _ts(default=None)


class AuthorizationCode(SQLModel, table=True):
    """A one-time authorization code bound to a PKCE S256 challenge."""

    __tablename__ = "authorization_code"
    code_hash: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(max_length=100)
    subject: str = Field(max_length=200)
    redirect_uri: str = Field(max_length=500)
    scope: str = Field(max_length=1000)
    code_challenge: str = Field(max_length=128)
    code_challenge_method: str = Field(default="S256", max_length=8)
    amr: str = Field(default="", max_length=100)
    expires_at: datetime = _ts()
    used_at: datetime | None = _ts(default=None)


class SigningKey(SQLModel, table=True):
    """A key that signs access tokens; retired keys stay published until their tokens expire."""

    __tablename__ = "signing_key"
    kid: str = Field(primary_key=True, max_length=64)
    alg: str = Field(max_length=8)
    private_jwk: str = Field(sa_type=Sealed("signing_key.private_jwk"))  # JSON, sealed at rest
    created_at: datetime = _ts(default_factory=utcnow)
    retired_at: datetime | None = _ts(default=None)


class SeenJti(SQLModel, table=True):
    """A client assertion id already used (replay protection) or an access token revoked."""

    __tablename__ = "seen_jti"
    key: str = Field(primary_key=True, max_length=120)  # "assertion:<client>:<jti>" or "revoked:<jti>"
    expires_at: datetime = _ts(index=True)
