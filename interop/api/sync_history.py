"""Type- and system-level `_history` of the catalogue (IHE mCSD ITI-91 "Request Care Services
Updates"): `GET /fhir/{Type}/_history?_since=&_count=` and `GET /fhir/_history?_since=`.

Each entry is the resource as it is now (the catalogue keeps no earlier versions), newest change
first as R4 asks, in pages of `_count` with a `next` link that carries a cursor (the last entry's
change time, type and id), so a change made while a client pages through moves that row to the
top instead of shifting the pages under it. The Bundle's `meta.lastUpdated` is the instant the
answer was taken: the `_since` of the client's next poll. Reading the catalogue is not audited (it
holds no child data), as for its search; who may call it is the search's policy (auth/policy.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Response

from auth.policy import FHIR_CATALOGUE_TYPES
from directory.models import Practitioner, utcnow
from interop import openapi as doc
from interop import params as P
from interop import sync
from interop.api.catalogue import read_catalogue_resource
from interop.api.context import Ctx, CtxDep, Items
from interop.outcome import FhirError, fhir_json

_HISTORY_PARAMS = ("_since", "_count", "_cursor", "_format")


def catalogue_history(
    ctx: Ctx, kinds: tuple[str, ...], items: list[tuple[str, str]], path: str
) -> dict[str, Any]:
    """A history Bundle of the catalogue resources of `kinds` changed at or after `_since`."""
    return history_bundle(ctx, kinds, items, path, lambda page: [_entry(ctx, k, rid) for _at, k, rid in page])


EntriesOf = Callable[[list[sync.Cursor]], list[dict[str, Any]]]
"""A page of changes as history entries (those the caller may see)."""


def history_bundle(
    ctx: Ctx,
    kinds: tuple[str, ...],
    items: list[tuple[str, str]],
    path: str,
    entries_of: EntriesOf,
    where: Mapping[str, sa.ColumnElement[bool]] | None = None,
) -> dict[str, Any]:
    """A history Bundle of the resources of `kinds` changed at or after `_since`: the parameters
    checked, a page of changes, its entries, self and next links."""
    taken = utcnow()
    given: dict[str, str] = {}
    ignored: list[str] = []
    for key, value in items:
        if key not in _HISTORY_PARAMS:
            if not ctx.lenient:
                raise FhirError(
                    400,
                    "not-supported",
                    f"Unknown parameter '{key[:64]}' for _history; this server supports: "
                    f"{', '.join(_HISTORY_PARAMS)} {P.STRICT_REFUSAL}",
                    where=key[:64],
                )
            ignored.append(key[:64])
        elif key in given:
            raise FhirError(400, "invalid", f"Give {key} once.", where=key)
        else:
            given[key] = value
    if "_format" in given:
        P.check_format(given["_format"].strip().lower())
    since = sync.parse_since(given.get("_since"))
    count = _count(given.get("_count"))
    cursor = sync.decode_cursor(given.get("_cursor"))
    found = sync.changed_since(ctx.session, kinds, since, cursor, count + 1, where) if count else []
    page, more = found[:count], len(found) > count
    entries = entries_of(page)
    if ignored:
        entries.append({"resource": P.ignored_outcome(ignored)})
    kept = [(k, v) for k, v in items if k in ("_since", "_count")]
    links = [{"relation": "self", "url": _url(ctx, path, [*kept, *_cursor_item(given)])}]
    if more:
        links.append(
            {"relation": "next", "url": _url(ctx, path, [*kept, ("_cursor", sync.encode_cursor(page[-1]))])}
        )
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": uuid.uuid4().hex,
        "meta": {"lastUpdated": taken.isoformat()},
        "type": "history",
        "link": links,
    }
    if entries:
        bundle["entry"] = entries
    return bundle


def _count(raw: str | None) -> int:
    if raw is None:
        return P.DEFAULT_COUNT
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise FhirError(400, "invalid", "_count must be a whole number.", where="_count")
    return min(int(raw), P.MAX_COUNT)


def _cursor_item(given: dict[str, str]) -> list[tuple[str, str]]:
    return [("_cursor", given["_cursor"])] if "_cursor" in given else []


def _url(ctx: Ctx, path: str, items: list[tuple[str, str]]) -> str:
    return f"{ctx.base}/{path}" + (f"?{urlencode(items)}" if items else "")


def _entry(ctx: Ctx, kind: str, rid: uuid.UUID) -> dict[str, Any]:
    """A changed catalogue resource as it is now."""
    res = read_catalogue_resource(ctx, kind, str(rid))
    row = ctx.session.get(sync.CATALOGUE_TABLES[kind], rid)
    return history_entry(ctx, kind, rid, res, created=isinstance(row, Practitioner) and row.version == 1)


def history_entry(
    ctx: Ctx, kind: str, rid: uuid.UUID | str, res: dict[str, Any], *, created: bool
) -> dict[str, Any]:
    """A changed resource as it is now, as its create (its first version) or an update."""
    response: dict[str, Any] = {
        "status": "201" if created else "200",
        "lastModified": res["meta"]["lastUpdated"],
    }
    if res["meta"].get("versionId"):
        response["etag"] = f'W/"{res["meta"]["versionId"]}"'
    return {
        "fullUrl": f"{ctx.base}/{kind}/{rid}",
        "resource": res,
        "request": {"method": "POST" if created else "PUT", "url": kind if created else f"{kind}/{rid}"},
        "response": response,
    }


def _type_history(kind: str) -> Any:
    def type_history(ctx: CtxDep, items: Items) -> Response:
        return fhir_json(catalogue_history(ctx, (kind,), items, f"{kind}/_history"))

    type_history.__doc__ = (
        f"What changed in {kind} at or after _since (an instant), newest first, in pages of _count."
    )
    return type_history


def add_sync_history_routes(router: APIRouter) -> None:
    """`/{Type}/_history` for each catalogue type and `/_history` over all of them. Add these before
    the read routes: `/{Type}/{rid}` would otherwise take `_history` for an id."""

    for kind in FHIR_CATALOGUE_TYPES:
        router.add_api_route(
            f"/{kind}/_history",
            _type_history(kind),
            methods=["GET"],
            name=f"fhir_history_type_{kind}",
            openapi_extra=doc.answers("A history Bundle"),
        )

    @router.get("/_history", name="fhir_history_system", openapi_extra=doc.answers("A history Bundle"))
    def system_history(ctx: CtxDep, items: Items) -> Response:
        """What changed in the catalogue at or after _since (the types your scopes let you search)."""
        kinds = tuple(k for k in FHIR_CATALOGUE_TYPES if ctx.may(k, "s"))
        return fhir_json(catalogue_history(ctx, kinds, items, "_history"))
