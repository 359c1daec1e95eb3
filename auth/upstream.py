"""Sign-in through the authority's own OpenID Connect provider (Entra ID, NHS CIS2, Keycloak...).

Discovery from the issuer URL (the document's issuer must match exactly), the authorization
code flow with PKCE and a nonce, and ID token validation: signature against the provider's
JWKS (pinned asymmetric algorithms), iss, aud, azp, exp/iat, nonce, and a second factor.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError

from auth.config import AuthConfig
from auth.tokens import KeysUnavailable, RemoteJwks, _b64json

ID_TOKEN_ALGS = ("RS256", "ES256", "PS256")
# amr values (RFC 8176) that show more than a password was used.
MULTI_FACTOR = {"mfa", "otp", "hwk", "swk", "sc", "fpt", "face", "iris", "pop", "sms", "tel"}


class UpstreamError(Exception):
    """The upstream provider's answer cannot be trusted or does not allow sign-in."""


class UpstreamOIDC:
    """One configured upstream provider: its discovery document and keys, cached."""

    def __init__(self, cfg: AuthConfig) -> None:
        if not (cfg.upstream_issuer and cfg.upstream_client_id):
            raise ValueError("upstream OIDC needs an issuer and a client id")
        self.cfg = cfg
        self.issuer = cfg.upstream_issuer.rstrip("/")
        self.client_id = cfg.upstream_client_id
        self._lock = threading.Lock()
        self._meta: dict[str, Any] | None = None
        self._jwks: RemoteJwks | None = None

    @property
    def callback_url(self) -> str:
        """Where the provider sends the browser back to."""
        return f"{self.cfg.issuer}/oauth/upstream/callback"

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once)."""
        with self._lock:
            if self._meta is None:
                url = f"{self.issuer}/.well-known/openid-configuration"
                try:
                    response = httpx.get(url, timeout=5.0)
                    response.raise_for_status()
                    meta = response.json()
                except (httpx.HTTPError, ValueError) as exc:
                    raise UpstreamError(f"The sign-in provider cannot be reached ({url}).") from exc
                if meta.get("issuer", "").rstrip("/") != self.issuer:
                    raise UpstreamError("The sign-in provider's discovery document names another issuer.")
                self._meta = meta
                self._jwks = RemoteJwks(meta["jwks_uri"])
            return self._meta

    def authorize_url(self, *, state: str, nonce: str, verifier: str) -> str:
        """The provider's authorization URL for this sign-in."""
        meta = self.metadata()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.callback_url,
                "scope": "openid profile email",
                "state": state,
                "nonce": nonce,
                "code_challenge": create_s256_code_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        return f"{meta['authorization_endpoint']}?{query}"

    def exchange(self, *, code: str, verifier: str, nonce: str) -> dict[str, Any]:
        """Swap the code for tokens and return the validated ID token's claims."""
        meta = self.metadata()
        auth = (self.client_id, self.cfg.upstream_client_secret) if self.cfg.upstream_client_secret else None
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.callback_url,
            "code_verifier": verifier,
        }
        if auth is None:
            data["client_id"] = self.client_id
        try:
            response = httpx.post(meta["token_endpoint"], data=data, auth=auth, timeout=10.0)
            response.raise_for_status()
            id_token = response.json()["id_token"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise UpstreamError("The sign-in provider did not return an ID token.") from exc
        return self.validate_id_token(id_token, nonce=nonce)

    def validate_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        """Check the ID token's signature and claims; refuse single-factor sign-ins."""
        self.metadata()
        assert self._jwks is not None
        try:
            header = _b64json(id_token.split(".")[0])
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            raise UpstreamError("The ID token cannot be read.") from exc
        if header.get("alg") not in ID_TOKEN_ALGS:
            raise UpstreamError("The ID token is signed with an algorithm we do not accept.")
        try:
            key = self._jwks.get(str(header.get("kid", "")))
        except KeysUnavailable as exc:
            raise UpstreamError("The sign-in provider's keys cannot be fetched.") from exc
        if key is None:
            raise UpstreamError("The ID token is signed with a key the provider does not publish.")
        try:
            token = jwt.decode(id_token, key, algorithms=list(ID_TOKEN_ALGS))
            jwt.JWTClaimsRegistry(
                leeway=self.cfg.leeway_seconds,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.client_id},
                exp={"essential": True},
                iat={"essential": True},
                sub={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(token.claims)
        except JoseError as exc:
            raise UpstreamError(f"The ID token was refused: {exc.description or exc.error}.") from exc
        claims = token.claims
        azp = claims.get("azp")
        if azp is not None and azp != self.client_id:
            raise UpstreamError("The ID token was issued to another client.")
        amr = claims.get("amr") or []
        if self.cfg.upstream_require_mfa and not (set(amr) & MULTI_FACTOR):
            raise UpstreamError(
                "Two factors are required to use this directory: sign in to your "
                "organisation's account with multi-factor authentication."
            )
        return claims
