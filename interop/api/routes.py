"""The FHIR R4 REST surface under /fhir: metadata, read, search, $match, create/update, history, Bundles.

Every child-scoped resource is cut from the child's card (directory.service.build_card), so
shielding and sensitive-involvement rules are exactly the app API's. Reads are audited as
reads of the record (service.read_card); a search is audited once, with every child returned.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError
from sqlmodel import Session

from auth.deps import count_read, note_looks
from auth.policy import FHIR_CATALOGUE_TYPES, FHIR_CHILD_TYPES, FHIR_HISTORY_TYPES, smart_hint, smart_scopes
from directory import audit, service
from directory import repository as drepo
from directory.bounds import DATE_RANGE, date_in_bounds
from directory.errors import DomainError, InvalidInput, NotAllowed, NotFound
from directory.http.config import practice
from directory.http.deps import CurrentActor, SessionDep, UnitOfWorkRoute
from directory.identifiers import normalise_identifier
from directory.models import (
    Actor,
    Assessment,
    AuditEvent,
    CafClose,
    CafComplete,
    CafOutcome,
    CafSignal,
    CafStart,
    Child,
    Consent,
    ConsentCreate,
    ConsentWithdraw,
    Contact,
    HandOver,
    Involvement,
    InvolvementCreate,
    InvolvementEnd,
    Organisation,
    Practitioner,
    RelatedPerson,
    Role,
    Service,
    Tac,
    TacConvene,
    TacMemberIn,
    TacUpdate,
    utcnow,
)
from interop import mapping as m
from interop import openapi as doc
from interop import params as P
from interop import picture
from interop import repository as repo
from interop import systems as S
from interop.capability import capability_statement
from interop.outcome import FhirError, FhirJSONResponse, fhir_json, operation_outcome
from search.matching import MatchingEngine, validate_criteria
from search.port import CriteriaError, SearchQuery

MAX_PATIENTS_PER_SEARCH = 20
"""A search of child-scoped resources may name at most this many patients."""


# --------------------------------------------------------------------------- request context


@dataclass
class Ctx:
    """What one /fhir request works with."""

    request: Request
    session: Session
    actor: Actor

    @property
    def base(self) -> str:
        """This server's FHIR base URL."""
        return str(self.request.base_url).rstrip("/") + "/fhir"

    @property
    def fallback(self) -> Contact:
        """Whom to ask when a shielded child has no locality team on record."""
        return practice(self.request).fallback_team

    @property
    def lenient(self) -> bool:
        """True when the client asked for unknown parameters to be ignored."""
        return "handling=lenient" in self.request.headers.get("prefer", "").replace(" ", "")

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
MAX_BODY_BYTES = 5 * 1024 * 1024


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
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FhirError(400, "structure", f"The body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise FhirError(
            400, "structure", "The body must be a FHIR resource: a JSON object with a resourceType."
        )
    return body


Body = Annotated[dict[str, Any], Depends(fhir_body)]


async def search_items(request: Request) -> list[tuple[str, str]]:
    """Search parameters from the query string and, for POST _search, the form body."""
    items = list(request.query_params.multi_items())
    if request.method == "POST":
        form = await request.form()
        items += [(k, str(v)) for k, v in form.multi_items()]
    return items


Items = Annotated[list[tuple[str, str]], Depends(search_items)]


