"""JWT access tokens: issue them (authorization server) and validate them (resource server).

Validation pins the algorithms (RS256/ES256 only: never "none", never HMAC, so a public key
can never be used as an HMAC secret), checks issuer, audience, exp/nbf/iat with a small
leeway, and resolves the ``kid`` against the local keys or the cached JWKS of the configured
external issuer, refetching once when the kid is unknown (the issuer rotated its keys).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import Key, KeySet

from auth.config import ACCESS_TOKEN_ALGS, AuthConfig
from auth.errors import AuthRefused, unauthenticated
from auth.keys import KeyStore
from auth.models import SubjectKind


@dataclass(frozen=True)
class TokenInfo:
    """What a validated access token says."""

    subject: str
    subject_kind: SubjectKind
    client_id: str | None
    scopes: frozenset[str]
    jti: str | None
    issuer: str
    expires_at: int
    amr: tuple[str, ...] = ()
    claims: dict[str, Any] = field(default_factory=dict)


def issue_access_token(
    keys: KeyStore,
    cfg: AuthConfig,
    *,
    subject: str,
    subject_kind: SubjectKind,
    client_id: str,
    scope: str,
    amr: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Sign a short-lived access token (RFC 9068 shape) with the current key."""
    kid, alg, key = keys.current()
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": cfg.issuer,
        "aud": cfg.audience,
        "sub": subject,
        "client_id": client_id,
        "iat": now,
        "nbf": now,
        "exp": now + cfg.access_token_seconds,
        "jti": uuid.uuid4().hex,
        "scope": scope,
        "sub_kind": subject_kind.value,
    }
    if amr:
        claims["amr"] = amr
    if extra:
        claims.update(extra)
    token = jwt.encode({"alg": alg, "kid": kid, "typ": "at+jwt"}, claims, key, algorithms=[alg])
    return token, claims


def _b64json(segment: str) -> dict[str, Any]:
    padded = segment + "=" * (-len(segment) % 4)
    try:
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except RecursionError:  # nested deeper than the parser goes: not a JOSE header or claims set
        raise ValueError("nested too deep") from None
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


class RemoteJwks:
    """A JWKS fetched over HTTPS, cached, refetched on an unknown kid (at most every 30 s)."""

    def __init__(self, url: str, *, min_refresh_seconds: float = 30.0) -> None:
        self.url = url
        self.min_refresh = min_refresh_seconds
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched_at = 0.0

    def _fetch(self) -> None:
        response = httpx.get(self.url, timeout=5.0)
        response.raise_for_status()
        self._keys = KeySet.import_key_set(response.json())
        self._fetched_at = time.monotonic()

    def get(self, kid: str) -> Key | None:
        """The key with this kid, fetching the set when missing or when the kid is new."""
        with self._lock:
            if self._keys is None:
                self._fetch()
            found = self._find(kid)
            if found is None and time.monotonic() - self._fetched_at >= self.min_refresh:
                self._fetch()
                found = self._find(kid)
            return found

    def _find(self, kid: str) -> Key | None:
        if self._keys is None:
            return None
        for key in self._keys.keys:
            if key.kid == kid:
                return key
        return None


VERIFIED_TOKENS_KEPT = 4096
"""Access tokens a process remembers having validated (a few MiB at most)."""


