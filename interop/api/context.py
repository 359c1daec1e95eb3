"""What one /fhir request works with (`Ctx`), its body and search parameters, and the small helpers
every interaction shares (ids, versions, references)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import cached_property
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlmodel import Session

from auth.policy import smart_hint, smart_scopes
from directory.errors import InvalidInput
from directory.http.config import practice
from directory.http.deps import CurrentActor, SessionDep
from directory.models import Actor, Contact, Role
from interop import params as P
from interop.outcome import FhirError
from interop.picture import Pictures

MAX_BODY_BYTES = 5 * 1024 * 1024
"""The largest request body taken when the app does not say (settings.fhir_max_body_bytes)."""


@dataclass
class Ctx:
    """What one /fhir request works with."""

    request: Request
    session: Session
    actor: Actor
    # what the next written resource's answer says besides it (a hand-over asked, not yet accepted)
    notes: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        """This server's FHIR base URL."""
        return str(self.request.base_url).rstrip("/") + "/fhir"

    @property
    def fallback(self) -> Contact:
        """Whom to ask when a shielded child has no locality team on record."""
        return practice(self.request).fallback_team

    @cached_property
    def pictures(self) -> Pictures:
        """The children's pictures this request has built, as the caller may see them (unaudited)."""
        return Pictures(self.session, actor=self.actor, fallback=self.fallback)

    @property
    def lenient(self) -> bool:
        """Whether unknown search parameters are ignored: yes (as R4 expects of a server, and stock
        clients rely on) unless the client sent `Prefer: handling=strict`."""
        return "handling=strict" not in self.request.headers.get("prefer", "").replace(" ", "").lower()

    def may(self, kind: str, letter: str) -> bool:
        """Whether the caller's scopes grant `letter` (c, r, u, s) on `kind`."""
        scopes = getattr(self.request.state, "scopes", None)
        return scopes is None or bool(set(scopes) & smart_scopes(kind, letter))

    def need(self, kind: str, letter: str) -> None:
        """Refuse (403 forbidden) unless the scopes grant `letter` on `kind`."""
        if not self.may(kind, letter):
            word = {"c": "create", "r": "read", "u": "update", "s": "search"}[letter]
            context = "system" if self.actor.role == Role.SYSTEM else "user"
            named = " or ".join(h.format(context=context) for h in smart_hint(kind, letter))
            raise FhirError(
                403,
                "forbidden",
                f"Your access token does not let you {word} {kind}: it needs {named} "
                "(or a wider scope granting the same).",
            )


async def get_ctx(request: Request, session: SessionDep, actor: CurrentActor) -> Ctx:
    """The request context (the actor is resolved, and the route's policy applied, first). Async:
    it does no I/O, and nothing may begin the transaction outside the endpoint's own thread."""
    return Ctx(request=request, session=session, actor=actor)


CtxDep = Annotated[Ctx, Depends(get_ctx)]


async def fhir_body(request: Request) -> dict[str, Any]:
    """The request's FHIR JSON body: refused when not JSON, too large, or not an object."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/fhir+json", "application/json"):
        raise FhirError(415, "not-supported", "Send the resource as application/fhir+json.")
    limit = getattr(request.app.state, "fhir_max_body_bytes", MAX_BODY_BYTES)
    raw = await request.body()
    if len(raw) > limit:
        raise FhirError(413, "too-costly", f"The request body is larger than {limit} bytes.")
    try:
        body = json.loads(raw)
    except ValueError as exc:  # not JSON, not UTF-8, or a number too long to read (over 4,300 digits)
        raise FhirError(400, "structure", f"The body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise FhirError(
            400, "structure", "The body must be a FHIR resource: a JSON object with a resourceType."
        )
    local_references(body, base=str(request.base_url).rstrip("/") + "/fhir")
    return body


def reference_nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every Reference in a FHIR JSON tree: each object with a string 'reference' (iteratively, so a
    deep body cannot exhaust the stack)."""
    stack: list[Any] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("reference"), str):
            yield item
        stack.extend(v for v in item.values() if isinstance(v, (dict, list)))


def local_references(body: dict[str, Any], *, base: str) -> None:
    """Make every absolute reference to this server relative ('Patient/<id>'), in place, and refuse
    one to another server: it names a resource held elsewhere, which must never be taken for the
    local one with the same id."""
    for node in reference_nodes(body):
        ref = node["reference"]
        if not ref.lower().startswith(("http://", "https://")):
            continue
        if not ref.startswith(base + "/"):
            raise FhirError(
                400,
                "invalid",
                f"The reference '{ref[:200]}' points at another server; this server resolves only "
                f"its own resources: send 'Patient/<id>' (or '{base}/Patient/<id>').",
            )
        node["reference"] = ref[len(base) + 1 :]