def _uuid(value: str, kind: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise FhirError(404, "not-found", f"No {kind} has the id '{value}'.") from None


def _search_ids(values: list[str]) -> list[uuid.UUID]:
    """The ids a search's _id names; one that is not an id of ours matches nothing (no 404 in a search)."""
    out = []
    for value in values:
        try:
            out.append(uuid.UUID(value))
        except ValueError:
            out.append(uuid.UUID(int=0))
    return out


def _etag(resource: dict[str, Any]) -> dict[str, str]:
    meta = resource.get("meta") or {}
    headers = {}
    if meta.get("versionId"):
        headers["ETag"] = f'W/"{meta["versionId"]}"'
    return headers


def if_match(value: str | None) -> int | None:
    """The version in an If-Match header (W/"3" or "3")."""
    if not value:
        return None
    found = re.fullmatch(r'\s*(?:W/)?"?([0-9]{1,9})"?\s*', value)
    if not found:
        raise FhirError(400, "invalid", f'If-Match must carry a version like W/"3", not {value!r}.')
    return int(found.group(1))


def _ref_ids(values: list[str], kind: str, name: str) -> list[uuid.UUID]:
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


# --------------------------------------------------------------------------- child-scoped reads


def child_of(session: Session, kind: str, rid: str) -> uuid.UUID:
    """The child a child-scoped resource belongs to (404 when there is none)."""
    row: Any = None
    if kind == "Patient":
        return _uuid(rid, kind)
    if kind == "EpisodeOfCare":
        row = session.get(Involvement, _uuid(rid, kind))
    elif kind == "Flag":
        prefix, _, hexid = rid.partition("-")
        if prefix == "lp":
            return _uuid(hexid, kind)
        row = session.get(Assessment, _uuid(hexid, kind)) if prefix == "caf" else None
    elif kind == "CareTeam":
        row = session.get(Tac, _uuid(rid, kind))
    elif kind == "Consent":
        row = session.get(Consent, _uuid(rid, kind))
    elif kind == "RelatedPerson":
        row = session.get(RelatedPerson, _uuid(rid, kind))
    if row is None or getattr(row, "child_id", None) is None:
        raise FhirError(404, "not-found", f"No {kind} has the id '{rid}'.")
    return row.child_id  # type: ignore[no-any-return]


def read_child_resource(ctx: Ctx, kind: str, rid: str) -> dict[str, Any]:
    """One child-scoped resource, if this caller may see it; audited as a read of the child's record."""
    child_id = child_of(ctx.session, kind, rid)
    pic = picture.for_child(
        ctx.session, actor=ctx.actor, child_id=child_id, now=utcnow(), fallback=ctx.fallback, audited=True
    )
    note_looks(ctx.request, ctx.session, ctx.actor, [child_id])  # trawling detection, as a card read
    res = pic.get(kind, rid)
    if res is None:
        raise FhirError(404, "not-found", f"No {kind} has the id '{rid}', or it is not shown to you.")
    return res


def read_catalogue_resource(ctx: Ctx, kind: str, rid: str) -> dict[str, Any]:
    """One catalogue resource (no child data, so not audited, as in the app API)."""
    key = _uuid(rid, kind)
    found: dict[str, Any] | None = None
    if kind in ("Practitioner", "PractitionerRole"):
        p = ctx.session.get(Practitioner, key)
        if p is not None:
            org = ctx.session.get(Organisation, p.organisation_id)
            found = (
                m.practitioner(p)
                if kind == "Practitioner"
                else m.practitioner_role(p, org.name if org else None)
            )
    elif kind == "Organization":
        org = ctx.session.get(Organisation, key)
        found = m.organization(org) if org else None
    elif kind == "HealthcareService":
        svc = ctx.session.get(Service, key)
        found = (
            m.healthcare_service(svc, repo.service_localities(ctx.session, [svc.id])[svc.id]) if svc else None
        )
    elif kind == "Location":
        from directory.models import Locality

        loc = ctx.session.get(Locality, key)
        found = m.location(loc, repo.locality_areas(ctx.session, loc.id)) if loc else None
    if found is None:
        raise FhirError(404, "not-found", f"No {kind} has the id '{rid}'.")
    return found


def read_audit_event(ctx: Ctx, rid: str) -> dict[str, Any]:
    """One audit event, for auditors; reading it is itself audited."""
    if not rid.isdigit():
        raise FhirError(404, "not-found", f"No AuditEvent has the id '{rid}'.")
    event = ctx.session.get(AuditEvent, int(rid))
    if event is None:
        raise FhirError(404, "not-found", f"No AuditEvent has the id '{rid}'.")
    if ctx.actor.role not in service.ACCESS_LOG_READERS:
        raise NotAllowed(
            "Only auditors, directory admins and designated practitioners can read the audit log."
        )
    audit.append(ctx.session, actor=ctx.actor, action="audit.read", target_type="audit-event", target_id=rid)
    return m.audit_event(event)


def read_resource(ctx: Ctx, kind: str, rid: str) -> dict[str, Any]:
    """Read any supported resource."""
    if kind in FHIR_CHILD_TYPES:
        return read_child_resource(ctx, kind, rid)
    if kind == "AuditEvent":
        return read_audit_event(ctx, rid)
    return read_catalogue_resource(ctx, kind, rid)


# --------------------------------------------------------------------------- search


@dataclass
class Found:
    """What a search found: matches (one page), includes, and the total."""

    total: int
    matches: list[dict[str, Any]]
    includes: list[dict[str, Any]]
    children: list[uuid.UUID]


def _require_purpose(actor: Actor) -> None:
    if actor.purpose is None:
        raise InvalidInput("Say why you are searching: give a purpose of use (X-Purpose-Of-Use).")


def _identifier_criteria(q: P.Query) -> list[tuple[str | None, str]]:
    out: list[tuple[str | None, str]] = []
    for token in q.values("identifier"):
        system_uri, bar, value = token.partition("|")
        if not bar:
            system_uri, value = "", token
        if not value:
            raise FhirError(
                400,
                "too-costly",
                "Search by an identifier's value, not by its system alone.",
                where="identifier",
            )
        system = S.domain_identifier_system(system_uri) if system_uri else None
        if system_uri and system is None:
            out.append(("unknown-system", value))  # a system we do not hold matches nothing
            continue
        if system is not None:
            try:
                value = normalise_identifier(system, value)
            except ValueError as exc:
                raise FhirError(400, "invalid", str(exc), where="identifier") from None
        out.append((system, value))
    return out


def _too_costly(message: str) -> FhirError:
    return FhirError(400, "too-costly", message)


def search_patients(ctx: Ctx, q: P.Query) -> Found:
    """Patients matching the criteria, one page, with the includes asked for."""
    _require_purpose(ctx.actor)
    if ctx.actor.role == Role.AUDITOR:
        raise NotAllowed("Auditors review the audit log; they do not search the directory.")
    births = [P.parse_date(v, "birthdate") for v in q.values("birthdate")]
    genders = q.values("gender")
    for g in genders:
        if g not in m.GENDERS:
            raise FhirError(
                400,
                "code-invalid",
                f"'{g}' is not an administrative gender ({', '.join(m.GENDERS)}).",
                where="gender",
            )
    identifiers = _identifier_criteria(q)
    ids = _search_ids(q.values("_id"))
    names = q.values("family") + q.values("given") + q.values("name")
    narrow_birth = any(b.width_days() is not None and b.width_days() <= 366 for b in births)  # type: ignore[operator]
    postcodes = [" ".join(p.upper().split()) for p in q.values("address-postalcode")]
    full_postcode = any(len(p.replace(" ", "")) >= 5 for p in postcodes)
    if not (ids or identifiers or (names and (narrow_birth or full_postcode))):
        raise _too_costly(
            "This search could match too many children. Search by identifier (e.g. the NHS number), "
            "or by a name together with a birthdate (a day, a month or a year) or a full postcode."
        )
    found_ids = repo.patient_ids(
        ctx.session,
        ids=ids,
        identifiers=identifiers,
        family=q.values("family"),
        given=q.values("given"),
        name=q.values("name"),
        exact=frozenset(k for k, v in q.modifiers.items() if v == "exact"),
        birth=[b.bounds() for b in births],
        gender=genders,
        postcodes=postcodes,
        location_of_shielded=ctx.actor.role in service.SHIELD_VIEWERS,
    )
    if len(found_ids) > repo.MAX_MATCHES:
        raise _too_costly(f"More than {repo.MAX_MATCHES} children match: add detail to the search.")
    page = found_ids[q.offset : q.offset + q.count] if q.summary != "count" else []
    matches: list[dict[str, Any]] = []
    includes: list[dict[str, Any]] = []
    for child_id in page:
        pic = _as_caller_sees(ctx, child_id)
        matches.append(pic.of("Patient")[0])
        for source, _param in q.revincludes:
            ctx.need(source, "r")
            includes += pic.of(source)
        for _source, _param, target in q.includes:
            ctx.need(target, "r")
            for gp in pic.of("Patient")[0].get("generalPractitioner", []):
                org = ctx.session.get(Organisation, uuid.UUID(gp["reference"].split("/")[1]))
                if org is not None:
                    includes.append(m.organization(org))
    return Found(len(found_ids), matches, _dedupe(includes), page)


def _dedupe(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for r in resources:
        seen.setdefault(f"{r['resourceType']}/{r['id']}", r)
    return list(seen.values())


def _period_matches(period: dict[str, Any], tests: list[P.DateTest]) -> bool:
    start = date.fromisoformat(period["start"][:10]) if period.get("start") else date.min
    end = date.fromisoformat(period["end"][:10]) if period.get("end") else date.max
    for t in tests:
        low, high, negate = t.bounds()
        overlaps = (high is None or start <= high) and (low is None or end >= low)
        if negate:
            overlaps = not (start >= t.start and end <= t.end)
        if not overlaps:
            return False
    return True


def _refs_match(resource: dict[str, Any], path: str, wanted: list[uuid.UUID]) -> bool:
    if not wanted:
        return True
    value = resource.get(path)
    refs = value if isinstance(value, list) else [value] if value else []
    return any(str(w) == (r.get("reference") or "").split("/")[-1] for r in refs for w in wanted)


def _filter(kind: str, res: dict[str, Any], q: P.Query) -> bool:
    statuses = q.values("status")
    if statuses and res.get("status") not in statuses:
        return False
    if q.values("_id") and res["id"] not in q.values("_id"):
        return False
    if kind == "Flag" and q.values("code"):
        codes = {f"{c.get('system')}|{c.get('code')}" for c in (res.get("code") or {}).get("coding", [])}
        codes |= {c.split("|")[1] for c in codes}
        if not any(v in codes for v in q.values("code")):
            return False
    if kind == "EpisodeOfCare":
        if q.values("date") and not _period_matches(
            res.get("period", {}), [P.parse_date(v, "date") for v in q.values("date")]
        ):
            return False
        if not _refs_match(
            res, "managingOrganization", _ref_ids(q.values("organization"), "Organization", "organization")
        ):
            return False
        if not _refs_match(
            res, "careManager", _ref_ids(q.values("care-manager"), "Practitioner", "care-manager")
        ):
            return False
        types = q.values("type")
        if types:
            codes = {
                f"{c.get('system')}|{c.get('code')}" for t in res.get("type", []) for c in t.get("coding", [])
            }
            codes |= {c.split("|")[1] for c in codes}
            if not any(t in codes for t in types):
                return False
    return True


def search_child_resources(ctx: Ctx, kind: str, q: P.Query) -> Found:
    """EpisodeOfCare, Flag, CareTeam, Consent or RelatedPerson of the patients named in the search."""
    _require_purpose(ctx.actor)
    refs = q.values("patient") + q.values("subject")
    child_ids = _ref_ids(refs, "Patient", "patient")
    if not child_ids and kind == "EpisodeOfCare" and q.values("_id"):
        involvements = [ctx.session.get(Involvement, v) for v in _search_ids(q.values("_id"))]
        child_ids = [r.child_id for r in involvements if r is not None]
        if not child_ids:
            return Found(0, [], [], [])
    if not child_ids:
        raise _too_costly(
            f"Search {kind} for one child at a time: give patient=Patient/<id> "
            "(find the Patient first by identifier)."
        )
    if len(set(child_ids)) > MAX_PATIENTS_PER_SEARCH:
        raise _too_costly(f"Name at most {MAX_PATIENTS_PER_SEARCH} patients in one search.")
    matches: list[dict[str, Any]] = []
    includes: list[dict[str, Any]] = []
    seen_children = []
    for child_id in dict.fromkeys(child_ids):
        try:
            pic = _as_caller_sees(ctx, child_id)
        except NotFound:
            continue
        seen_children.append(child_id)
        rows = [r for r in pic.of(kind) if _filter(kind, r, q)]
        matches += rows
        for _source, param, target in q.includes:
            ctx.need(target, "r")
            if target == "Patient":
                includes += pic.of("Patient") if rows else []
            else:
                includes += _included(ctx, rows, param, target)
    total = len(matches)
    page = matches[q.offset : q.offset + q.count] if q.summary != "count" else []
    return Found(total, page, _dedupe(includes), seen_children)


_INCLUDE_PATH = {
    "care-manager": "careManager",
    "organization": "managingOrganization",
    "participant": "participant",
}


def _included(ctx: Ctx, rows: list[dict[str, Any]], param: str, target: str) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        value = row.get(_INCLUDE_PATH.get(param, param))
        refs = value if isinstance(value, list) else [value] if value else []
        for ref in refs:
            ref = ref.get("member", ref)
            rid = (ref.get("reference") or "").split("/")[-1]
            try:
                out.append(read_catalogue_resource(ctx, target, rid))
            except FhirError:
                continue
    return out


def search_catalogue(ctx: Ctx, kind: str, q: P.Query) -> Found:
    """Search the catalogue (not audited: it holds no child data, as in the app API)."""
    ids = _search_ids(q.values("_id"))
    limit = 0 if q.summary == "count" else q.count
    rows: list[dict[str, Any]] = []
    includes: list[dict[str, Any]] = []
    if kind in ("Practitioner", "PractitionerRole"):
        active = q.first("active")
        total, found = repo.practitioners(
            ctx.session,
            ids=ids + _ref_ids(q.values("practitioner"), "Practitioner", "practitioner"),
            name=q.first("name"),
            organisation_ids=_ref_ids(q.values("organization"), "Organization", "organization"),
            role=(q.first("role") or "").split("|")[-1] or None,
            active=None if active is None else active == "true",
            offset=q.offset,
            limit=limit,
        )
        orgs = {
            o.id: o
            for o in repo.organisations(
                ctx.session, ids=[p.organisation_id for p in found] or [uuid.UUID(int=0)], limit=1000
            )[1]
        }
        for p in found:
            org = orgs.get(p.organisation_id)
            rows.append(
                m.practitioner(p)
                if kind == "Practitioner"
                else m.practitioner_role(p, org.name if org else None)
            )
            for _s, _param, target in q.includes:
                ctx.need(target, "r")
                if target == "Organization" and org is not None:
                    includes.append(m.organization(org))
                elif target == "Practitioner":
                    includes.append(m.practitioner(p))
        for source, _param in q.revincludes:
            ctx.need(source, "r")
            includes += [
                m.practitioner_role(p, orgs[p.organisation_id].name if p.organisation_id in orgs else None)
                for p in found
            ]
    elif kind == "Organization":
        ident = q.first("identifier")
        parsed = None
        if ident:
            system_uri, bar, value = ident.partition("|")
            system = {S.ODS_CODE: "ods", S.SCHOOL_URN: "urn"}.get(system_uri) if bar else None
            parsed = (system, value if bar else ident)
        kind_code = (q.first("type") or "").split("|")[-1] or None
        total, found_orgs = repo.organisations(
            ctx.session,
            ids=ids,
            name=q.first("name"),
            identifier=parsed,
            kind=kind_code,
            offset=q.offset,
            limit=limit,
        )
        rows = [m.organization(o) for o in found_orgs]
    elif kind == "HealthcareService":
        level = tier = None
        for c in q.values("characteristic"):
            system, _, code = c.partition("|")
            if system == S.LEVEL_OF_NEED or (not _ and code == ""):
                level = int(code or system) if (code or system).isdigit() else None
            elif system == S.SERVICE_TIER:
                tier = code
        total, found_svcs = repo.services(
            ctx.session,
            ids=ids,
            organisation_ids=_ref_ids(q.values("organization"), "Organization", "organization"),
            service_type=(q.first("service-type") or "").split("|")[-1] or None,
            locality_ids=_ref_ids(q.values("coverage-area"), "Location", "coverage-area"),
            level=level,
            tier=tier,
            offset=q.offset,
            limit=limit,
        )
        areas = repo.service_localities(ctx.session, [s.id for s in found_svcs])
        rows = [m.healthcare_service(s, areas[s.id]) for s in found_svcs]
        for _s, _param, target in q.includes:
            ctx.need(target, "r")
            for s in found_svcs:
                if target == "Organization":
                    includes.append(read_catalogue_resource(ctx, "Organization", str(s.organisation_id)))
                else:
                    includes += [read_catalogue_resource(ctx, "Location", str(x)) for x in areas[s.id]]
    else:  # Location
        locality_code = (q.first("identifier") or "").split("|")[-1] or None
        total, found_locs = repo.localities(
            ctx.session, ids=ids, code=locality_code, name=q.first("name"), offset=q.offset, limit=limit
        )
        rows = [m.location(x, repo.locality_areas(ctx.session, x.id)) for x in found_locs]
    return Found(total, rows, _dedupe(includes), [])


def search_audit_events(ctx: Ctx, q: P.Query) -> Found:
    """Who looked at a child: the audit events of one patient, for auditors (itself audited)."""
    child_ids = _ref_ids(q.values("patient"), "Patient", "patient")
    if len(child_ids) != 1:
        raise _too_costly("Search AuditEvent for one patient: patient=Patient/<id>.")
    service.access_log(ctx.session, actor=ctx.actor, child_id=child_ids[0])  # the rule and the audit
    events = audit.who_looked(ctx.session, child_id=child_ids[0], limit=1000)
    dates = [P.parse_date(v, "date") for v in q.values("date")]
    subtypes = {v.split("|")[-1] for v in q.values("subtype")}
    rows = []
    for e in events:
        if subtypes and e.action not in subtypes:
            continue
        if dates and not _period_matches({"start": e.at.isoformat(), "end": e.at.isoformat()}, dates):
            continue
        rows.append(e)
    page = rows[q.offset : q.offset + q.count] if q.summary != "count" else []
    return Found(len(rows), [m.audit_event(e) for e in page], [], [])


def run_search(ctx: Ctx, kind: str, items: list[tuple[str, str]]) -> dict[str, Any]:
    """Parse, run, audit and bundle a search."""
    q = P.parse(kind, items, lenient=ctx.lenient)
    if kind == "Patient":
        found = search_patients(ctx, q)
    elif kind in FHIR_CHILD_TYPES:
        found = search_child_resources(ctx, kind, q)
    elif kind == "AuditEvent":
        found = search_audit_events(ctx, q)
    else:
        found = search_catalogue(ctx, kind, q)
    if kind in FHIR_CHILD_TYPES:
        note_looks(ctx.request, ctx.session, ctx.actor, found.children)
        audit.append(
            ctx.session,
            actor=ctx.actor,
            action="fhir.search",
            detail={
                "resource": kind,
                "parameters": sorted({k.partition(":")[0] for k, _ in items}),
                "returned": len(found.matches),
                "total": found.total,
            },
            children=found.children,
        )
    return searchset(ctx, kind, q, found, items)


def _link(ctx: Ctx, kind: str, items: list[tuple[str, str]], offset: int) -> str:
    kept = [(k, v) for k, v in items if k != "_offset" and k.partition(":")[0] not in ()]
    return f"{ctx.base}/{kind}?" + urlencode([*kept, ("_offset", str(offset))])


def searchset(ctx: Ctx, kind: str, q: P.Query, found: Found, items: list[tuple[str, str]]) -> dict[str, Any]:
    """A searchset Bundle with self/first/previous/next/last links."""
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
        entries.append(
            {
                "resource": operation_outcome(
                    "not-supported",
                    f"Ignored (Prefer: handling=lenient): {', '.join(q.ignored)}.",
                    severity="warning",
                ),
                "search": {"mode": "outcome"},
            }
        )
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": uuid.uuid4().hex,
        "meta": {"lastUpdated": utcnow().isoformat()},
        "type": "searchset",
        "total": found.total,
        "link": links,
    }
    if entries:
        bundle["entry"] = entries
    return bundle


# --------------------------------------------------------------------------- $match


def match_patients(ctx: Ctx, body: dict[str, Any], matcher: MatchingEngine) -> dict[str, Any]:
    """Patient/$match: the search engine's ranked candidates with score and match grade."""
    _require_purpose(ctx.actor)
    if body.get("resourceType") != "Parameters":
        raise FhirError(
            400, "invalid", "Send a Parameters resource with a 'resource' parameter holding a Patient."
        )
    try:
        m.validated(body)  # every parameter has its FHIR shape before any is read
    except m.MappingError as exc:
        raise FhirError(400, exc.code, exc.message, where=exc.where) from None
    params = {p.get("name"): p for p in body.get("parameter") or []}
    resource = (params.get("resource") or {}).get("resource")
    count = (params.get("count") or {}).get("valueInteger") or 10
    only_certain = bool((params.get("onlyCertainMatches") or {}).get("valueBoolean"))
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        raise FhirError(
            400, "invalid", "The 'resource' parameter must hold a Patient.", where="Parameters.parameter"
        )
    try:
        m.validated(resource)
    except m.MappingError as exc:
        raise FhirError(400, exc.code, exc.message, where=exc.where) from None
    name = next((n for n in resource.get("name") or [] if n.get("use") not in ("old",)), None) or {}
    address = (resource.get("address") or [{}])[0]
    system = value = None
    for ident in resource.get("identifier") or []:
        domain = S.domain_identifier_system(ident.get("system", ""))
        if domain in ("nhs", "upn") or (domain and domain.startswith("local:")):
            system, value = domain, ident.get("value")
            break
    birth = resource.get("birthDate")
    born = date.fromisoformat(birth) if birth and len(birth) == 10 else None
    if born is not None and not date_in_bounds(born):
        raise FhirError(
            400, "invalid", f"Patient.birthDate must fall {DATE_RANGE}.", where="Patient.birthDate"
        )
    given, family = (name.get("given") or [None])[0], name.get("family")
    for where, text, most in (
        ("name.given", given, P.MAX_STRING_LENGTH),
        ("name.family", family, P.MAX_STRING_LENGTH),
        ("address.postalCode", address.get("postalCode"), 10),
        ("identifier.value", value, 64),
    ):
        if text is not None and len(str(text)) > most:
            raise FhirError(
                400, "invalid", f"Patient.{where} is longer than {most} characters.", where=f"Patient.{where}"
            )
    query = SearchQuery(
        given=given,
        family=family,
        birth_date=born,
        sex=resource.get("gender"),
        postcode=address.get("postalCode"),
        identifier_system=system,
        identifier_value=value,
        limit=max(1, min(int(count), 10)),
    )
    try:
        validate_criteria(query)
    except CriteriaError as exc:
        raise FhirError(
            400, "invalid", exc.message, where=f"Patient.{exc.field}" if exc.field else None
        ) from None
    result = matcher.search(query)
    if result.too_many:
        audit.append(
            ctx.session,
            actor=ctx.actor,
            action="search",
            outcome="too-many",
            detail={"fingerprint": result.fingerprint, "via": "fhir-match"},
        )
        raise _too_costly(
            "Too many children match these details: add a given name, the exact birth date, "
            "a postcode or an NHS number."
        )
    entries = []
    children = []
    for match in result.matches:
        if only_certain and match.grade != "certain":
            continue
        child_id = uuid.UUID(hex=match.child_id)
        try:
            pic = _as_caller_sees(ctx, child_id)
        except NotFound:
            continue  # the index is behind the database; the database wins
        if pic.child.status != "active":
            continue
        children.append(child_id)
        patient = pic.of("Patient")[0]
        entries.append(
            {
                "fullUrl": f"{ctx.base}/Patient/{patient['id']}",
                "resource": patient,
                "search": {
                    "mode": "match",
                    "score": round(match.score, 4),
                    "extension": [{"url": S.MATCH_GRADE, "valueCode": match.grade}],
                },
            }
        )
    note_looks(ctx.request, ctx.session, ctx.actor, children)
    audit.append(
        ctx.session,
        actor=ctx.actor,
        action="search",
        outcome="success",
        detail={"fingerprint": result.fingerprint, "returned": len(entries), "via": "fhir-match"},
        children=children,
    )
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": uuid.uuid4().hex,
        "type": "searchset",
        "total": len(entries),
    }
    if entries:
        bundle["entry"] = entries
    return bundle


