"""What a search found, and the searchset Bundle it becomes (paging links, includes, the outcome)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from directory.models import utcnow
from interop import params as P
from interop.api.context import Ctx
from interop.outcome import FhirError


@dataclass
class Found:
    """What a search found: matches (one page), includes, and the total."""

    total: int
    matches: list[dict[str, Any]]
    includes: list[dict[str, Any]]
    children: list[uuid.UUID]


def dedupe(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each resource once (the first of each Type/id), in order."""
    seen: dict[str, dict[str, Any]] = {}
    for r in resources:
        seen.setdefault(f"{r['resourceType']}/{r['id']}", r)
    return list(seen.values())


def _link(ctx: Ctx, kind: str, items: list[tuple[str, str]], offset: int) -> str:
    kept = [(k, v) for k, v in items if k != "_offset" and k.partition(":")[0] not in ()]
    return f"{ctx.base}/{kind}?" + urlencode([*kept, ("_offset", str(offset))])


def _links(
    ctx: Ctx, kind: str, q: P.Query, found: Found, items: list[tuple[str, str]]
) -> list[dict[str, str]]:
    """self (without the parameters ignored), and first/previous/next/last unless only counting."""
    used = [(k, v) for k, v in items if k not in q.ignored]
    links = [{"relation": "self", "url": _link(ctx, kind, used, q.offset)}]
    if q.summary != "count" and q.count > 0:
        last = max(0, (found.total - 1) // q.count * q.count)
        links.append({"relation": "first", "url": _link(ctx, kind, used, 0)})
        if q.offset > 0:
            links.append({"relation": "previous", "url": _link(ctx, kind, used, max(0, q.offset - q.count))})
        if q.offset + q.count < found.total:
            links.append({"relation": "next", "url": _link(ctx, kind, used, q.offset + q.count)})
        links.append({"relation": "last", "url": _link(ctx, kind, used, last)})
    return links


def searchset(ctx: Ctx, kind: str, q: P.Query, found: Found, items: list[tuple[str, str]]) -> dict[str, Any]:
    """A searchset Bundle with self/first/previous/next/last links."""
    entries = [
        {
            "fullUrl": f"{ctx.base}/{r['resourceType']}/{r['id']}",
            "resource": P.subset(r, summary=q.summary, elements=q.elements),
            "search": {"mode": "match"},
        }
        for r in found.matches
    ]
    matched = {f"{r['resourceType']}/{r['id']}" for r in found.matches}
    entries += [
        {"fullUrl": f"{ctx.base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "include"}}
        for r in found.includes
        if f"{r['resourceType']}/{r['id']}" not in matched
    ]
    if q.ignored:
        entries.append({"resource": P.ignored_outcome(q.ignored), "search": {"mode": "outcome"}})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": uuid.uuid4().hex,
        "meta": {"lastUpdated": utcnow().isoformat()},
        "type": "searchset",
        "total": found.total,
        "link": _links(ctx, kind, q, found, items),
    }
    if entries:
        bundle["entry"] = entries
    return bundle


def whole_searchset(ctx: Ctx, kind: str, resources: list[dict[str, Any]], what: str) -> dict[str, Any]:
    """A searchset of every resource of a type that takes no search parameters (your Subscriptions,
    the Groups): any parameter is ignored and reported, as R4 says, unless 'Prefer: handling=strict',
    which refuses it (400 naming it)."""
    ignored = list(dict.fromkeys(ctx.request.query_params.keys()))
    if ignored and not ctx.lenient:
        raise FhirError(
            400,
            "not-supported",
            f"Search {what} without parameters {P.STRICT_REFUSAL}",
            where=ignored[0][:64],
        )
    entries: list[dict[str, Any]] = [
        {"fullUrl": f"{ctx.base}/{kind}/{r['id']}", "resource": r, "search": {"mode": "match"}}
        for r in resources
    ]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(entries)}
    bundle["link"] = [{"relation": "self", "url": f"{ctx.base}/{kind}"}]  # R4 http: what was searched
    if ignored:
        entries.append(
            {"resource": P.ignored_outcome([k[:64] for k in ignored]), "search": {"mode": "outcome"}}
        )
    if entries:
        bundle["entry"] = entries
    return bundle
