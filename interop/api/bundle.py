"""Transaction (all or nothing) and batch (each entry on its own) Bundles of creates, updates and reads.

Entries run in FHIR's order (POST, PUT, GET), an entry after those it references by fullUrl. They
share the request's context, and so its pictures: a child's is built once and again only after an
entry changes that child (see writes/common.py).
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from auth.deps import count_read
from auth.policy import FHIR_CHILD_TYPES
from directory.errors import DomainError
from interop.api.context import Ctx, etag, if_match, reference_nodes
from interop.api.read import read_resource
from interop.api.writes import CREATE, UPDATE, Written, check_type
from interop.outcome import FhirError, from_domain, operation_outcome

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


def run_bundle(ctx: Ctx, body: dict[str, Any], max_entries: int) -> dict[str, Any]:
    """A transaction (all or nothing) or a batch (each entry on its own) Bundle."""
    kind, entries = _entries_of(body, max_entries)
    ids: dict[str, str] = {}
    results: dict[int, dict[str, Any]] = {}
    for i in _processing_order(entries):
        entry = entries[i]
        if kind == "transaction":
            try:
                results[i] = _entry(ctx, i, entry, ids)
            except (FhirError, DomainError) as err:
                if isinstance(err, DomainError):
                    err.data["where"] = f"Bundle.entry[{i}]"
                    err.message = _prefixed(err.message, i)
                    raise
                raise _entry_error(err, i) from None
        else:
            try:
                with ctx.session.begin_nested():
                    results[i] = _entry(ctx, i, entry, ids)
            except (FhirError, DomainError) as err:
                ctx.pictures.clear()  # the entry's changes are undone: keep no picture built on them
                fe = _entry_error(err, i)
                results[i] = {
                    "response": {
                        "status": str(fe.status),
                        "outcome": operation_outcome(fe.code, fe.message, where=fe.where),
                    }
                }
    return {
        "resourceType": "Bundle",
        "id": uuid.uuid4().hex,
        "type": f"{kind}-response",
        "entry": [results[i] for i in range(len(entries))],
    }


def _entries_of(body: dict[str, Any], max_entries: int) -> tuple[str, list[Any]]:
    """The Bundle's type (transaction or batch) and entries, once it is one this server takes."""
    if body.get("resourceType") != "Bundle":
        raise FhirError(
            400,
            "invalid",
            f"POST /fhir takes a Bundle, not a {body.get('resourceType')}.",
            where="resourceType",
        )
    kind = body.get("type")
    if kind not in ("transaction", "batch"):
        raise FhirError(
            400, "invalid", "The Bundle's type must be transaction or batch.", where="Bundle.type"
        )
    entries = body.get("entry") or []
    if not isinstance(entries, list):
        raise FhirError(400, "structure", "Bundle.entry must be a list.", where="Bundle.entry")
    if len(entries) > max_entries:
        raise FhirError(
            413,
            "too-costly",
            f"The Bundle has {len(entries)} entries; send at most {max_entries} "
            "in one call (split it into several Bundles).",
            where="Bundle.entry",
        )
    for i, entry in enumerate(entries):
        _check_entry_shape(entry, i)
    return str(kind), entries


def _check_entry_shape(entry: Any, i: int) -> None:
    """Refuse an entry that is not an object, or whose fullUrl is not a string or whose request is
    not an object with string method and url: the Bundle is malformed, whatever its type."""
    if not isinstance(entry, dict):
        raise FhirError(400, "structure", f"Entry {i} is not an object.", where=f"Bundle.entry[{i}]")
    if not isinstance(entry.get("fullUrl", ""), str):
        raise FhirError(
            400, "structure", f"Entry {i}: fullUrl must be a string.", where=f"Bundle.entry[{i}].fullUrl"
        )
    request = entry.get("request", {})
    where = f"Bundle.entry[{i}].request"
    if not isinstance(request, dict):
        raise FhirError(400, "structure", f"Entry {i}: request must be an object.", where=where)
    for name in ("method", "url", "ifMatch", "ifNoneExist"):
        if not isinstance(request.get(name, ""), str):
            raise FhirError(
                400, "structure", f"Entry {i}: request.{name} must be a string.", where=f"{where}.{name}"
            )


