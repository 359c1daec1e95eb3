"""What every answer of /fhir must be, checked from outside: each resource valid against FHIR R4 (4.0.1)
with an R4 model set in strict mode (fhirclient's, generated from 4.0.1: the app builds with R4B
models, which alone miss the R4 differences), no empty values (ele-1), and Bundle invariants.

`Recorder` is a `requests` response hook: both client libraries of the conformance suite send every
request through `requests`, so hooking it sees every answer the server gives them, unmodified."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from fhirclient.models.fhirabstractbase import FHIRValidationError
from fhirclient.models.fhirelementfactory import FHIRElementFactory

from tests.interop.r4_bindings import binding_problems

FHIR_JSON = "application/fhir+json"
ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
SEARCH_OR_HISTORY = {"searchset", "history"}
REQUESTS = {"batch", "transaction", "history"}  # bdl-3: entry.request there, and only there
RESPONSES = {"batch-response", "transaction-response", "history"}  # bdl-4


def r4_problems(body: Any, where: str = "") -> list[str]:
    """Everything wrong with one resource (and, in a Bundle, with its entries) under R4 4.0.1."""
    nested = bool(where)
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        return [f"{where or 'body'}: not a resource (no resourceType)"]
    kind = body["resourceType"]
    where = where or kind
    problems = [f"{where}: {p}" for p in _empty_values(body, "")]
    if type(FHIRElementFactory.instantiate(kind, None)).__name__ != kind:
        return [*problems, f"{where}: {kind} is not an R4 resource type"]  # e.g. one R4B added
    try:
        model = FHIRElementFactory.instantiate(kind, body)  # strict=True is the models' default
        if not nested:  # the whole tree, once: entries and contained resources included
            problems += binding_problems(model, where)
    except FHIRValidationError as err:
        problems.append(f"{where}: not valid R4: {err}")
    if "id" in body and not (isinstance(body["id"], str) and ID.fullmatch(body["id"])):
        problems.append(f"{where}: id {body['id']!r} is not an R4 id")
    for i, contained in enumerate(body.get("contained") or []):
        problems += r4_problems(contained, f"{where}.contained[{i}]")
    if kind == "Bundle":
        problems += [f"{where}: {p}" for p in bundle_problems(body)]
        for i, entry in enumerate(body.get("entry") or []):
            if isinstance(entry, dict) and "resource" in entry:
                problems += r4_problems(entry["resource"], f"{where}.entry[{i}].resource")
                problems += [f"{where}.entry[{i}]: {p}" for p in _full_url_problems(entry)]
    return problems


def _empty_values(node: Any, path: str) -> list[str]:
    """ele-1 and the JSON format: no null, no empty string, array or object anywhere."""
    if node is None or node == "" or node == [] or node == {}:
        return [f"{path or 'the resource'} is empty ({json.dumps(node)})"]
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _empty_values(v, f"{path}.{k}" if path else k)]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _empty_values(v, f"{path}[{i}]")]
    return []


def bundle_problems(bundle: dict[str, Any]) -> list[str]:
    """The R4 Bundle invariants that apply to what a server answers (bdl-1..bdl-12), and the R4 http
    rules for the Bundles of a search or a history (a `self` link, absolute `fullUrl`s)."""
    kind = bundle.get("type")
    entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict)]
    out = []
    if "total" in bundle and kind not in SEARCH_OR_HISTORY:
        out.append(f"bdl-1: total in a {kind} Bundle")
    relations = [link.get("relation") for link in bundle.get("link") or []]
    if len(relations) != len(set(relations)):
        out.append(f"a link relation is repeated: {relations}")
    for link in bundle.get("link") or []:
        if not _absolute(link.get("url")):
            out.append(f"link {link.get('relation')}: {link.get('url')!r} is not an absolute URL")
    if kind in SEARCH_OR_HISTORY and "self" not in relations:
        out.append(f"a {kind} Bundle has no self link (R4 http: search and history answers carry one)")
    seen: set[tuple[str, str | None]] = set()
    for i, e in enumerate(entries):
        at = f"entry[{i}]"
        if "search" in e and kind != "searchset":
            out.append(f"bdl-2: {at}.search in a {kind} Bundle")
        if ("request" in e) != (kind in REQUESTS):
            out.append(f"bdl-3: {at}.request {'missing' if kind in REQUESTS else 'present'} in a {kind}")
        if ("response" in e) != (kind in RESPONSES):
            out.append(f"bdl-4: {at}.response {'missing' if kind in RESPONSES else 'present'} in a {kind}")
        if not ({"resource", "request", "response"} & e.keys()):
            out.append(f"bdl-5: {at} has no resource, request or response")
        full = e.get("fullUrl")
        if isinstance(full, str) and "/_history/" in full:
            out.append(f"bdl-8: {at}.fullUrl {full} is version specific")
        if isinstance(full, str) and kind != "history":  # bdl-7
            version = ((e.get("resource") or {}).get("meta") or {}).get("versionId")
            if (full, version) in seen:
                out.append(f"bdl-7: {at}.fullUrl {full} (version {version}) twice")
            seen.add((full, version))
        # a stored resource (one with an id) is named by its absolute URL; a search's warnings are not
        if kind in SEARCH_OR_HISTORY and "id" in (e.get("resource") or {}) and not _absolute(full):
            out.append(f"{at}: a {kind} entry needs an absolute fullUrl, not {full!r}")
    if kind == "document":  # bdl-9, bdl-10, bdl-11
        ident = bundle.get("identifier") or {}
        if not (ident.get("system") and ident.get("value")) or "timestamp" not in bundle:
            out.append("bdl-9/10: a document needs identifier system and value, and a timestamp")
        if not entries or (entries[0].get("resource") or {}).get("resourceType") != "Composition":
            out.append("bdl-11: a document starts with a Composition")
    if kind == "message" and (
        not entries or (entries[0].get("resource") or {}).get("resourceType") != "MessageHeader"
    ):
        out.append("bdl-12: a message starts with a MessageHeader")
    return out


def _absolute(url: Any) -> bool:
    return isinstance(url, str) and (bool(urlsplit(url).scheme and urlsplit(url).netloc) or url[:4] == "urn:")


def _full_url_problems(entry: dict[str, Any]) -> list[str]:
    """A RESTful fullUrl names the resource it holds: it ends with Type/id."""
    full, res = entry.get("fullUrl"), entry["resource"]
    if not isinstance(full, str) or full.startswith("urn:") or "id" not in res:
        return []
    if not full.endswith(f"/{res['resourceType']}/{res['id']}"):
        return [f"fullUrl {full} does not name {res['resourceType']}/{res['id']}"]
    return []


@dataclass
class Answer:
    """One answer the server gave a client."""

    method: str
    url: str
    status: int
    content_type: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorder:
    """Keeps every answer the clients receive (a `requests` response hook) and checks them."""

    answers: list[Answer] = field(default_factory=list)

    def hook(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """The hook itself: `session.hooks['response'].append(recorder.hook)`."""
        ctype = response.headers.get("content-type", "")
        body: Any = None
        if response.content and "json" in ctype:
            body = response.json()
        headers = {k.lower(): v for k, v in response.headers.items()}
        self.answers.append(
            Answer(response.request.method, response.url, response.status_code, ctype, body, headers)
        )

    def problems(self, base: str) -> list[str]:
        """What is wrong with the answers of the FHIR base since the last call (then forgets them)."""
        out: list[str] = []
        for a in self.answers:
            if not a.url.startswith(base):
                continue  # the token endpoint answers OAuth JSON, not FHIR
            said = f"{a.method} {a.url[len(base) :] or '/'} -> {a.status}"
            if a.status >= 500:
                out.append(f"{said}: a server error")
            if a.body is None:
                if a.status not in (204, 304):
                    out.append(f"{said}: no FHIR body ({a.content_type or 'no content type'})")
                continue
            if not a.content_type.startswith(FHIR_JSON):
                out.append(f"{said}: content type {a.content_type}, not {FHIR_JSON}")
            if a.status >= 400 and a.body.get("resourceType") != "OperationOutcome":
                out.append(f"{said}: an error that is not an OperationOutcome")
            out += [f"{said}: {p}" for p in r4_problems(a.body)]
            out += [f"{said}: {p}" for p in header_problems(a)]
            out += [f"{said}: {p}" for p in last_updated_problems(a.body)]
        self.answers.clear()
        return out


NOT_STORED = {"Bundle", "OperationOutcome", "CapabilityStatement", "Parameters"}
# Issue #19 asks for meta.lastUpdated on every resource (R4 makes it optional): every stored type
# carries it (migration 0020 gave the child's resources and subscriptions their change time).


def last_updated_problems(body: dict[str, Any]) -> list[str]:
    """Each stored resource in an answer (itself, or an entry of its Bundle) carries meta.lastUpdated."""
    found = [body] + [e["resource"] for e in body.get("entry") or [] if isinstance(e.get("resource"), dict)]
    return [
        f"{r['resourceType']}/{r.get('id')} has no meta.lastUpdated"
        for r in found
        if isinstance(r.get("resourceType"), str)
        and r["resourceType"] not in NOT_STORED
        and "lastUpdated" not in (r.get("meta") or {})
    ]


def header_problems(a: Answer) -> list[str]:
    """R4 http: a read, vread, create or update answers with the resource's version as ETag and its
    lastUpdated as Last-Modified; a create answers with a Location naming the new resource."""
    res = a.body
    if a.status not in (200, 201) or a.method not in ("GET", "POST", "PUT"):
        return []
    if res.get("resourceType") in NOT_STORED:
        return []
    out = []
    meta = res.get("meta") or {}
    if "versionId" in meta and a.headers.get("etag") != f'W/"{meta["versionId"]}"':
        out.append(f'ETag {a.headers.get("etag")!r} is not W/"{meta["versionId"]}"')
    if "lastUpdated" in meta:
        sent = a.headers.get("last-modified")
        updated = datetime.fromisoformat(meta["lastUpdated"].replace("Z", "+00:00")).replace(microsecond=0)
        if sent is None or parsedate_to_datetime(sent) != updated:
            out.append(f"Last-Modified {sent!r} is not meta.lastUpdated {meta['lastUpdated']}")
    if a.status == 201 and f"/{res['resourceType']}/{res.get('id')}" not in a.headers.get("location", ""):
        out.append(f"Location {a.headers.get('location')!r} does not name the created resource")
    return out