Body = Annotated[dict[str, Any], Depends(fhir_body)]


async def search_items(request: Request) -> list[tuple[str, str]]:
    """Search parameters from the query string and, for POST _search, the form body."""
    items = list(request.query_params.multi_items())
    if request.method == "POST":
        form = await request.form()
        items += [(k, str(v)) for k, v in form.multi_items()]
    return items


Items = Annotated[list[tuple[str, str]], Depends(search_items)]


def resource_id(value: str, kind: str) -> uuid.UUID:
    """The uuid of a resource named in a URL (404 when it cannot be one of ours)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise FhirError(404, "not-found", f"No {kind} has the id '{value}'.") from None


def search_ids(values: list[str]) -> list[uuid.UUID]:
    """The ids a search's _id names; one that is not an id of ours matches nothing (no 404 in a search)."""
    out = []
    for value in values:
        try:
            out.append(uuid.UUID(value))
        except ValueError:
            out.append(uuid.UUID(int=0))
    return out


def ref_ids(values: list[str], kind: str, name: str) -> list[uuid.UUID]:
    """The ids a reference parameter names ('Kind/<id>' or '<id>'); one not of ours matches nothing."""
    out = []
    for v in values:
        tail = v.rstrip("/").split("/")
        if len(tail) >= 2 and tail[-2] not in (kind, "PractitionerRole" if kind == "Practitioner" else kind):
            raise FhirError(400, "invalid", f"'{name}' must reference a {kind}.", where=name)
        try:
            out.append(uuid.UUID(tail[-1]))
        except ValueError:
            out.append(uuid.UUID(int=0))  # no such record: matches nothing
    return out


def etag(resource: dict[str, Any]) -> dict[str, str]:
    """The ETag and Last-Modified headers of a resource: from its `meta.versionId` and
    `meta.lastUpdated` (each only when the resource carries it)."""
    meta = resource.get("meta") or {}
    headers = {}
    if meta.get("versionId"):
        headers["ETag"] = f'W/"{meta["versionId"]}"'
    updated = meta.get("lastUpdated")
    if isinstance(updated, str):
        try:
            when = datetime.fromisoformat(updated)
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not None:
            headers["Last-Modified"] = format_datetime(when.astimezone(UTC), usegmt=True)
    return headers


def if_match(value: str | None) -> int | None:
    """The version in an If-Match header (W/"3" or "3")."""
    if not value:
        return None
    found = re.fullmatch(r'\s*(?:W/)?"?([0-9]{1,9})"?\s*', value)
    if not found:
        raise FhirError(400, "invalid", f'If-Match must carry a version like W/"3", not {value!r}.')
    return int(found.group(1))


def require_purpose(actor: Actor) -> None:
    """Refuse a search of children without a purpose of use."""
    if actor.purpose is None:
        raise InvalidInput("Say why you are searching: give a purpose of use (X-Purpose-Of-Use).")


def too_costly(message: str) -> FhirError:
    """A search refused because it could match too much."""
    return FhirError(400, "too-costly", message)


_JSON_TYPES = frozenset(
    {"application/fhir+json", "application/json", "application/json+fhir", "application/*", "*/*", "json"}
)


_NDJSON_TYPES = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})


def _route_name(request: Request) -> str | None:
    return getattr(request.scope.get("route"), "name", None)


def json_only(request: Request) -> None:
    """406 for a request that accepts no JSON (`Accept: application/fhir+xml`, `_format=xml`): this
    server answers FHIR JSON only, and must not send JSON to a client that asked for something else."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        P.check_format(fmt.strip().lower())
    accept = request.headers.get("accept")
    if not accept:
        return
    for part in accept.split(","):
        media, *params = (p.strip().lower() for p in part.split(";"))
        refused = any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params)
        if media in _JSON_TYPES and not refused:
            return
        if media in _NDJSON_TYPES and not refused and _route_name(request) == "fhir_export_file":
            return  # a Bulk Data file is NDJSON (interop/bulk), and its client may ask for just that
    raise FhirError(
        406, "not-supported", "This server answers in FHIR JSON only: accept application/fhir+json."
    )
