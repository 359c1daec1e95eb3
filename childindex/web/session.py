"""The pages' session: an encrypted cookie holding the OAuth tokens, refreshed and turned into a bearer.

The pages are an OAuth client of the built-in authorization server. After sign-in the session
cookie carries the access and refresh tokens sealed with AES-GCM (HttpOnly, SameSite=Lax, Secure
on https, `__Host-` prefixed there), so the browser can neither read nor alter them. For each page
request the middleware below opens the cookie, refreshes the access token when it is about to
expire, and hands the request on with `Authorization: Bearer ...`: the same resolver, grant
checks, policies, rate limits and refusal audit as the API apply to every page, with nothing
re-implemented. Headers a browser might send itself (a bearer, the development actor, a purpose)
are dropped from page requests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Paths that are not pages: the API, FHIR, OAuth, docs and static files keep their own rules.
NOT_PAGES = (
    "/api/",
    "/fhir",
    "/oauth/",
    "/.well-known/",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/healthz",
    "/readyz",
    "/metrics",  # (the scraper's bearer token must reach it: childindex/metrics.py)
)
STATIC_PREFIX = "/static/"
_DROPPED = {b"authorization", b"x-dev-actor", b"x-purpose-of-use", b"x-shield-override-reason", b"cookie"}
REFRESH_MARGIN_SECONDS = 60
# Page requests on a session that has just ended go to "You were signed out" (childindex/web/comeback.py),
# except these, which say it themselves (and "/", the start page, which says it in a line).
PASS_THROUGH = ("/signed-out", "/signin/", "/signout", "/session/", "/accessibility")
QUIET_PATHS = ("/session/left",)  # asks how long is left without counting as use (the time-out warning)
MAX_HELD_BODY = 16_384
ENDED_SAYS = {
    "timeout": "You were signed out because you had not used the service for a while.",
    "too-long": "You were signed out because you had been signed in for the longest time a sign-in lasts.",
    "ended": "Your sign-in has ended; please sign in again.",
}
OnEnd = Callable[..., str]
Ended = tuple[str, "WebSession"]  # why a session that came with the request has ended, and that session

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def now() -> float:
    """The sessions' clock (what `seen` and `started` are measured on)."""
    return time.time()


def is_page(path: str) -> bool:
    """True for the server-rendered pages under / (not the API, FHIR, OAuth or static files)."""
    return not path.startswith(NOT_PAGES) and not path.startswith(STATIC_PREFIX)


@dataclass
class WebSession:
    """What the session cookie holds (sealed): tokens, CSRF secret, purpose of use, one flash message."""

    subject: str
    access_token: str
    access_expires: float
    refresh_token: str | None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    name: str | None = None
    purpose: str | None = None
    flash: str | None = None
    flash_link: list[str] | None = None  # [label, path] of a link the flash offers (the next step)
    search: dict[str, Any] | None = None  # the last search's terms and reason (web/search_pages.py)
    started: float = field(default_factory=time.time)
    seen: float = field(default_factory=time.time)

    def to_json(self) -> bytes:
        """The session as compact JSON."""
        return json.dumps(self.__dict__, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> WebSession:
        """A session from its JSON."""
        return cls(**json.loads(raw))


class Sealer:
    """AES-GCM sealing of cookie values with a key derived from the app's secret key."""

    def __init__(self, secret_key: str, purpose: str) -> None:
        key = hashlib.sha256(f"childindex-web:{purpose}:{secret_key}".encode()).digest()
        self._aead = AESGCM(key)
        self._aad = purpose.encode()

    def seal(self, data: bytes) -> str:
        """Encrypt and authenticate; URL-safe base64 without padding."""
        nonce = os.urandom(12)
        return (
            base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, data, self._aad)).decode().rstrip("=")
        )

    def open(self, value: str | None) -> bytes | None:
        """The plaintext, or None when the value was not sealed by us (or was altered)."""
        if not value:
            return None
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            return self._aead.decrypt(raw[:12], raw[12:], self._aad)
        except (InvalidTag, ValueError):
            return None


@dataclass(frozen=True)
class CookieConfig:
    """Names and flags of the pages' cookies."""

    secure: bool
    idle_seconds: int
    max_seconds: int
    warn_seconds: int = 120  # the time-out warning's lead time (the pages' JS, base.html)

    @property
    def session_name(self) -> str:
        """`__Host-` on https: the browser then refuses it without Secure, a Domain or a narrower Path."""
        return "__Host-childindex_session" if self.secure else "childindex_session"

    @property
    def flow_name(self) -> str:
        """The short-lived cookie that carries the PKCE verifier and state through sign-in."""
        return "__Host-childindex_signin" if self.secure else "childindex_signin"

    def header(self, name: str, value: str, *, max_age: int) -> bytes:
        """A Set-Cookie header value: HttpOnly, SameSite=Lax, Path=/, Secure on https."""
        parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Lax", f"Max-Age={max_age}"]
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts).encode()


