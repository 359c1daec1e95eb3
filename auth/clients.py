"""Client authentication at the token, revocation and introspection endpoints.

- ``private_key_jwt`` (RFC 7523 section 2.2, as SMART Backend Services uses it): the client signs
  a short-lived assertion with a key from the JWKS (or JWKS URL) it registered; we check the
  signature with pinned algorithms, iss = sub = client_id, aud = our token endpoint, exp no
  more than five minutes ahead, and that its jti was never used before.
- ``client_secret_basic`` (RFC 6749 section 2.3.1): HTTP Basic with an argon2-hashed secret.
- ``none``: public clients (apps in a browser or on a device), which must use PKCE.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from auth.config import CLIENT_ASSERTION_ALGS, AuthConfig
from auth.errors import OAuthError
from auth.models import ClientAuthMethod, OAuthClient, SeenJti
from auth.tokens import KeysUnavailable, RemoteJwks, _b64json

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300
_hasher = PasswordHasher()
_remote: dict[str, RemoteJwks] = {}
_remote_lock = threading.Lock()


def hash_secret(secret: str) -> str:
    """An argon2id hash of a password or client secret."""
    return _hasher.hash(secret)


def verify_secret(hashed: str | None, secret: str) -> bool:
    """True when the secret matches the argon2 hash."""
    if not hashed:
        return False
    try:
        return _hasher.verify(hashed, secret)
    except (VerificationError, InvalidHashError):
        return False


def new_secret() -> str:
    """A random secret to hand out once."""
    return secrets.token_urlsafe(32)


def sha256_hex(value: str) -> str:
    """The hex SHA-256 of a token: codes and refresh tokens are stored only hashed."""
    return hashlib.sha256(value.encode()).hexdigest()


def _invalid_client(description: str) -> OAuthError:
    return OAuthError("invalid_client", description, status=401)


def authenticate_client(
    session: Session,
    cfg: AuthConfig,
    *,
    authorization: str | None,
    form: dict[str, str],
    allow_public: bool = False,
) -> OAuthClient:
    """The client that made this request, authenticated by its registered method."""
    if authorization and authorization.lower().startswith("basic "):
        return _basic(session, authorization)
    if form.get("client_assertion_type") == ASSERTION_TYPE and form.get("client_assertion"):
        return _private_key_jwt(session, cfg, form["client_assertion"], form.get("client_id"))
    client_id = form.get("client_id")
    if allow_public and client_id:
        client = session.get(OAuthClient, client_id)
        if client is None or not client.active:
            raise _invalid_client("Unknown client.")
        if client.auth_method != ClientAuthMethod.NONE:
            raise _invalid_client("This client must authenticate (private_key_jwt or client_secret_basic).")
        return client
    raise _invalid_client("Client authentication is required.")


def _basic(session: Session, authorization: str) -> OAuthClient:
    # The header arrives as Latin-1 text: anything but base64 of UTF-8 (RFC 7617), or an id or
    # secret with a control character (PostgreSQL cannot even compare a NUL), is unreadable.
    try:
        encoded = authorization.split(" ", 1)[1].strip().encode("ascii")
        raw = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeError, IndexError):
        raise _invalid_client("The Basic credentials cannot be read.") from None
    client_id, sep, secret = raw.partition(":")
    client_id, secret = unquote(client_id), unquote(secret)
    if not sep or not client_id.isprintable() or not secret.isprintable() or len(client_id) > 200:
        raise _invalid_client("The Basic credentials cannot be read.")
    client = session.get(OAuthClient, client_id)
    if client is None or not client.active or client.auth_method != ClientAuthMethod.CLIENT_SECRET_BASIC:
        # Spend the same time as a real check so unknown ids are not told apart by timing.
        verify_secret(_DUMMY_HASH, secret)
        raise _invalid_client("The client credentials are not valid.")
    if not verify_secret(client.secret_hash, secret):
        raise _invalid_client("The client credentials are not valid.")
    return client


_DUMMY_HASH = _hasher.hash("not-a-real-secret")


def _client_keys(client: OAuthClient, kid: str | None) -> Key | KeySet:
    if client.jwks:
        return KeySet.import_key_set(json.loads(client.jwks))
    if client.jwks_url:
        with _remote_lock:
            remote = _remote.setdefault(client.jwks_url, RemoteJwks(client.jwks_url))
        try:
            key = remote.get(kid or "")
        except KeysUnavailable:
            raise _invalid_client(
                "The client's keys (its registered jwks_uri) cannot be fetched just now."
            ) from None
        if key is None:
            raise _invalid_client("No key with the assertion's kid in the client's JWKS.")
        return key
    raise _invalid_client("The client has registered no keys.")


def _private_key_jwt(session: Session, cfg: AuthConfig, assertion: str, client_id: str | None) -> OAuthClient:
    parts = assertion.split(".")
    if len(parts) != 3:
        raise _invalid_client("The client assertion is not a signed JWT.")
    try:
        header, unverified = _b64json(parts[0]), _b64json(parts[1])
    except (ValueError, UnicodeDecodeError):
        raise _invalid_client("The client assertion cannot be read.") from None
    if header.get("alg") not in CLIENT_ASSERTION_ALGS:
        raise _invalid_client(
            f"Client assertions must be signed with one of {', '.join(CLIENT_ASSERTION_ALGS)}."
        )
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or not issuer.isprintable() or (client_id and client_id != issuer):
        raise _invalid_client("The client assertion's issuer is not the client.")
    client = session.get(OAuthClient, issuer)
    if client is None or not client.active or client.auth_method != ClientAuthMethod.PRIVATE_KEY_JWT:
        raise _invalid_client("Unknown client, or it does not use private_key_jwt.")
    try:
        token = jwt.decode(
            assertion,
            _client_keys(client, header.get("kid")),
            algorithms=list(CLIENT_ASSERTION_ALGS),
        )
        jwt.JWTClaimsRegistry(
            leeway=cfg.leeway_seconds,
            iss={"essential": True, "value": client.client_id},
            sub={"essential": True, "value": client.client_id},
            aud={"essential": True, "values": [cfg.token_endpoint, cfg.issuer]},
            exp={"essential": True},
            jti={"essential": True},
        ).validate(token.claims)
    except JoseError as exc:
        raise _invalid_client(f"The client assertion was refused: {exc.description or exc.error}.") from None
    now = datetime.now(UTC)
    try:
        exp = datetime.fromtimestamp(int(token.claims["exp"]), UTC)
    except (OverflowError, OSError, ValueError, TypeError):
        raise _invalid_client("The client assertion's exp is not a time.") from None
    if exp > now + timedelta(seconds=MAX_ASSERTION_LIFETIME + cfg.leeway_seconds):
        raise _invalid_client("The client assertion lives too long: at most five minutes.")
    _use_jti_once(session, f"assertion:{client.client_id}:{token.claims['jti']}"[:120], exp)
    return client


def _use_jti_once(session: Session, key: str, expires_at: datetime) -> None:
    existing = session.get(SeenJti, key)
    if existing is not None:
        raise _invalid_client("This client assertion was already used (its jti is spent).")
    try:
        with session.begin_nested():
            session.add(SeenJti(key=key, expires_at=expires_at))
    except IntegrityError:
        raise _invalid_client("This client assertion was already used (its jti is spent).") from None