# --------------------------------------------------------------------------- writes


@dataclass
class Written:
    """The outcome of a create or update: the resource as the caller may see it.

    `ref` names what was written when the body is not it (an informational OperationOutcome
    when the record's rules do not show the result to this caller).
    """

    status: int
    resource: dict[str, Any]
    ref: str | None = None

    @property
    def reference(self) -> str:
        """'Type/id' of what was written."""
        return self.ref or f"{self.resource['resourceType']}/{self.resource['id']}"

    def headers(self, base: str) -> dict[str, str]:
        """Location (with the version for types that keep history) and ETag."""
        h = _etag(self.resource) if self.ref is None else {}
        version = (self.resource.get("meta") or {}).get("versionId") if self.ref is None else None
        kind = self.reference.split("/")[0]
        history = f"/_history/{version}" if version and kind in FHIR_HISTORY_TYPES else ""
        h["Location"] = f"{base}/{self.reference}{history}"
        return h


def _body_version(body: dict[str, Any]) -> int | None:
    """The meta.versionId a client sent in the body (a stand-in for If-Match)."""
    meta = body.get("meta")
    value = str(meta.get("versionId") or "") if isinstance(meta, dict) else ""
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 9 else None


def _mapping(fn: Callable[[dict[str, Any]], Any], body: dict[str, Any]) -> Any:
    try:
        return fn(body)
    except m.MappingError as exc:
        status = (
            404
            if exc.code == "not-found"
            else 400
            if exc.code in ("invalid", "structure", "required", "code-invalid")
            else 422
        )
        raise FhirError(status, exc.code, exc.message, where=exc.where) from None


