"""JWT access tokens: issue them (authorization server) and validate them (resource server).

Validation pins the algorithms (RS256/ES256 only: never "none", never HMAC, so a public key
can never be used as an HMAC secret), checks the header's ``typ`` (RFC 9068 ``at+jwt``, so an
ID token or any other JWT of the same issuer is not taken for an access token), issuer,
audience, exp/nbf/iat with a small leeway and a maximum lifetime, and resolves the ``kid``
against the local keys or the cached JWKS (https only) of the configured external issuer,
refetching once when the kid is unknown (the issuer rotated its keys).

Only our own tokens may say what kind of subject they name, which practitioner they act as and
which sign-in they belong to (``sub_kind``, ``practitioner_id``, ``sid``): we wrote them. An
external issuer's token names a person by the configured claim, and nothing else it asserts
about the caller is believed; the practitioner is the one whose sign-in subject that is.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

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
    local: bool = True  # issued by us (not the external issuer)
    sid: uuid.UUID | None = None  # our sign-in (refresh-token family) the token belongs to
    practitioner_id: uuid.UUID | None = None  # ours only: the local account's practitioner


ACCESS_TOKEN_TYP = "at+jwt"


def _media_type(value: object) -> str | None:
    """A JOSE typ compared as RFC 7515 says: case-insensitive, "application/" optional."""
    if not isinstance(value, str):
        return None
    value = value.lower()
    return value.removeprefix("application/")


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


class KeysUnavailable(Exception):
    """A remote key set could not be fetched, or what came back is not a key set."""


class RemoteJwks:
    """A JWKS fetched over HTTPS, cached, refetched on an unknown kid (at most every 30 s).

    A fetch is a wait on another service (up to its 5 s timeout), so callers on an event loop ask
    `needs_fetch` first and fetch off the loop (auth/deps.py). The keys held are read under a lock
    no fetch holds, so a lookup of a known key never waits for a fetch in progress; fetches take
    turns under a lock of their own, and one that finds the keys fetched meanwhile asks no more.
    After a failed fetch none is tried again for `retry_after` seconds: a burst of requests while
    the provider is down is refused at once (KeysUnavailable) instead of each waiting out the
    timeout in turn.
    """

    def __init__(
        self, url: str, *, min_refresh_seconds: float = 30.0, retry_after_seconds: float = 5.0
    ) -> None:
        self.url = url
        self.min_refresh = min_refresh_seconds
        self.retry_after = retry_after_seconds
        self._lock = threading.Lock()  # the keys held (never across a fetch)
        self._fetching = threading.Lock()  # one fetch at a time
        self._keys: KeySet | None = None
        self._fetched_at = 0.0
        self._failed_at: float | None = None

    def _download(self) -> KeySet:
        try:
            response = httpx.get(self.url, timeout=5.0)
            response.raise_for_status()
            return KeySet.import_key_set(response.json())
        except Exception as exc:  # (unreachable, an error, or whatever the parser makes of a non-key-set)
            raise KeysUnavailable(f"the key set at {self.url} could not be fetched or read") from exc

    def _wants_fetch(self, kid: str) -> bool:
        return self._keys is None or (
            self._find(kid) is None and time.monotonic() - self._fetched_at >= self.min_refresh
        )

    def needs_fetch(self, kid: str) -> bool:
        """True when `get(kid)` would go to the network (it may still refuse at once, after a failure)."""
        with self._lock:
            return self._wants_fetch(kid)

    def get(self, kid: str) -> Key | None:
        """The key with this kid, fetching the set when missing or when the kid is new (KeysUnavailable
        when it cannot be fetched)."""
        with self._lock:
            if not self._wants_fetch(kid):
                return self._find(kid)
        with self._fetching:
            with self._lock:
                if not self._wants_fetch(kid):  # (fetched while this one waited its turn)
                    return self._find(kid)
                if self._failed_at is not None and time.monotonic() - self._failed_at < self.retry_after:
                    raise KeysUnavailable(f"the key set at {self.url} could not be fetched moments ago")
            try:
                keys = self._download()
            except KeysUnavailable:
                with self._lock:
                    self._failed_at = time.monotonic()
                raise
            with self._lock:
                self._keys, self._fetched_at, self._failed_at = keys, time.monotonic(), None
                return self._find(kid)

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
        if self.external is not None and not self.external.url.startswith("https://"):
            raise ValueError("The external issuer's JWKS URL must use https.")
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
            info, known_kid = known
            self._key_for(info.issuer, known_kid)
            if time.time() > info.expires_at + self.cfg.leeway_seconds:
                raise unauthenticated("token-expired", "The access token has expired; get a new one.")
            return info
        info, kid = self._read(token)
        with self._lock:
            if len(self._seen) >= VERIFIED_TOKENS_KEPT:
                del self._seen[next(iter(self._seen))]  # the oldest
            self._seen[token] = (info, kid)
        return info

    def would_fetch(self, token: str) -> bool:
        """True when validating `token` would first fetch the external issuer's keys (a wait on
        another service, up to 5 s: not for an event loop). Reads the token's header and issuer
        unverified, only to choose where to validate it."""
        if self.external is None:
            return False
        with self._lock:
            known = self._seen.get(token)
        if known is not None:
            info, kid = known
            return info.issuer == self.cfg.external_issuer and self.external.needs_fetch(kid)
        parts = token.split(".")
        try:
            header, unverified = _b64json(parts[0]), _b64json(parts[1])
        except (ValueError, UnicodeDecodeError, IndexError):
            return False
        named = header.get("kid")
        if not isinstance(named, str) or not named or unverified.get("iss") != self.cfg.external_issuer:
            return False
        return self.external.needs_fetch(named)

    def _read(self, token: str) -> tuple[TokenInfo, str]:
        """A token seen for the first time: what it says and its signing key's id, once its header,
        signature, claims and lifetime are checked."""
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
        issuer = cast(str, issuer)  # one of the two configured issuers, or _key_for refused it
        local = issuer == self.cfg.issuer
        expected = ACCESS_TOKEN_TYP if local else self.cfg.external_token_typ
        if _media_type(header.get("typ")) != _media_type(expected):
            raise unauthenticated(
                "invalid-token",
                f"This is not an access token: its header must say typ {expected!r} (RFC 9068 'at+jwt').",
            )
        claims = self._claims(token, key, issuer=issuer, audience=audience)
        self._check_lifetime(claims)
        info = _info(claims, issuer=str(issuer), local=local, subject_claim=self.cfg.external_subject_claim)
        return info, kid

    def _claims(self, token: str, key: Key, *, issuer: str, audience: str) -> dict[str, Any]:
        """The token's claims, once its signature (pinned algorithms) and registered claims are valid."""
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
                iat={"essential": True},
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
        return claims

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        """Refuse a token meant to live longer than the configured maximum (from iat, or from now)."""
        longest = self.cfg.max_token_lifetime_seconds + self.cfg.leeway_seconds
        exp, iat = float(claims["exp"]), float(claims["iat"])
        if exp - iat > longest or exp - time.time() > longest:
            raise unauthenticated(
                "invalid-token",
                "The access token's lifetime is longer than this service accepts "
                f"({self.cfg.max_token_lifetime_seconds // 60} minutes); get a shorter-lived one.",
            )

    def _key_for(self, issuer: object, kid: str) -> tuple[Key, str]:
        if issuer == self.cfg.issuer:
            key = self.keys.public_key(kid)
            audience = self.cfg.audience
        elif self.external is not None and issuer == self.cfg.external_issuer:
            try:
                key = self.external.get(kid)
            except KeysUnavailable:
                raise AuthRefused(
                    503,
                    "issuer-unavailable",
                    "The identity provider's keys cannot be fetched just now; try again shortly.",
                    headers={"Retry-After": str(max(1, round(self.external.retry_after)))},
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


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _info(claims: dict[str, Any], *, issuer: str, local: bool, subject_claim: str) -> TokenInfo:
    raw_scope = claims.get("scope", claims.get("scp", ""))
    scopes = frozenset(raw_scope.split() if isinstance(raw_scope, str) else [str(s) for s in raw_scope or []])
    client_id = claims.get("client_id") or claims.get("azp")
    amr = claims.get("amr") or []
    if local:
        subject = str(claims["sub"])
        kind = claims.get("sub_kind")
        if kind not in (SubjectKind.USER.value, SubjectKind.CLIENT.value):
            kind = SubjectKind.CLIENT.value if client_id and client_id == subject else SubjectKind.USER.value
        sid, practitioner_id = _uuid(claims.get("sid")), _uuid(claims.get("practitioner_id"))
    else:
        # Mapped by configuration only: the configured claim names a person; nothing else counts.
        named = claims.get(subject_claim)
        if not isinstance(named, str) or not named:
            raise unauthenticated(
                "invalid-token", f"The access token does not name its person (claim {subject_claim!r})."
            )
        subject, kind, sid, practitioner_id = named, SubjectKind.USER.value, None, None
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
        local=local,
        sid=sid,
        practitioner_id=practitioner_id,
    )