class TokenValidator:
    """Validates bearer access tokens from the local issuer and an optional external one."""

    def __init__(self, cfg: AuthConfig, keys: KeyStore) -> None:
        self.cfg = cfg
        self.keys = keys
        self.external = (
            RemoteJwks(cfg.external_jwks_url) if (cfg.external_issuer and cfg.external_jwks_url) else None
        )
        self._seen: dict[str, tuple[TokenInfo, str]] = {}  # token -> what it says, its key id
        self._registries: dict[tuple[Any, Any], jwt.JWTClaimsRegistry] = {}
        self._lock = threading.Lock()

    def validate(self, token: str) -> TokenInfo:
        """Return what the token says, or raise a 401 AuthRefused saying why it is not accepted.

        A client sends the same token with every request until it expires. The first time, it is
        read, its signature checked and its claims validated, and what it says is remembered (the
        token itself is the key, so a changed byte is a new token). Each time after, its signing
        key is looked up again and its expiry checked against the clock, so a retired key or an
        expired token is refused at once; what cannot change (issuer, audience, subject, a
        not-before already passed) is not checked again.
        """
        with self._lock:
            known = self._seen.get(token)
        if known is not None:
            info, kid = known
            self._key_for(info.issuer, kid)
            if time.time() > info.expires_at + self.cfg.leeway_seconds:
                raise unauthenticated("token-expired", "The access token has expired; get a new one.")
            return info
        parts = token.split(".")
        if len(parts) != 3:
            raise unauthenticated("invalid-token", "The access token is not a signed JWT.")
        try:
            header, unverified = _b64json(parts[0]), _b64json(parts[1])
        except (ValueError, UnicodeDecodeError):
            raise unauthenticated("invalid-token", "The access token cannot be read.") from None
        alg = header.get("alg")
        if alg not in ACCESS_TOKEN_ALGS:
            raise unauthenticated(
                "invalid-token", f"Tokens signed with {alg!r} are not accepted; use RS256 or ES256."
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise unauthenticated("invalid-token", "The access token names no signing key (kid).")
        issuer = unverified.get("iss")
        key, audience = self._key_for(issuer, kid)
        try:
            claims = jwt.decode(token, key, algorithms=list(ACCESS_TOKEN_ALGS)).claims
        except JoseError:
            raise unauthenticated("invalid-token", "The access token's signature is not valid.") from None
        registry = self._registries.get((issuer, audience))
        if registry is None:  # one per issuer we accept (it reads the clock on each validation)
            registry = self._registries[(issuer, audience)] = jwt.JWTClaimsRegistry(
                leeway=self.cfg.leeway_seconds,
                iss={"essential": True, "value": issuer},
                aud={"essential": True, "value": audience},
                exp={"essential": True},
                sub={"essential": True},
            )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise unauthenticated("token-expired", "The access token has expired; get a new one.") from None
        except JoseError as exc:
            raise unauthenticated(
                "invalid-token", f"The access token was refused: {exc.description}."
            ) from None
        info = _info(claims, issuer=str(issuer))
        with self._lock:
            if len(self._seen) >= VERIFIED_TOKENS_KEPT:
                del self._seen[next(iter(self._seen))]  # the oldest
            self._seen[token] = (info, kid)
        return info

    def _key_for(self, issuer: object, kid: str) -> tuple[Key, str]:
        if issuer == self.cfg.issuer:
            key = self.keys.public_key(kid)
            audience = self.cfg.audience
        elif self.external is not None and issuer == self.cfg.external_issuer:
            try:
                key = self.external.get(kid)
            except httpx.HTTPError:
                raise AuthRefused(
                    503,
                    "issuer-unavailable",
                    "The identity provider's keys cannot be fetched just now; try again shortly.",
                ) from None
            audience = self.cfg.external_audience or self.cfg.audience
        else:
            raise unauthenticated(
                "invalid-token",
                "The access token comes from an issuer this service does not trust.",
            )
        if key is None:
            raise unauthenticated("invalid-token", "The access token was signed with an unknown key.")
        return key, audience


def _info(claims: dict[str, Any], *, issuer: str) -> TokenInfo:
    raw_scope = claims.get("scope", claims.get("scp", ""))
    scopes = frozenset(raw_scope.split() if isinstance(raw_scope, str) else [str(s) for s in raw_scope or []])
    subject = str(claims["sub"])
    client_id = claims.get("client_id") or claims.get("azp")
    kind = claims.get("sub_kind")
    if kind not in (SubjectKind.USER.value, SubjectKind.CLIENT.value):
        kind = SubjectKind.CLIENT.value if client_id and client_id == subject else SubjectKind.USER.value
    amr = claims.get("amr") or []
    return TokenInfo(
        subject=subject,
        subject_kind=SubjectKind(kind),
        client_id=str(client_id) if client_id else None,
        scopes=scopes,
        jti=str(claims["jti"]) if claims.get("jti") else None,
        issuer=issuer,
        expires_at=int(claims["exp"]),
        amr=tuple(str(a) for a in amr) if isinstance(amr, list) else (),
        claims=claims,
    )