def _episode(ctx: Ctx, inv: Involvement) -> dict[str, Any]:
    found = repo.service_with_org(ctx.session, inv.service_id)
    assert found is not None
    svc, org = found
    practitioner = ctx.session.get(Practitioner, inv.practitioner_id) if inv.practitioner_id else None
    return m.episode_of_care(picture.episode_row(inv, svc, org, practitioner))


def create_episode(ctx: Ctx, body: dict[str, Any], *, if_none_exist: str | None = None) -> Written:
    """Record an involvement from an EpisodeOfCare (conditionally, with If-None-Exist)."""
    ctx.need("EpisodeOfCare", "c")
    ep: m.EpisodeIn = _mapping(m.episode_of_care_in, body)
    found = _conditional(ctx, "EpisodeOfCare", if_none_exist)
    if found is not None:
        return found
    svc = ctx.session.get(Service, ep.service_id)
    if svc is None:
        raise FhirError(
            404,
            "not-found",
            "No HealthcareService has that id; search HealthcareService first.",
            where="EpisodeOfCare.extension",
        )
    practitioner = ctx.session.get(Practitioner, ep.practitioner_id) if ep.practitioner_id else None
    try:
        data = InvolvementCreate(
            service_id=ep.service_id,
            practitioner_id=ep.practitioner_id,
            role=ep.role or (practitioner.role if practitioner else svc.name)[:80],
            level_of_need=ep.level_of_need or svc.level_of_need,
            start_date=ep.start_date,
            sensitive=ep.sensitive,
            consent_id=ep.consent_id,
            source=(ep.source or f"fhir:{ctx.actor.client_id or ctx.actor.subject}")[:80],
        )
    except ValueError as exc:
        raise FhirError(400, "invalid", str(exc), where="EpisodeOfCare") from None
    inv = service.record_involvement(ctx.session, actor=ctx.actor, child_id=ep.child_id, data=data)
    if ep.status == "ended" and ep.end_date is not None:
        inv = service.end_involvement(
            ctx.session, actor=ctx.actor, involvement_id=inv.id, data=InvolvementEnd(end_date=ep.end_date)
        )
    return Written(201, _episode(ctx, inv))


def update_episode(ctx: Ctx, rid: str, body: dict[str, Any], *, expected: int | None) -> Written:
    """Change or end an involvement from an EpisodeOfCare; an unchanged one is confirmed as still current."""
    ctx.need("EpisodeOfCare", "u")
    inv = ctx.session.get(Involvement, _uuid(rid, "EpisodeOfCare"))
    if inv is None:
        raise FhirError(404, "not-found", f"No EpisodeOfCare has the id '{rid}'; create one with POST.")
    if body.get("id") not in (None, rid):
        raise FhirError(400, "invalid", "The resource's id does not match the URL.", where="EpisodeOfCare.id")
    ep: m.EpisodeIn = _mapping(m.episode_of_care_in, body)
    if expected is None:
        expected = _body_version(body)
    pic = _as_caller_sees(ctx, inv.child_id)
    if pic.get("EpisodeOfCare", rid) is None:
        raise FhirError(404, "not-found", f"No EpisodeOfCare has the id '{rid}', or it is not shown to you.")
    fixed = {
        "patient": (ep.child_id, inv.child_id),
        "service": (ep.service_id, inv.service_id),
        "period.start": (ep.start_date, inv.start_date),
        "sensitivity": (ep.sensitive, inv.sensitive),
    }
    changed = [k for k, (new, old) in fixed.items() if new != old]
    if changed:
        raise FhirError(
            422,
            "business-rule",
            f"These cannot change on an existing involvement: "
            f"{', '.join(changed)}. End it and record a new one.",
            where="EpisodeOfCare",
        )
    update = ep.update(role=inv.role, level_of_need=inv.level_of_need)
    unchanged = (
        update.practitioner_id == inv.practitioner_id
        and update.role == inv.role
        and update.level_of_need == inv.level_of_need
        and (update.end_date is None) == (inv.status == "active")
        and (inv.status == "active" or update.end_date == inv.end_date)
    )
    if unchanged:
        service.check_version("involvement", inv.version, expected)
        if inv.status == "active":
            inv = service.confirm_involvement(ctx.session, actor=ctx.actor, involvement_id=inv.id)
        return Written(200, _episode(ctx, inv))
    inv = service.update_involvement(
        ctx.session, actor=ctx.actor, involvement_id=inv.id, data=update, expected_version=expected
    )
    return Written(200, _episode(ctx, inv))