def _entry(ctx: Ctx, i: int, entry: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """Carry out one Bundle entry; return its response entry."""
    request = entry.get("request") or {}
    method = str(request.get("method", "")).upper()
    parts = str(request.get("url", "")).split("?")[0].strip("/").split("/")
    if method not in ("POST", "PUT", "GET"):
        raise FhirError(
            400,
            "not-supported",
            f"Entry {i}: {method or 'no method'} is not supported (POST, PUT and GET are).",
            where=f"Bundle.entry[{i}].request.method",
        )
    if method == "GET":
        return _read(ctx, i, parts)
    body = entry.get("resource")
    if not isinstance(body, dict):
        raise FhirError(400, "invalid", f"Entry {i} has no resource.", where=f"Bundle.entry[{i}].resource")
    w = _write(ctx, i, method, parts, request, _resolve_refs(body, ids))
    if entry.get("fullUrl"):
        ids[entry["fullUrl"]] = w.reference
    headers = w.headers(ctx.base)
    response: dict[str, Any] = {
        "status": "201 Created" if w.status == 201 else "200 OK",
        "location": headers["Location"],
    }
    if "ETag" in headers:
        response["etag"] = headers["ETag"]
    if w.ref is not None:  # the record's rules hide the result from this caller: say so, show nothing
        return {"response": {**response, "outcome": w.resource}}
    if w.note is not None:  # e.g. a Lead Professional hand-over asked, not yet accepted
        response["outcome"] = w.note
    return {"fullUrl": f"{ctx.base}/{w.reference}", "resource": w.resource, "response": response}


def _read(ctx: Ctx, i: int, parts: list[str]) -> dict[str, Any]:
    """A read entry (GET Type/id), as GET /fhir/{kind}/{id} reads it."""
    if len(parts) != 2:
        raise FhirError(
            400,
            "not-supported",
            f"Entry {i}: only reads (GET Type/id) are supported in a Bundle.",
            where=f"Bundle.entry[{i}].request.url",
        )
    kind = parts[0]
    ctx.need(kind, "r")
    if kind in FHIR_CHILD_TYPES:
        count_read(ctx.request, ctx.actor)  # a read of a child's record, as GET /fhir/{kind}/{id}
    res = read_resource(ctx, kind, parts[1])
    headers = etag(res)
    response: dict[str, Any] = {"status": "200"}
    if "ETag" in headers:
        response["etag"] = headers["ETag"]
    if "lastUpdated" in (res.get("meta") or {}):
        response["lastModified"] = res["meta"]["lastUpdated"]
    return {"fullUrl": f"{ctx.base}/{kind}/{res['id']}", "resource": res, "response": response}


def _write(
    ctx: Ctx, i: int, method: str, parts: list[str], request: dict[str, Any], body: dict[str, Any]
) -> Written:
    """A create (POST Type) or update (PUT Type/id) entry."""
    kind = parts[0]
    if method == "POST":
        if len(parts) != 1 or kind not in CREATE:
            raise FhirError(
                400,
                "not-supported",
                f"Entry {i}: create is supported for {', '.join(CREATE)}.",
                where=f"Bundle.entry[{i}].request.url",
            )
        check_type(kind, body)
        return CREATE[kind](ctx, body, if_none_exist=request.get("ifNoneExist"))
    if len(parts) != 2 or kind not in UPDATE:
        raise FhirError(
            400,
            "not-supported",
            f"Entry {i}: update is supported for {', '.join(UPDATE)}.",
            where=f"Bundle.entry[{i}].request.url",
        )
    check_type(kind, body)
    return UPDATE[kind](ctx, parts[1], body, expected=if_match(request.get("ifMatch")))


def _entry_error(err: FhirError | DomainError, i: int) -> FhirError:
    fe = from_domain(err) if isinstance(err, DomainError) else err
    fe.where = fe.where or f"Bundle.entry[{i}]"
    fe.message = _prefixed(fe.message, i)
    return fe


def _prefixed(message: str, i: int) -> str:
    """A message naming its entry once (some already do: "Entry 0: Entry 0: ..." helps nobody)."""
    return message if message.startswith(f"Entry {i}") else f"Entry {i}: {message}"


def _resolve_refs(node: Any, ids: dict[str, str]) -> Any:
    out = copy.deepcopy(node)
    for ref in reference_nodes(out):
        if ref["reference"] in ids:
            ref["reference"] = ids[ref["reference"]]
    return out


def _refs_in(node: Any) -> set[str]:
    return {ref["reference"] for ref in reference_nodes(node)}


def _processing_order(entries: list[Any]) -> list[int]:
    """FHIR's order (POST, PUT, GET), and within it an entry after the entries it references by fullUrl."""

    def method(i: int) -> int:
        entry = entries[i] if isinstance(entries[i], dict) else {}
        return _ORDER.get(str((entry.get("request") or {}).get("method", "")).upper(), 9)

    full = {e.get("fullUrl"): i for i, e in enumerate(entries) if isinstance(e, dict) and e.get("fullUrl")}
    depends = {
        i: {full[r] for r in _refs_in(e.get("resource")) if r in full and full[r] != i}
        if isinstance(e, dict)
        else set()
        for i, e in enumerate(entries)
    }
    done: list[int] = []
    pending = sorted(range(len(entries)), key=method)
    while pending:
        ready = [i for i in pending if depends[i] <= set(done)]
        if not ready:
            raise FhirError(
                400,
                "invalid",
                "Entries of the Bundle reference each other in a circle.",
                where="Bundle.entry",
            )
        done.append(ready[0])
        pending.remove(ready[0])
    return done
