"""When a page session ends: why (said on a "You were signed out" page), where to come back to after
signing in again, and the half-filled form to put back (issue #20).

What is kept travels in one sealed cookie (AES-GCM, HttpOnly, SameSite=Lax, 30 minutes), never in a
URL: the reason, the subject whose session ended, the page to come back to (a same-origin relative
path, checked both when it is written and when it is used: no open redirect) and, for the forms
listed in `keepable`, what had been typed. Both the way back and the form are given back only to
the same person signing in again.

Forms kept: the changes to a child's record under /children/<id>/<action> (involvements, consents,
CAF steps, the TAC and its plan, details, the shield): they are typed by someone who has already
found the child and given a purpose, and losing them is what hurts. Not kept: the search and "add a
child" (personal details of a child not yet found; a search is made afresh with a fresh purpose of
use), the purpose of use and the child-protection override (a decision made for one look, never
carried over), the sign-in and admin forms, and any field named like a secret.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from childindex.web.session import CookieConfig, Sealer, WebSession, is_page

KEEP_SECONDS = 30 * 60
MAX_FORM_BYTES = 2000  # what is typed must fit in a cookie beside its sealing (browsers stop at 4 KB)
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_KEEPABLE = re.compile(rf"^/children/{_UUID}/(?!purpose$|override$)[a-z][a-z0-9-]*(/[a-z0-9-]+)*$")
_SECRET_FIELDS = re.compile(r"csrf|password|passcode|totp|secret|token|^code$", re.IGNORECASE)
_NOT_BACK_TO = ("/signout", "/signed-out", "/signin/", "/session/")

REASONS = {
    "timeout": "timeout",  # not used for a while (web_session_idle_minutes)
    "too-long": "too-long",  # signed in for the longest a sign-in lasts (refresh_token_hours)
    "ended": "ended",  # the sign-in was refused on renewal: revoked, suspended, signed out elsewhere
    "grant": "grant",  # the access grant was suspended or revoked while signed in
    "self": "self",  # signed out with the button
}


def safe_return(path: str | None) -> str | None:
    """`path` when it is a relative path to one of our pages on this site, else None (no open redirect)."""
    if not path or len(path) > 512 or not path.startswith("/") or path.startswith(("//", "/\\")):
        return None
    if "\\" in path or any(ord(c) < 32 or ord(c) == 127 for c in path):
        return None
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not is_page(parts.path) or parts.path.startswith(_NOT_BACK_TO):
        return None
    return path


def keepable(path: str) -> bool:
    """True for the forms whose half-filled answers are kept across a sign-in (see the module's note)."""
    return bool(_KEEPABLE.match(path))


def kept_fields(body: bytes, content_type: str) -> dict[str, Any] | None:
    """What was typed into a form (secrets and the CSRF token left out), or None when it cannot be kept."""
    if not content_type.startswith("application/x-www-form-urlencoded") or len(body) > 4 * MAX_FORM_BYTES:
        return None
    fields: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        if _SECRET_FIELDS.search(key):
            continue
        if key in fields:
            fields[key] = [*(fields[key] if isinstance(fields[key], list) else [fields[key]]), value]
        else:
            fields[key] = value
    if len(json.dumps(fields)) > MAX_FORM_BYTES:
        return None
    return fields


class Comeback:
    """The sealed cookie that carries what is needed across a sign-in."""

    def __init__(self, sealer: Sealer, cookies: CookieConfig) -> None:
        self.sealer = sealer
        self.cookies = cookies

    @property
    def name(self) -> str:
        """`__Host-` on https, as the session cookie."""
        return "__Host-childindex_comeback" if self.cookies.secure else "childindex_comeback"

    def header(self, data: dict[str, Any] | None) -> str:
        """The Set-Cookie value holding `data` (None: clear it)."""
        if data is None:
            return self.cookies.header(self.name, "", max_age=0).decode()
        sealed = self.sealer.seal(json.dumps({**data, "exp": time.time() + KEEP_SECONDS}).encode())
        return self.cookies.header(self.name, sealed, max_age=KEEP_SECONDS).decode()

    def read(self, cookies: Mapping[str, str]) -> dict[str, Any]:
        """What the cookie holds (empty when absent, altered or out of date)."""
        raw = self.sealer.open(cookies.get(self.name))
        if raw is None:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            return {}
        if not isinstance(data, dict) or float(data.get("exp", 0)) < time.time():
            return {}
        return data

    def kept_for(self, path: str, cookies: Mapping[str, str], subject: str | None) -> dict[str, Any] | None:
        """The form kept for the page at `path`, when the same person is signed in again."""
        held = self.read(cookies)
        form = held.get("form")
        if not isinstance(form, dict) or form.get("path") != path or not subject:
            return None
        if held.get("subject") != subject or not isinstance(form.get("fields"), dict):
            return None
        return dict(form["fields"])

    def on_end(
        self,
        *,
        why: str,
        session: WebSession | None,
        method: str,
        path: str,
        query: str,
        referer: str | None,
        host: str,
        body: bytes,
        content_type: str,
    ) -> str:
        """The cookie to set when a request arrives on a session that has just ended."""
        data: dict[str, Any] = {"why": why, "subject": session.subject if session else None}
        asked = path + (f"?{query}" if query else "")
        if method == "GET":
            data["back"] = safe_return(asked)
        else:
            came_from = urlsplit(referer or "")
            if came_from.netloc == host:
                query = f"?{came_from.query}" if came_from.query else ""
                data["back"] = safe_return(came_from.path + query)
            else:
                data["back"] = safe_return(path) if keepable(path) else None
            if keepable(path):
                fields = kept_fields(body, content_type)
                data["form"] = {"path": path, "fields": fields} if fields is not None else None
                data["form_too_big"] = fields is None
        return self.header(data)