def create_practitioner_role(ctx: Ctx, body: dict[str, Any], *, if_none_exist: str | None = None) -> Written:
    """Add a practitioner with their role and contact point."""
    ctx.need("PractitionerRole", "c")
    data = _mapping(m.practitioner_role_in, body)
    p = service.register_practitioner(ctx.session, actor=ctx.actor, data=data)
    org = ctx.session.get(Organisation, p.organisation_id)
    return Written(201, m.practitioner_role(p, org.name if org else None))


def update_practitioner_role(ctx: Ctx, rid: str, body: dict[str, Any], *, expected: int | None) -> Written:
    """Change a practitioner's role, organisation or contact point."""
    ctx.need("PractitionerRole", "u")
    if body.get("id") not in (None, rid):
        raise FhirError(
            400, "invalid", "The resource's id does not match the URL.", where="PractitionerRole.id"
        )
    data = _mapping(m.practitioner_role_in, body)
    if expected is None:
        expected = _body_version(body)
    p = service.update_practitioner(
        ctx.session,
        actor=ctx.actor,
        practitioner_id=_uuid(rid, "PractitionerRole"),
        data=data,
        expected_version=expected,
    )
    org = ctx.session.get(Organisation, p.organisation_id)
    return Written(200, m.practitioner_role(p, org.name if org else None))


def _conditional(ctx: Ctx, kind: str, if_none_exist: str | None) -> Written | None:
    """Conditional create: the one existing match (200), None when there is none, 412 when several."""
    if not if_none_exist:
        return None
    items = parse_qsl(if_none_exist.lstrip("?"), keep_blank_values=True)
    existing = search_child_resources(ctx, kind, P.parse(kind, items, lenient=False))
    if existing.total == 1:
        return Written(200, existing.matches[0])
    if existing.total > 1:
        raise FhirError(412, "duplicate", f"If-None-Exist matches more than one {kind}: be more specific.")
    return None


# ----------------------------------------------------------------- CAF (Flag), Consent, TAC (CareTeam)
#
# Each write is a use case of directory/service.py (signal/start/complete/close a CAF, hand over
# the Lead Professional, record/withdraw consent, form/change/convene a TAC): the rules, the
# audit events (and so the notifications) are the domain's. The answer is the resource as this
# caller may see it (shielding applies to what comes back).


def _as_caller_sees(ctx: Ctx, child_id: uuid.UUID) -> picture.Picture:
    """A child's picture as this caller may see it, unaudited (the caller audits what it shows).
    An override of a shield is for one viewing of one record (a read), never for a search or a
    write, so it is dropped here."""
    actor = ctx.actor.model_copy(update={"shield_override_reason": None})
    return picture.for_child(
        ctx.session, actor=actor, child_id=child_id, now=utcnow(), fallback=ctx.fallback, audited=False
    )


def _shown(ctx: Ctx, status: int, kind: str, rid: str, child_id: uuid.UUID) -> Written:
    """The written resource as the caller may see it, or a note that the record's rules hide it."""
    res = _as_caller_sees(ctx, child_id).get(kind, rid)
    if res is None:
        res = operation_outcome(
            "informational",
            f"Done: {kind}/{rid}. The record's rules (shielding) do not show it to you.",
            severity="information",
        )
        return Written(status, res, ref=f"{kind}/{rid}")
    return Written(status, res)


def _visible(ctx: Ctx, kind: str, rid: str) -> tuple[uuid.UUID, dict[str, Any]]:
    """The child and the current resource, when this caller may see it (404 otherwise)."""
    child_id = child_of(ctx.session, kind, rid)
    res = _as_caller_sees(ctx, child_id).get(kind, rid)
    if res is None:
        raise FhirError(404, "not-found", f"No {kind} has the id '{rid}', or it is not shown to you.")
    return child_id, res


def _same_id(kind: str, rid: str, body: dict[str, Any]) -> None:
    if body.get("id") not in (None, rid):
        raise FhirError(400, "invalid", "The resource's id does not match the URL.", where=f"{kind}.id")


def _same_patient(kind: str, given: uuid.UUID, held: uuid.UUID, where: str) -> None:
    if given != held:
        raise FhirError(
            422, "business-rule", f"The patient of a {kind} cannot change; record a new one.", where=where
        )


def _domain_input(model: type[Any], where: str, **fields: Any) -> Any:
    """A domain input model, its validation errors answered as 400 invalid."""
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ()))
        raise FhirError(400, "invalid", f"{field}: {first.get('msg', 'invalid')}", where=where) from None


def _via(ctx: Ctx) -> str:
    return f"recorded over FHIR by {ctx.actor.client_id or ctx.actor.subject}"[:500]


_CAF_PATH = ("signalled", "in_progress", "completed")


def create_flag(ctx: Ctx, body: dict[str, Any], *, if_none_exist: str | None = None) -> Written:
    """Signal the intent to start a CAF (Flag caf-signalled); a second open CAF is refused (409)."""
    ctx.need("Flag", "c")
    f: m.FlagIn = _mapping(m.flag_in, body)
    if f.kind != "caf" or f.caf_status != "signalled":
        raise FhirError(
            422,
            "business-rule",
            "A CAF begins with a signal of intent: create a Flag with code caf-signalled and author = "
            "the practitioner starting it, then move it on with PUT (caf-in-progress, caf-completed, "
            "caf-closed). The Lead Professional flag follows the CAF; change it with PUT.",
            where="Flag.code",
        )
    if f.no_significant_harm is not True:
        raise FhirError(
            422,
            "business-rule",
            "A CAF is not the route when a child may be at risk of significant harm: follow your "
            "safeguarding procedures and refer to children's social care. To signal a CAF, confirm that "
            f"the child is not at risk with the extension {S.EXT_NO_SIGNIFICANT_HARM} (valueBoolean true).",
            where="Flag.extension",
        )
    found = _conditional(ctx, "Flag", if_none_exist)
    if found is not None:
        return found
    # Flag.author: a connected system names its own organisation's practitioner; a person signals as
    # themselves (the domain refuses anyone else).
    caf = service.signal_caf(
        ctx.session,
        actor=ctx.actor,
        child_id=f.child_id,
        data=CafSignal(practitioner_id=f.practitioner_id, no_risk_of_significant_harm=True),
        signal_days=practice(ctx.request).signal_expiry_days,
        now=utcnow(),
    )
    return _shown(ctx, 201, "Flag", f"caf-{caf.id.hex}", caf.child_id)


