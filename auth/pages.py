"""The authorization server's own pages (sign-in form, refusals): a port the app may fill with its layout.

The server decides what a page says; a `SignInPages` decides how it looks. `PlainPages` is the
self-contained fallback (no stylesheet, nothing to load). The app installs the pages' GOV.UK
layout in its place (childindex/web/oauth_pages.py), so the sign-in looks like the rest of the service.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SignInForm:
    """What the sign-in page shows: the request to carry through, the CSRF token, errors and choices."""

    hidden: dict[str, str]
    csrf_token: str
    username: str = ""
    errors: dict[str, str] = field(default_factory=dict)  # field (or "form") -> message
    upstream_href: str | None = None


class SignInPages(Protocol):
    """Renders the authorization server's pages; `csp` is the Content-Security-Policy they need."""

    csp: str

    def sign_in(self, form: SignInForm) -> str:
        """The sign-in page: username, password and authenticator code."""
        ...

    def message(self, title: str, message: str) -> str:
        """A page that says why sign-in cannot go on."""
        ...


_FIELDS = (
    ("username", "Username", "text", "username", ""),
    ("password", "Password", "password", "current-password", ""),
    ("totp", "Code from your authenticator app", "text", "one-time-code", " inputmode='numeric'"),
)


class PlainPages:
    """Self-contained HTML with nothing to fetch (used when the app installs no layout)."""

    csp = "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    def _page(self, title: str, body: str) -> str:
        return (
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
            "</title><meta name='viewport' content='width=device-width'></head><body>"
            f"<main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
        )

    def sign_in(self, form: SignInForm) -> str:
        """The sign-in form as plain HTML."""
        hidden = "".join(
            f"<input type='hidden' name='{k}' value='{html.escape(v, quote=True)}'>"
            for k, v in form.hidden.items()
        )
        errors = "".join(f"<li>{html.escape(m)}</li>" for m in form.errors.values())
        note = f"<div role='alert'><ul>{errors}</ul></div>" if errors else ""
        fields = "".join(
            f"<p><label for='{name}'>{label}</label> <input id='{name}' name='{name}' type='{kind}'"
            f" autocomplete='{auto}'{extra}"
            + (f" value='{html.escape(form.username, quote=True)}'" if name == "username" else "")
            + "></p>"
            for name, label, kind, auto, extra in _FIELDS
        )
        upstream = (
            f"<p><a href='{html.escape(form.upstream_href, quote=True)}'>Sign in with your organisation's "
            "account</a></p>"
            if form.upstream_href
            else ""
        )
        return self._page(
            "Sign in to childindex",
            f"{note}<form method='post' action='/oauth/authorize' novalidate>{hidden}"
            f"<input type='hidden' name='csrf_token' value='{html.escape(form.csrf_token, quote=True)}'>"
            f"{fields}<p><button type='submit'>Sign in</button></p></form>{upstream}",
        )

    def message(self, title: str, message: str) -> str:
        """A plain message page."""
        return self._page(title, f"<p>{html.escape(message)}</p>")