class TokenClient:
    """Talks to our own token and revocation endpoints in-process, as any OAuth client would over HTTP."""

    def __init__(self, issuer: str, client_id: str) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self._recent: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def _post(self, app: ASGIApp, path: str, form: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=self.issuer) as client:
            return await client.post(path, data={**form, "client_id": self.client_id})

    async def exchange(self, app: ASGIApp, *, code: str, verifier: str, redirect_uri: str) -> httpx.Response:
        """Authorization code + PKCE verifier -> tokens."""
        form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
        return await self._post(app, "/oauth/token", {**form, "redirect_uri": redirect_uri})

    async def refresh(self, app: ASGIApp, refresh_token: str) -> dict[str, Any] | None:
        """New tokens for a refresh token, or None when refused (grant gone, reuse, expiry).

        Two page requests racing to refresh the same token would look like token theft to the
        rotation check (and revoke the sign-in), so one refresh per token is shared for a minute.
        """
        key = hashlib.sha256(refresh_token.encode()).hexdigest()
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            now = time.time()
            self._recent = {k: v for k, v in self._recent.items() if v[0] > now}
            if key in self._recent:
                return self._recent[key][1]
            response = await self._post(
                app, "/oauth/token", {"grant_type": "refresh_token", "refresh_token": refresh_token}
            )
            body = response.json() if response.status_code == 200 else None
            self._recent[key] = (now + 60, body)
        self._locks.pop(key, None)
        return body

    async def revoke(self, app: ASGIApp, token: str) -> None:
        """Revoke a token (RFC 7009); a refresh token takes its whole family with it."""
        await self._post(app, "/oauth/revoke", {"token": token})


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a token we were just handed by our own token endpoint (display use only)."""
    try:
        body = token.split(".")[1]
        data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        return data
    except (IndexError, ValueError):
        return {}


def session_from_tokens(body: dict[str, Any], *, previous: WebSession | None = None) -> WebSession:
    """A session (new, or carrying on a previous one) from a token response."""
    claims = token_claims(body["access_token"])
    expires = float(claims.get("exp") or time.time() + int(body.get("expires_in", 300)))
    if previous is not None:
        previous.access_token = body["access_token"]
        previous.access_expires = expires
        previous.refresh_token = body.get("refresh_token") or previous.refresh_token
        return previous
    return WebSession(
        subject=str(claims.get("sub", "")),
        access_token=body["access_token"],
        access_expires=expires,
        refresh_token=body.get("refresh_token"),
        name=claims.get("name"),
    )


def csrf_ok(session: WebSession | None, given: str | None) -> bool:
    """True when a form's token matches the session's CSRF secret."""
    return (
        session is not None
        and bool(given)
        and hmac.compare_digest(session.csrf.encode(), str(given).encode())
    )


def _cookie(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            k, _, v = part.strip().partition("=")
            if k == name:
                return v
    return None


class WebSessionMiddleware:
    """Opens the session cookie of page requests, refreshes tokens, sets the bearer and the page headers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        sealer: Sealer,
        cookies: CookieConfig,
        tokens: TokenClient,
        on_end: OnEnd | None = None,
    ) -> None:
        self.app = app
        self.sealer = sealer
        self.cookies = cookies
        self.tokens = tokens
        self.on_end = on_end

    async def _signed_out(
        self, scope: Scope, receive: Receive, send: Send, ended: tuple[str, WebSession]
    ) -> None:
        """A request on a session that has just ended: to "You were signed out", keeping the way back
        (and, for the forms that may be kept, what was typed: read here, never passed on)."""
        assert self.on_end is not None
        body = b""
        if scope["method"] == "POST":
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body") or len(body) > MAX_HELD_BODY:
                    break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        comeback = self.on_end(
            why=ended[0],
            session=ended[1],
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            referer=headers.get("referer"),
            host=headers.get("host", ""),
            body=body if len(body) <= MAX_HELD_BODY else b"",
            content_type=headers.get("content-type", ""),
        )
        out = [
            (b"location", b"/signed-out"),
            (b"set-cookie", self.set_cookie(None)),
            (b"set-cookie", comeback.encode("latin-1")),
            (b"cache-control", b"no-store"),
            (b"content-length", b"0"),
            (b"content-security-policy", CSP.encode()),
            (b"referrer-policy", b"same-origin"),
        ]
        await send({"type": "http.response.start", "status": 303, "headers": out})
        await send({"type": "http.response.body", "body": b""})

    def load(self, headers: list[tuple[bytes, bytes]]) -> WebSession | None:
        """The session in the request's cookie, if sealed by us and not idle or too old."""
        session, _ = self.load_why(headers)
        return session

    def load_why(self, headers: list[tuple[bytes, bytes]]) -> tuple[WebSession | None, Ended | None]:
        """The live session, or None and (when the cookie held one that has run out) why, with it."""
        raw = self.sealer.open(_cookie(headers, self.cookies.session_name))
        if raw is None:
            return None, None
        try:
            session = WebSession.from_json(raw)
        except (TypeError, ValueError):
            return None, None
        now = time.time()
        if now - session.started > self.cookies.max_seconds:
            return None, ("too-long", session)
        if now - session.seen > self.cookies.idle_seconds:
            return None, ("timeout", session)
        return session, None

    def set_cookie(self, session: WebSession | None) -> bytes:
        """The Set-Cookie value that stores (or, for None, clears) the session."""
        if session is None:
            return self.cookies.header(self.cookies.session_name, "", max_age=0)
        # The cookie outlives the idle limit (the server enforces that from `seen`), so that a request
        # after a time-out is told "you were signed out because ..." rather than met as a stranger.
        return self.cookies.header(
            self.cookies.session_name,
            self.sealer.seal(session.to_json()),
            max_age=max(self.cookies.idle_seconds, self.cookies.max_seconds),
        )

    async def _open(
        self, scope: Scope, headers: list[tuple[bytes, bytes]], *, asking: bool
    ) -> tuple[WebSession | None, Ended | None]:
        """The request's live session (its tokens refreshed when about to expire), or why it ended."""
        session, ended = self.load_why(headers)
        if (
            session is not None
            and not asking
            and session.refresh_token
            and session.access_expires - time.time() < REFRESH_MARGIN_SECONDS
        ):
            body = await self.tokens.refresh(scope["app"], session.refresh_token)
            if body is None:
                return None, ("ended", session)
            session = session_from_tokens(body, previous=session)
        return session, ended

    async def _ended(self, scope: Scope, receive: Receive, send: Send, ended: Ended, *, asking: bool) -> bool:
        """Note why the session ended; True when the request was answered here (to /signed-out)."""
        state: dict[str, Any] = scope["state"]
        state["web_signed_out"] = ended
        state["web_signed_out_reason"] = ENDED_SAYS[ended[0]]
        if ended[0] != "ended" and ended[1].refresh_token and not asking:  # of no use now: revoke it
            await self.tokens.revoke(scope["app"], ended[1].refresh_token)
        path = scope["path"]
        if self.on_end is None or path == "/" or path.startswith(PASS_THROUGH):
            return False
        await self._signed_out(scope, receive, send, ended)
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_page(scope["path"]):
            await self.app(scope, receive, send)
            return
        original: list[tuple[bytes, bytes]] = list(scope["headers"])
        had_cookie = _cookie(original, self.cookies.session_name) is not None
        state: dict[str, Any] = scope.setdefault("state", {})
        asking = scope["path"] in QUIET_PATHS  # the time-out warning asking how long is left
        session, ended = await self._open(scope, original, asking=asking)
        if ended is not None and await self._ended(scope, receive, send, ended, asking=asking):
            return
        if session is not None and not asking:
            session.seen = time.time()
        state["web_session"] = session
        headers = [(k, v) for k, v in original if k not in _DROPPED]
        # Cookies other than ours pass on untouched; ours never reaches the routes in clear.
        kept = [
            part
            for key, value in original
            if key == b"cookie"
            for part in value.decode("latin-1").split(";")
            if part.strip() and not part.strip().startswith(self.cookies.session_name + "=")
        ]
        if kept:
            headers.append((b"cookie", ";".join(kept).encode("latin-1")))
        if session is not None:
            headers.append((b"authorization", f"Bearer {session.access_token}".encode()))
            if session.purpose:
                headers.append((b"x-purpose-of-use", session.purpose.encode()))
        scope = dict(scope)
        scope["headers"] = headers

        async def send_with_session(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = list(message.get("headers", []))
                current: WebSession | None = state.get("web_session")
                if current is not None:
                    out.append((b"set-cookie", self.set_cookie(current)))
                elif had_cookie and not asking:  # (kept for the page the warning then goes to)
                    out.append((b"set-cookie", self.set_cookie(None)))
                out += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
                ]
                if self.cookies.secure:
                    out.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
                message = {**message, "headers": out}
            await send(message)

        await self.app(scope, receive, send_with_session)