def _move_caf(ctx: Ctx, caf: Assessment, f: m.FlagIn) -> None:
    """Walk a CAF to the status a Flag asks for, one domain use case per step."""
    now = utcnow()
    target = f.caf_status or caf.status
    if not f.active and target in _CAF_PATH:
        target = "withdrawn" if caf.status == "signalled" else "closed"
    if target == caf.status:
        return
    if target in ("closed", "withdrawn"):
        if target == "withdrawn" and caf.status != "signalled":
            raise FhirError(
                409,
                "conflict",
                f"Only a signalled CAF can be withdrawn; this one is {caf.status}: close it (caf-closed).",
                where="Flag.code",
            )
        reason = _reason_for(ctx, caf, f.reason, doing="close this CAF")
        service.close_caf(
            ctx.session,
            actor=ctx.actor,
            caf_id=caf.id,
            data=_domain_input(CafClose, "Flag.extension", reason=reason),
            now=now,
        )
        return
    if target not in _CAF_PATH or caf.status not in _CAF_PATH:
        raise FhirError(
            409,
            "conflict",
            f"This CAF is {caf.status}; it cannot become {target}. A CAF moves signalled -> in progress "
            "-> completed -> closed (signal a new one once it is closed).",
            where="Flag.code",
        )
    here, there = _CAF_PATH.index(caf.status), _CAF_PATH.index(target)
    if there < here:
        raise FhirError(
            409, "conflict", f"A CAF cannot go back from {caf.status} to {target}.", where="Flag.code"
        )
    for step in _CAF_PATH[here + 1 : there + 1]:
        if step == "in_progress":
            if f.consent_id is None:
                raise FhirError(
                    422,
                    "business-rule",
                    "A CAF is started with consent: give the Consent (scope caf) of a parent/carer or "
                    f"the competent young person in the extension {S.EXT_CAF_CONSENT}.",
                    where="Flag.extension",
                )
            service.start_caf(
                ctx.session,
                actor=ctx.actor,
                caf_id=caf.id,
                data=_domain_input(CafStart, "Flag.extension", consent_id=f.consent_id, reason=f.reason),
                now=now,
            )
        else:
            if f.outcome is None:
                raise FhirError(
                    422,
                    "business-rule",
                    f"Say how the CAF completed: the extension {S.EXT_CAF_OUTCOME} with one of "
                    f"{', '.join(m.CAF_OUTCOMES)}.",
                    where="Flag.extension",
                )
            service.complete_caf(
                ctx.session,
                actor=ctx.actor,
                caf_id=caf.id,
                data=_domain_input(
                    CafComplete, "Flag.extension", outcome=CafOutcome(f.outcome), reason=f.reason
                ),
                now=now,
            )


def _hand_over_if_asked(
    ctx: Ctx, caf: Assessment, to: uuid.UUID | None, reason: str | None, *, default: str | None = None
) -> None:
    """Hand the Lead Professional role to `to` when it is someone other than the current one."""
    if to is None or caf.status not in _CAF_PATH:
        return
    lead = drepo.current_lead(ctx.session, caf.child_id)
    if lead is not None and lead.practitioner_id == to:
        return
    why = _reason_for(ctx, caf, reason, doing="hand over this CAF's Lead Professional role", default=default)
    service.hand_over_lead(
        ctx.session,
        actor=ctx.actor,
        caf_id=caf.id,
        data=_domain_input(HandOver, "author", to_practitioner_id=to, reason=why),
        now=utcnow(),
    )


def _reason_for(
    ctx: Ctx, caf: Assessment, given: str | None, *, doing: str, default: str | None = None
) -> str:
    """The reason for a change the domain records one for: the one given (the change-reason extension);
    else, for one of the CAF's holders, a note of the surface. Anyone else must give one: the domain
    refuses them, saying so (or that they may not change this CAF at all)."""
    if given:
        return given
    child = ctx.session.get(Child, caf.child_id)
    assert child is not None
    if service.caf_standing(ctx.session, ctx.actor, caf, child) == service.Standing.HOLDER:
        return default or _via(ctx)
    service.require_caf_change(ctx.session, ctx.actor, caf, child, reason=None, doing=doing)
    raise AssertionError("require_caf_change refuses a change without a reason by anyone but a holder")


def update_flag(ctx: Ctx, rid: str, body: dict[str, Any], *, expected: int | None) -> Written:
    """Move a CAF on (start / complete / close / withdraw) or hand over the Lead Professional, from a Flag."""
    ctx.need("Flag", "u")
    _same_id("Flag", rid, body)
    f: m.FlagIn = _mapping(m.flag_in, body)
    child_id, _current = _visible(ctx, "Flag", rid)
    _same_patient("Flag", f.child_id, child_id, "Flag.subject")
    expected = expected if expected is not None else _body_version(body)
    prefix, _, hexid = rid.partition("-")
    if (prefix == "lp") != (f.kind == "lead-professional"):
        raise FhirError(
            422,
            "business-rule",
            "A Flag cannot change between CAF status and Lead Professional.",
            where="Flag.code",
        )
    if prefix == "lp":
        caf = drepo.open_caf(ctx.session, child_id)
        if caf is None:
            raise FhirError(
                409, "conflict", "This child has no open CAF, so no Lead Professional to hand over."
            )
        service.check_version("Lead Professional flag", caf.version, expected)
        if not f.active:
            raise FhirError(
                422,
                "business-rule",
                "There is always one Lead Professional while a CAF is open: hand the role over "
                "(change Flag.author), or close the CAF.",
                where="Flag.status",
            )
        _hand_over_if_asked(ctx, caf, f.practitioner_id, f.reason)
        return _shown(ctx, 200, "Flag", rid, child_id)
    caf = ctx.session.get(Assessment, _uuid(hexid, "Flag"))
    assert caf is not None  # _visible found it
    service.check_version("CAF", caf.version, expected)
    _move_caf(ctx, caf, f)
    _hand_over_if_asked(ctx, caf, f.practitioner_id, f.reason)
    return _shown(ctx, 200, "Flag", rid, child_id)


def create_consent(ctx: Ctx, body: dict[str, Any], *, if_none_exist: str | None = None) -> Written:
    """Record a consent given by a parent/carer or a competent young person."""
    ctx.need("Consent", "c")
    c: m.ConsentIn = _mapping(m.consent_in, body)
    if not c.active:
        raise FhirError(
            422,
            "business-rule",
            "Record a consent as given (status active); withdraw it later with PUT (status inactive).",
            where="Consent.status",
        )
    found = _conditional(ctx, "Consent", if_none_exist)
    if found is not None:
        return found
    data = _domain_input(ConsentCreate, "Consent", **c.create_fields())
    consent = service.record_consent(ctx.session, actor=ctx.actor, child_id=c.child_id, data=data)
    return _shown(ctx, 201, "Consent", str(consent.id), consent.child_id)


def update_consent(ctx: Ctx, rid: str, body: dict[str, Any], *, expected: int | None) -> Written:
    """Withdraw a consent (status inactive); nothing else about a consent changes."""
    ctx.need("Consent", "u")
    _same_id("Consent", rid, body)
    if expected is not None:
        raise FhirError(
            400,
            "not-supported",
            "Consent is not versioned here: send the update without If-Match.",
            where="If-Match",
        )
    c: m.ConsentIn = _mapping(m.consent_in, body)
    child_id, current = _visible(ctx, "Consent", rid)
    _same_patient("Consent", c.child_id, child_id, "Consent.patient")
    row = ctx.session.get(Consent, _uuid(rid, "Consent"))
    assert row is not None
    changed = [
        name
        for name, new, old in (
            ("scope", c.scope, row.scope),
            ("who gave it", c.given_by_kind, row.given_by_kind),
            ("their name", c.given_by_name, row.given_by_name),
        )
        if new is not None and new != old
    ]
    if changed:
        raise FhirError(
            422,
            "business-rule",
            f"A consent cannot change ({', '.join(changed)}): withdraw it (status inactive) "
            "and record a new one.",
            where="Consent",
        )
    if c.active:
        if row.withdrawn_at is not None:
            raise FhirError(
                409,
                "conflict",
                "A withdrawn consent cannot be given again: record a new consent.",
                where="Consent.status",
            )
        return Written(200, current)
    if row.withdrawn_at is None:
        service.withdraw_consent(
            ctx.session,
            actor=ctx.actor,
            consent_id=row.id,
            data=_domain_input(ConsentWithdraw, "Consent.extension", reason=c.withdrawn_reason or _via(ctx)),
        )
    return _shown(ctx, 200, "Consent", rid, child_id)


