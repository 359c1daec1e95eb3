"""InputGuard: what a request must be before any route reads it, checked once for every surface.

- A JSON body nested deeper than `max_json_depth`: Python's parser recurses, so 100,000 brackets
  were a RecursionError (a 500), and a few hundred still broke code that walks the result. The
  depth is found by a byte scan before anything parses the body: counting the brackets settles
  nearly every body at C speed (an ordinary one has fewer brackets in all than the limit), and
  only a body with more is walked, its strings skipped.
- A NUL character in the query string, the path, a JSON string or a form field: PostgreSQL cannot
  store or even compare text holding one (a 500), and no field of ours has a use for it.
- A body larger than its surface allows (413), a header we read longer than any sensible value
  of it (an If-Match of 5,000 digits, a reason of 100 KB), and an address longer than any of our
  parameters needs (8 KiB of query string, 2 KiB of path).

Each refusal is answered in the format of the surface the path belongs to (problem+json for the
app API, OperationOutcome under /fhir, OAuth error JSON under /oauth, a page for the pages):
`create_app` hands the guard one renderer per surface. Plain ASGI, like RequestHeaders: on the
search path it costs a look at the headers, one bytes.count pair and two substring tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # a JSON string, escapes and all
# Brackets only, each pair as [ ]: what is left of a body once its strings are gone.
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# \u0000 preceded by an even number of backslashes (an odd one would make it literal text).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")

# Headers the service reads, and the longest value any of them needs. Others may be as long as
# `max_header_bytes` (session cookies carry sealed tokens).
HEADER_CAPS: dict[bytes, int] = {
    b"authorization": 8192,
    b"x-purpose-of-use": 64,
    b"x-shield-override-reason": 500,
    b"x-dev-actor": 1000,
    b"prefer": 200,
    b"if-match": 64,
    b"if-none-exist": 2048,
    b"content-type": 200,
}
_SHORT = min(HEADER_CAPS.values())
# Every parameter of ours is short (the longest, a FHIR search naming 20 patients, is about 1 KB).
MAX_QUERY_BYTES = 8192
MAX_PATH_BYTES = 2048


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused before any route saw it."""

    status: int
    code: str
    title: str
    message: str


Renderer = Callable[[Request, Refusal], Response]


