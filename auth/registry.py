"""Registering OAuth clients: systems with a JWKS (URL or keys) or a secret, and the pages' own client."""

from __future__ import annotations

import json
import re
from typing import Literal
from urllib.parse import urlparse

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PField
from sqlmodel import Session, col, select

from auth.clients import hash_secret, new_secret
from auth.grants import PERSONS_ONLY_SCOPES
from auth.models import ClientAuthMethod, OAuthClient
from auth.scopes import unknown as unknown_scopes
from directory import audit
from directory.errors import Conflict, InvalidInput, NotFound
from directory.models import Actor

_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{2,99}$")


class ClientRegister(BaseModel):
    """A system client: how it authenticates, its keys and the scopes it may ask for."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    client_id: str = PField(min_length=3, max_length=100)
    name: str = PField(min_length=1, max_length=160)
    auth_method: Literal["private_key_jwt", "client_secret_basic"] = "private_key_jwt"
    jwks_url: str | None = PField(default=None, max_length=500)
    jwks: str | None = PField(default=None, max_length=20000, description="A JSON Web Key Set (public keys)")
    scopes: list[str] = PField(min_length=1, max_length=30)

    @field_validator("client_id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _CLIENT_ID.match(v):
            raise ValueError("use letters, digits, dots, dashes and underscores (3 to 100 characters)")
        return v

    @field_validator("scopes")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = unknown_scopes(v)
        if unknown:
            raise ValueError(f"unknown scopes: {', '.join(unknown)}")
        if set(v) & PERSONS_ONLY_SCOPES:
            raise ValueError(
                f"a system client cannot administer access ({', '.join(sorted(PERSONS_ONLY_SCOPES))})"
            )
        return sorted(set(v))


def _check_jwks_url(url: str) -> str:
    parsed = urlparse(url)
    local = parsed.hostname in ("127.0.0.1", "localhost", "::1")
    if parsed.scheme != "https" and not (parsed.scheme == "http" and local):
        raise InvalidInput("The JWKS URL must use https.", field="jwks_url")
    if not parsed.netloc:
        raise InvalidInput("The JWKS URL is not a full URL.", field="jwks_url")
    return url


def check_jwks(text: str) -> str:
    """A public JWK Set as canonical JSON, or InvalidInput saying what is wrong with it."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidInput("The keys are not valid JSON.", field="jwks") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list) or not data["keys"]:
        raise InvalidInput('Give a JWK Set: {"keys": [ ... ]} with at least one key.', field="jwks")
    for key in data["keys"]:
        if not isinstance(key, dict) or not key.get("kid"):
            raise InvalidInput("Every key needs a 'kid'.", field="jwks")
        if any(part in key for part in ("d", "p", "q", "dp", "dq", "qi", "k")):
            raise InvalidInput(
                "These keys include private or symmetric key material: register only the public keys.",
                field="jwks",
            )
    try:
        KeySet.import_key_set(data)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidInput(f"The keys cannot be read: {exc}", field="jwks") from None
    return json.dumps(data, sort_keys=True)


def register_client(
    session: Session, *, actor: Actor, data: ClientRegister
) -> tuple[OAuthClient, str | None]:
    """Register a system client (client credentials); returns it and, for a secret client, the secret once."""
    if session.get(OAuthClient, data.client_id) is not None:
        raise Conflict("A client with this client_id is already registered.", field="client_id")
    secret = None
    jwks = jwks_url = None
    if data.auth_method == ClientAuthMethod.PRIVATE_KEY_JWT.value:
        if bool(data.jwks) == bool(data.jwks_url):
            raise InvalidInput(
                "Give either a JWKS URL or the public keys (JWKS), not both.", field="jwks_url"
            )
        jwks = check_jwks(data.jwks) if data.jwks else None
        jwks_url = _check_jwks_url(data.jwks_url) if data.jwks_url else None
    else:
        secret = new_secret()
    client = OAuthClient(
        client_id=data.client_id,
        name=data.name,
        auth_method=data.auth_method,
        secret_hash=hash_secret(secret) if secret else None,
        jwks=jwks,
        jwks_url=jwks_url,
        allowed_scopes=" ".join(data.scopes),
        grant_types="client_credentials",
        registered_by=actor.subject,
    )
    session.add(client)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="client.register",
        target_type="client",
        target_id=client.client_id,
        detail={"auth_method": client.auth_method, "scopes": client.allowed_scopes},
    )
    return client, secret


def list_clients(session: Session) -> list[OAuthClient]:
    """Every registered client, by client_id."""
    return list(session.exec(select(OAuthClient).order_by(col(OAuthClient.client_id))).all())


def get_client(session: Session, client_id: str) -> OAuthClient:
    """One client, or NotFound."""
    client = session.get(OAuthClient, client_id)
    if client is None:
        raise NotFound("No client is registered with that client_id.")
    return client


def update_client(
    session: Session,
    *,
    actor: Actor,
    client_id: str,
    scopes: list[str] | None = None,
    jwks_url: str | None = None,
    jwks: str | None = None,
    active: bool | None = None,
) -> OAuthClient:
    """Change a client's scopes or keys, or switch it off or on. Audited."""
    client = get_client(session, client_id)
    changed: dict[str, str] = {}
    if scopes is not None:
        unknown = unknown_scopes(scopes)
        if unknown or not scopes:
            raise InvalidInput(f"Choose known scopes (unknown: {', '.join(unknown) or 'none chosen'}).")
        if client.auth_method != ClientAuthMethod.NONE.value and set(scopes) & PERSONS_ONLY_SCOPES:
            raise InvalidInput("A system client cannot administer access (grants.admin).")
        client.allowed_scopes = " ".join(sorted(set(scopes)))
        changed["scopes"] = client.allowed_scopes
    if jwks_url or jwks:
        if client.auth_method != ClientAuthMethod.PRIVATE_KEY_JWT.value:
            raise InvalidInput("Only a private_key_jwt client has keys.")
        if jwks_url and jwks:
            raise InvalidInput("Give either a JWKS URL or the public keys (JWKS), not both.")
        client.jwks = check_jwks(jwks) if jwks else None
        client.jwks_url = _check_jwks_url(jwks_url) if jwks_url else None
        changed["keys"] = "url" if jwks_url else "jwks"
    if active is not None:
        client.active = active
        changed["active"] = str(active).lower()
    session.add(client)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="client.update",
        target_type="client",
        target_id=client_id,
        detail=changed,
    )
    return client


def ensure_public_client(
    session: Session, *, client_id: str, name: str, redirect_uri: str, scopes: tuple[str, ...]
) -> OAuthClient:
    """Register (or keep up to date) a public PKCE client such as the pages' own, idempotently."""
    client = session.get(OAuthClient, client_id)
    wanted_scopes = " ".join(scopes)
    if client is None:
        client = OAuthClient(
            client_id=client_id,
            name=name,
            auth_method=ClientAuthMethod.NONE.value,
            allowed_scopes=wanted_scopes,
            grant_types="authorization_code refresh_token",
            redirect_uris=redirect_uri,
        )
    elif client.auth_method != ClientAuthMethod.NONE.value:
        raise Conflict(f"The client id {client_id} is taken by a confidential client; set another.")
    else:
        if redirect_uri not in client.redirect_uris.split():
            client.redirect_uris = " ".join([*client.redirect_uris.split(), redirect_uri])
        client.allowed_scopes = wanted_scopes
    session.add(client)
    session.flush()
    return client