def _apply_team(ctx: Ctx, caf: Assessment, tac: Tac | None, t: m.CareTeamIn) -> Tac:
    """Bring a TAC to what a CareTeam says: add members, hand over the LP, remove members, convene."""
    now = utcnow()
    if t.status == "closed":
        raise FhirError(
            422,
            "business-rule",
            "A TAC closes with its CAF: close the CAF (PUT its Flag with code caf-closed).",
            where="CareTeam.status",
        )
    if tac is not None and tac.status == "convened" and t.status == "forming":
        raise FhirError(
            422, "business-rule", "A convened TAC cannot go back to proposed.", where="CareTeam.status"
        )
    current = {x.practitioner_id for x in drepo.tac_members(ctx.session, tac.id)} if tac else set()
    wanted = dict(t.members)
    add = [TacMemberIn(practitioner_id=p, role=r[:80]) for p, r in t.members if p not in current]
    review = t.next_review_date if tac is None or t.next_review_date != tac.next_review_date else None
    family = (
        t.family_participating
        if tac is None
        or (t.family_participating is not None and t.family_participating != tac.family_participating)
        else None
    )
    if tac is None or add or review is not None or family is not None:
        data = _domain_input(
            TacUpdate,
            "CareTeam",
            add_members=add,
            next_review_date=review,
            family_participating=family,
            reason=t.reason,
        )
        tac = service.update_tac(ctx.session, actor=ctx.actor, caf_id=caf.id, data=data, now=now)
    _hand_over_if_asked(ctx, caf, t.lead_practitioner_id, t.reason, default="appointed by the TAC")
    remove = [p for p in current if p not in wanted]
    if remove:
        data = _domain_input(
            TacUpdate, "CareTeam.participant", remove_practitioner_ids=remove, reason=t.reason
        )
        tac = service.update_tac(ctx.session, actor=ctx.actor, caf_id=caf.id, data=data, now=now)
    if t.status == "convened" and tac.status == "forming":
        when = t.next_review_date or tac.next_review_date
        if when is None:
            raise FhirError(
                400,
                "required",
                f"A TAC is convened with a review date: give the extension {S.EXT_NEXT_REVIEW}.",
                where="CareTeam.extension",
            )
        tac = service.convene_tac(
            ctx.session,
            actor=ctx.actor,
            tac_id=tac.id,
            data=_domain_input(TacConvene, "CareTeam", next_review_date=when, reason=t.reason),
            now=now,
        )
    return tac


def create_care_team(ctx: Ctx, body: dict[str, Any], *, if_none_exist: str | None = None) -> Written:
    """Form the TAC of the child's open CAF (status proposed) or form and convene it (active)."""
    ctx.need("CareTeam", "c")
    t: m.CareTeamIn = _mapping(m.care_team_in, body)
    found = _conditional(ctx, "CareTeam", if_none_exist)
    if found is not None:
        return found
    service.lapse_expired_signal(ctx.session, child_id=t.child_id, now=utcnow())
    caf = drepo.open_caf(ctx.session, t.child_id, for_update=True)
    if caf is None:
        raise FhirError(
            409,
            "conflict",
            "A TAC is formed from the child's open CAF, and this child has none: "
            "signal and start one first (Flag).",
            where="CareTeam.subject",
        )
    existing = drepo.tac_for_caf(ctx.session, caf.id)
    if existing is not None:
        raise FhirError(
            409,
            "conflict",
            f"This child's CAF already has a TAC: CareTeam/{existing.id}. Change it with PUT.",
            where="CareTeam",
        )
    tac = _apply_team(ctx, caf, None, t)
    return _shown(ctx, 201, "CareTeam", str(tac.id), caf.child_id)


def update_care_team(ctx: Ctx, rid: str, body: dict[str, Any], *, expected: int | None) -> Written:
    """Change a TAC's members, its Lead Professional (a formal hand-over) or review date; convene it."""
    ctx.need("CareTeam", "u")
    _same_id("CareTeam", rid, body)
    t: m.CareTeamIn = _mapping(m.care_team_in, body)
    child_id, _current = _visible(ctx, "CareTeam", rid)
    _same_patient("CareTeam", t.child_id, child_id, "CareTeam.subject")
    tac = ctx.session.get(Tac, _uuid(rid, "CareTeam"))
    assert tac is not None
    expected = expected if expected is not None else _body_version(body)
    service.check_version("TAC", picture.care_team_version(ctx.session, tac), expected)
    caf = ctx.session.get(Assessment, tac.assessment_id)
    assert caf is not None
    _apply_team(ctx, caf, tac, t)
    return _shown(ctx, 200, "CareTeam", rid, child_id)


CREATE: dict[str, Callable[..., Written]] = {
    "EpisodeOfCare": create_episode,
    "PractitionerRole": create_practitioner_role,
    "Flag": create_flag,
    "Consent": create_consent,
    "CareTeam": create_care_team,
}
UPDATE: dict[str, Callable[..., Written]] = {
    "EpisodeOfCare": update_episode,
    "PractitionerRole": update_practitioner_role,
    "Flag": update_flag,
    "Consent": update_consent,
    "CareTeam": update_care_team,
}


def _check_type(kind: str, body: dict[str, Any]) -> None:
    if body.get("resourceType") != kind:
        raise FhirError(
            400,
            "invalid",
            f"This endpoint takes a {kind}, not a {body.get('resourceType')}.",
            where="resourceType",
        )


def _written_response(ctx: Ctx, w: Written) -> Response:
    prefer = ctx.request.headers.get("prefer", "")
    headers = w.headers(ctx.base)
    if "return=minimal" in prefer:
        return Response(status_code=w.status, headers=headers)
    return fhir_json(w.resource, w.status, headers)


# --------------------------------------------------------------------------- history


def _history_entries(ctx: Ctx, inv: Involvement, version: int | None = None) -> list[dict[str, Any]]:
    found = repo.service_with_org(ctx.session, inv.service_id)
    assert found is not None
    svc, org = found
    entries = []
    for snap in drepo.involvement_history(ctx.session, inv.id):
        if version is not None and snap.version != version:
            continue
        data = json.loads(snap.snapshot)
        row = Involvement.model_validate(
            {**data, "id": inv.id, "version": snap.version, "recorded_by": snap.recorded_by}
        )
        practitioner = ctx.session.get(Practitioner, row.practitioner_id) if row.practitioner_id else None
        res = m.episode_of_care(picture.episode_row(row, svc, org, practitioner))
        res["meta"]["lastUpdated"] = snap.recorded_at.isoformat()
        entries.append(
            {
                "fullUrl": f"{ctx.base}/EpisodeOfCare/{inv.id}",
                "resource": res,
                "request": {
                    "method": "POST" if snap.change == "record" else "PUT",
                    "url": "EpisodeOfCare" if snap.change == "record" else f"EpisodeOfCare/{inv.id}",
                },
                "response": {
                    "status": "201" if snap.change == "record" else "200",
                    "etag": f'W/"{snap.version}"',
                    "lastModified": snap.recorded_at.isoformat(),
                },
            }
        )
    if not entries and version in (None, inv.version):
        # rows loaded in bulk (the seed, an import) have no history yet: their current state is version n
        res = m.episode_of_care(
            picture.episode_row(
                inv,
                svc,
                org,
                ctx.session.get(Practitioner, inv.practitioner_id) if inv.practitioner_id else None,
            )
        )
        entries.append(
            {
                "fullUrl": f"{ctx.base}/EpisodeOfCare/{inv.id}",
                "resource": res,
                "request": {"method": "PUT", "url": f"EpisodeOfCare/{inv.id}"},
                "response": {"status": "200", "etag": f'W/"{inv.version}"'},
            }
        )
    return entries


def _visible_involvement(ctx: Ctx, rid: str) -> Involvement:
    read_child_resource(ctx, "EpisodeOfCare", rid)  # the visibility rule and the audited read
    inv = ctx.session.get(Involvement, _uuid(rid, "EpisodeOfCare"))
    assert inv is not None
    return inv


# --------------------------------------------------------------------------- Bundles


def _resolve_refs(node: Any, ids: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {k: _resolve_refs(v, ids) for k, v in node.items()}
        if isinstance(out.get("reference"), str) and out["reference"] in ids:
            out["reference"] = ids[out["reference"]]
        return out
    if isinstance(node, list):
        return [_resolve_refs(v, ids) for v in node]
    return node


_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


def _entry(ctx: Ctx, i: int, entry: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """Carry out one Bundle entry; return its response entry."""
    request = entry.get("request") or {}
    method = str(request.get("method", "")).upper()
    url = str(request.get("url", "")).split("?")[0].strip("/")
    parts = url.split("/")
    kind = parts[0]
    if method not in ("POST", "PUT", "GET"):
        raise FhirError(
            400,
            "not-supported",
            f"Entry {i}: {method or 'no method'} is not supported (POST, PUT and GET are).",
            where=f"Bundle.entry[{i}].request.method",
        )
    if method == "GET":
        if len(parts) != 2:
            raise FhirError(
                400,
                "not-supported",
                f"Entry {i}: only reads (GET Type/id) are supported in a Bundle.",
                where=f"Bundle.entry[{i}].request.url",
            )
        ctx.need(kind, "r")
        if kind in FHIR_CHILD_TYPES:
            count_read(ctx.request, ctx.actor)  # a read of a child's record, as GET /fhir/{kind}/{id}
        res = read_resource(ctx, kind, parts[1])
        return {
            "resource": res,
            "response": {"status": "200", **({"etag": e} if (e := _etag(res).get("ETag")) else {})},
        }
    body = entry.get("resource")
    if not isinstance(body, dict):
        raise FhirError(400, "invalid", f"Entry {i} has no resource.", where=f"Bundle.entry[{i}].resource")
    body = _resolve_refs(body, ids)
    if method == "POST":
        if len(parts) != 1 or kind not in CREATE:
            raise FhirError(
                400,
                "not-supported",
                f"Entry {i}: create is supported for {', '.join(CREATE)}.",
                where=f"Bundle.entry[{i}].request.url",
            )
        _check_type(kind, body)
        w = CREATE[kind](ctx, body, if_none_exist=request.get("ifNoneExist"))
    else:
        if len(parts) != 2 or kind not in UPDATE:
            raise FhirError(
                400,
                "not-supported",
                f"Entry {i}: update is supported for {', '.join(UPDATE)}.",
                where=f"Bundle.entry[{i}].request.url",
            )
        _check_type(kind, body)
        w = UPDATE[kind](ctx, parts[1], body, expected=if_match(request.get("ifMatch")))
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
    return {"fullUrl": f"{ctx.base}/{w.reference}", "resource": w.resource, "response": response}


def _entry_error(err: FhirError | DomainError, i: int) -> FhirError:
    from interop.outcome import from_domain

    fe = from_domain(err) if isinstance(err, DomainError) else err
    fe.where = fe.where or f"Bundle.entry[{i}]"
    fe.message = f"Entry {i}: {fe.message}"
    return fe


def _refs_in(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["reference"]} if isinstance(node.get("reference"), str) else set()
        return found.union(*(_refs_in(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs_in(v) for v in node))
    return set()


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


def run_bundle(ctx: Ctx, body: dict[str, Any], max_entries: int) -> dict[str, Any]:
    """A transaction (all or nothing) or a batch (each entry on its own) Bundle."""
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
    order = _processing_order(entries)
    ids: dict[str, str] = {}
    results: dict[int, dict[str, Any]] = {}
    for i in order:
        entry = entries[i]
        if not isinstance(entry, dict):
            raise FhirError(400, "structure", f"Entry {i} is not an object.", where=f"Bundle.entry[{i}]")
        if kind == "transaction":
            try:
                results[i] = _entry(ctx, i, entry, ids)
            except (FhirError, DomainError) as err:
                if isinstance(err, DomainError):
                    err.data["where"] = f"Bundle.entry[{i}]"
                    err.message = f"Entry {i}: {err.message}"
                    raise
                raise _entry_error(err, i) from None
        else:
            try:
                with ctx.session.begin_nested():
                    results[i] = _entry(ctx, i, entry, ids)
            except (FhirError, DomainError) as err:
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


# --------------------------------------------------------------------------- routes


def _matcher(request: Request) -> MatchingEngine:
    return request.app.state.search_engine  # type: ignore[no-any-return]


def build_router() -> APIRouter:
    """The /fhir routes, one set per resource type (named so auth/policy.py can hold their policies)."""
    router = APIRouter(
        prefix="/fhir", tags=["fhir"], route_class=UnitOfWorkRoute, default_response_class=FhirJSONResponse
    )

    @router.get("/metadata", name="fhir_metadata", openapi_extra=doc.answers("The CapabilityStatement"))
    def metadata(request: Request) -> Response:
        """The CapabilityStatement: what this server implements, and how to get a token."""
        return fhir_json(
            capability_statement(
                base=str(request.base_url).rstrip("/") + "/fhir", issuer=practice(request).issuer.rstrip("/")
            )
        )

    for kind in (*FHIR_CHILD_TYPES, *FHIR_CATALOGUE_TYPES, "AuditEvent"):
        _add_type_routes(router, kind)

    @router.post(
        "/Patient/$match",
        name="fhir_match_Patient",
        openapi_extra=doc.operation("Parameters", description="A searchset Bundle"),
    )
    def patient_match(ctx: CtxDep, body: Body, request: Request) -> Response:
        """Patient/$match: ranked candidates with scores and the match-grade extension (audited)."""
        return fhir_json(match_patients(ctx, body, _matcher(request)))

    @router.get(
        "/EpisodeOfCare/{rid}/_history",
        name="fhir_history_EpisodeOfCare",
        openapi_extra=doc.answers("A history Bundle"),
    )
    def episode_history(rid: str, ctx: CtxDep) -> Response:
        """Every version of an involvement, newest first."""
        inv = _visible_involvement(ctx, rid)
        entries = _history_entries(ctx, inv)
        return fhir_json(
            {
                "resourceType": "Bundle",
                "id": uuid.uuid4().hex,
                "type": "history",
                "total": len(entries),
                "entry": entries,
            }
        )

    @router.get(
        "/EpisodeOfCare/{rid}/_history/{vid}",
        name="fhir_vread_EpisodeOfCare",
        openapi_extra=doc.answers("That version of the EpisodeOfCare"),
    )
    def episode_vread(rid: str, vid: str, ctx: CtxDep) -> Response:
        """One version of an involvement."""
        inv = _visible_involvement(ctx, rid)
        entries = _history_entries(
            ctx, inv, int(vid) if vid.isascii() and vid.isdigit() and len(vid) <= 9 else -1
        )
        if not entries:
            raise FhirError(404, "not-found", f"EpisodeOfCare/{rid} has no version {vid}.")
        res = entries[0]["resource"]
        return fhir_json(res, headers=_etag(res))

    from interop.api.subscription import add_subscription_routes  # late: it builds on this module

    add_subscription_routes(router)

    @router.post(
        "", name="fhir_bundle", openapi_extra=doc.operation("Bundle", description="The response Bundle")
    )
    def bundle(ctx: CtxDep, body: Body, request: Request) -> Response:
        """A transaction (atomic: all or nothing) or batch Bundle of creates, updates and reads."""
        limit = int(getattr(request.app.state, "fhir_max_bundle_entries", 100))
        return fhir_json(run_bundle(ctx, body, limit))

    return router


def _add_type_routes(router: APIRouter, kind: str) -> None:
    def read(rid: str, ctx: CtxDep) -> Response:
        res = read_resource(ctx, kind, rid)
        return fhir_json(res, headers=_etag(res))

    read.__doc__ = f"Read one {kind}."
    router.add_api_route(
        f"/{kind}/{{rid}}", read, methods=["GET"], name=f"fhir_read_{kind}", openapi_extra=doc.read(kind)
    )

    def search(ctx: CtxDep, items: Items) -> Response:
        return fhir_json(run_search(ctx, kind, items))

    search.__doc__ = f"Search {kind}; unknown parameters are refused unless 'Prefer: handling=lenient'."
    router.add_api_route(
        f"/{kind}",
        search,
        methods=["GET"],
        name=f"fhir_search_{kind}",
        openapi_extra=doc.search(kind, post=False),
    )
    router.add_api_route(
        f"/{kind}/_search",
        search,
        methods=["POST"],
        name=f"fhir_search_post_{kind}",
        openapi_extra=doc.search(kind, post=True),
    )

    if kind in CREATE:

        def create(ctx: CtxDep, body: Body) -> Response:
            _check_type(kind, body)
            w = CREATE[kind](ctx, body, if_none_exist=ctx.request.headers.get("if-none-exist"))
            return _written_response(ctx, w)

        create.__doc__ = f"Create a {kind} (conditionally, with If-None-Exist)."
        router.add_api_route(
            f"/{kind}", create, methods=["POST"], name=f"fhir_create_{kind}", openapi_extra=doc.create(kind)
        )

        def update(rid: str, ctx: CtxDep, body: Body) -> Response:
            _check_type(kind, body)
            w = UPDATE[kind](ctx, rid, body, expected=if_match(ctx.request.headers.get("if-match")))
            return _written_response(ctx, w)

        update.__doc__ = f"Update a {kind}; send If-Match with the version you read (412 when it moved on)."
        router.add_api_route(
            f"/{kind}/{{rid}}",
            update,
            methods=["PUT"],
            name=f"fhir_update_{kind}",
            openapi_extra=doc.update(kind),
        )