def json_too_deep(raw: bytes, limit: int) -> bool:
    """True when a JSON text nests arrays and objects more than `limit` deep.

    Brackets inside strings do not count. Text that is not JSON is judged as far as it goes
    (the parser refuses it anyway).
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # cannot nest deeper than it has brackets: nearly every body stops here
    brackets = _STRING.sub(b"", raw).translate(_SQUARE, _NOT_BRACKETS)
    # Each round removes the innermost pairs, so a body nested d deep is gone after d rounds; all
    # in C, about a millisecond for a 5 MiB Bundle.
    for _ in range(limit):
        inner = brackets.replace(b"[]", b"")
        if len(inner) == len(brackets):
            break
        brackets = inner
    if not brackets:
        return False
    if brackets.replace(b"[]", b"") != brackets:
        return True  # still nested after `limit` rounds
    # Unbalanced (not JSON): the parser would still descend into every bracket left open.
    return brackets.count(b"[") > limit


def has_nul(raw: bytes, *, json: bool) -> bool:
    """True when a JSON text (an escaped \\u0000 or a raw NUL) or a form body or query string (%00)
    carries a NUL character."""
    if b"\x00" in raw:
        return True
    if json:
        return b"\\u0000" in raw and _NUL_ESCAPE.search(raw) is not None
    return b"%00" in raw


def _media_type(value: bytes) -> str:
    if value == b"application/json":
        return "application/json"  # the search path's, spelled as every client spells it
    return value.split(b";", 1)[0].strip().lower().decode("latin-1")


class InputGuard:
    """Refuses, before routing, what no route can handle safely (see the module's docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_json_depth: int,
        max_body_bytes: int,
        surfaces: Sequence[tuple[str, int, Renderer]],
        default: Renderer,
        max_header_bytes: int = 16384,
    ) -> None:
        """`surfaces`: (path prefix, largest body, renderer) for each surface with its own error
        format; every other path gets `default` and `max_body_bytes`."""
        self.app = app
        self.max_json_depth = max_json_depth
        self.max_body_bytes = max_body_bytes
        self.surfaces = tuple(surfaces)
        self.default = default
        self.max_header_bytes = max_header_bytes

    def _surface(self, path: str) -> tuple[int, Renderer]:
        for prefix, limit, renderer in self.surfaces:
            if path.startswith(prefix):
                return limit, renderer
        return self.max_body_bytes, self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal, media, length = self._check_head(scope)
        if refusal is None and scope["method"] in _BODY_METHODS:
            limit, _ = self._surface(scope["path"])
            if length is not None and length > limit:
                refusal = _too_large(limit)
            else:
                body, more, refusal = await _read_body(receive, limit)
                if refusal is None:
                    refusal = self._check_body(body, media)
                    receive = _replay(body, more, receive)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        _, renderer = self._surface(scope["path"])
        response = renderer(Request(scope, receive), refusal)
        await response(scope, receive, send)

    def _check_head(self, scope: Scope) -> tuple[Refusal | None, str, int | None]:
        """Path, query string and headers; also the body's media type and declared length."""
        query: bytes = scope.get("query_string", b"")
        if len(query) > MAX_QUERY_BYTES or len(scope["path"]) > MAX_PATH_BYTES:
            message = (
                f"The address is too long (path {MAX_PATH_BYTES}, query {MAX_QUERY_BYTES} bytes at most)."
            )
            return _bad("address-too-long", message), "", None
        if "\x00" in scope["path"] or has_nul(query, json=False):
            return (
                _bad("nul", "The address carries a NUL character (%00), which no value here may hold."),
                "",
                None,
            )
        media, length = "", None
        for name, value in scope["headers"]:
            # (no cap is below _SHORT, so a short value needs no look-up)
            if len(value) > _SHORT and len(value) > (cap := HEADER_CAPS.get(name, self.max_header_bytes)):
                header = name.decode("latin-1")
                return _bad("header-too-long", f"The {header} header is longer than {cap} bytes."), "", None
            if name == b"content-type":
                media = _media_type(value)
            elif name == b"content-length":
                length = int(value) if value.isdigit() and len(value) < 19 else None
            elif name == b"if-none-exist" and has_nul(value, json=False):
                return _bad("nul", "If-None-Exist carries a NUL character (%00)."), "", None
        return None, media, length

    def _check_body(self, body: bytes, media: str) -> Refusal | None:
        if media == "application/json" or media.endswith("+json"):
            if json_too_deep(body, self.max_json_depth):
                return _bad(
                    "too-deep",
                    f"The JSON body nests arrays and objects more than {self.max_json_depth} deep; "
                    "nothing this service takes needs that many.",
                )
            if has_nul(body, json=True):
                return _bad(
                    "nul", "The JSON body carries a NUL character (\\u0000), which no value here may hold."
                )
        elif media == "application/x-www-form-urlencoded" and has_nul(body, json=False):
            return _bad("nul", "The form carries a NUL character (%00), which no value here may hold.")
        elif media == "multipart/form-data" and b"\x00" in body:  # (no route here takes a file)
            return _bad("nul", "The form carries a NUL character, which no value here may hold.")
        return None


def _bad(code: str, message: str) -> Refusal:
    return Refusal(400, code, "The request cannot be read", message)


def _too_large(limit: int) -> Refusal:
    return Refusal(
        413, "too-large", "The request is too large", f"The request body is larger than {limit} bytes."
    )


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, list[Message], Refusal | None]:
    """The whole body (at most `limit` bytes), and any message after it (a disconnect)."""
    chunks: list[bytes] = []
    size = 0
    message = await receive()
    while True:
        if message["type"] != "http.request":
            return b"".join(chunks), [message], None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", [], _too_large(limit)
        if not message.get("more_body", False):
            return (b"".join([*chunks, chunk]) if chunks else chunk), [], None
        chunks.append(chunk)
        message = await receive()


def _replay(body: bytes, after: list[Message], receive: Receive) -> Receive:
    """A receive that gives the app the body read already, then whatever came after it."""
    pending: list[Message] = [*reversed(after), {"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay
