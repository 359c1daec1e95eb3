"""The catalogue: practitioners (and their roles), organisations, services and localities. It holds no
child data, so reading and searching it is not audited, as in the app API."""

from __future__ import annotations

import uuid
from typing import Any

from directory.models import Locality, Organisation, Practitioner, Service
from interop import mapping as m
from interop import params as P
from interop import repository as repo
from interop import systems as S
from interop.api.context import Ctx, ref_ids, resource_id, search_ids
from interop.api.searchset import Found, dedupe
from interop.mapping.organization import kinds_of_type
from interop.outcome import FhirError


def read_catalogue_resource(ctx: Ctx, kind: str, rid: str) -> dict[str, Any]:
    """One catalogue resource (no child data, so not audited, as in the app API)."""
    key = resource_id(rid, kind)
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
        loc = ctx.session.get(Locality, key)
        found = m.location(loc, repo.locality_areas(ctx.session, loc.id)) if loc else None
    if found is None:
        raise FhirError(404, "not-found", f"No {kind} has the id '{rid}'.")
    return found


def search_catalogue(ctx: Ctx, kind: str, q: P.Query) -> Found:
    """Search the catalogue (not audited: it holds no child data, as in the app API)."""
    ids = search_ids(q.values("_id"))
    limit = 0 if q.summary == "count" else q.count
    if kind in ("Practitioner", "PractitionerRole"):
        total, rows, includes = _practitioners(ctx, kind, q, ids, limit)
    elif kind == "Organization":
        total, rows, includes = _organizations(ctx, q, ids, limit)
    elif kind == "HealthcareService":
        total, rows, includes = _services(ctx, q, ids, limit)
    else:  # Location
        total, rows, includes = _locations(ctx, q, ids, limit)
    return Found(total, rows, dedupe(includes), [])


_Page = tuple[int, list[dict[str, Any]], list[dict[str, Any]]]
"""The total, one page of matches, and what they include."""


def _practitioners(ctx: Ctx, kind: str, q: P.Query, ids: list[uuid.UUID], limit: int) -> _Page:
    active = q.first("active")
    total, found = repo.practitioners(
        ctx.session,
        ids=ids + ref_ids(q.values("practitioner"), "Practitioner", "practitioner"),
        name=q.first("name"),
        organisation_ids=ref_ids(q.values("organization"), "Organization", "organization"),
        role=(q.first("role") or "").split("|")[-1] or None,
        active=None if active is None else active == "true",
        last_updated=q.criteria.get("_lastUpdated", []),
        offset=q.offset,
        limit=limit,
    )
    orgs = {
        o.id: o
        for o in repo.organisations(
            ctx.session, ids=[p.organisation_id for p in found] or [uuid.UUID(int=0)], limit=1000
        )[1]
    }
    rows: list[dict[str, Any]] = []
    includes: list[dict[str, Any]] = []
    for p in found:
        org = orgs.get(p.organisation_id)
        rows.append(
            m.practitioner(p) if kind == "Practitioner" else m.practitioner_role(p, org.name if org else None)
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
    return total, rows, includes


def _organizations(ctx: Ctx, q: P.Query, ids: list[uuid.UUID], limit: int) -> _Page:
    ident = q.first("identifier")
    parsed = None
    if ident:
        system_uri, bar, value = ident.partition("|")
        system = {S.ODS_CODE: "ods", S.SCHOOL_URN: "urn"}.get(system_uri) if bar else None
        parsed = (system, value if bar else ident)
    kinds = kinds_of_type(q.first("type") or "") if q.first("type") else None
    total, found = repo.organisations(
        ctx.session,
        ids=ids,
        name=q.first("name"),
        identifier=parsed,
        kinds=kinds,
        last_updated=q.criteria.get("_lastUpdated", []),
        offset=q.offset,
        limit=limit,
    )
    return total, [m.organization(o) for o in found], []


def _services(ctx: Ctx, q: P.Query, ids: list[uuid.UUID], limit: int) -> _Page:
    level = tier = None
    for c in q.values("characteristic"):
        system, _, code = c.partition("|")
        if system == S.LEVEL_OF_NEED or (not _ and code == ""):
            level = int(code or system) if (code or system).isdigit() else None
        elif system == S.SERVICE_TIER:
            tier = code
    total, found = repo.services(
        ctx.session,
        ids=ids,
        organisation_ids=ref_ids(q.values("organization"), "Organization", "organization"),
        service_type=(q.first("service-type") or "").split("|")[-1] or None,
        locality_ids=ref_ids(q.values("coverage-area"), "Location", "coverage-area"),
        level=level,
        tier=tier,
        last_updated=q.criteria.get("_lastUpdated", []),
        offset=q.offset,
        limit=limit,
    )
    areas = repo.service_localities(ctx.session, [s.id for s in found])
    rows = [m.healthcare_service(s, areas[s.id]) for s in found]
    includes: list[dict[str, Any]] = []
    for _s, _param, target in q.includes:
        ctx.need(target, "r")
        for s in found:
            if target == "Organization":
                includes.append(read_catalogue_resource(ctx, "Organization", str(s.organisation_id)))
            else:
                includes += [read_catalogue_resource(ctx, "Location", str(x)) for x in areas[s.id]]
    return total, rows, includes


def _locations(ctx: Ctx, q: P.Query, ids: list[uuid.UUID], limit: int) -> _Page:
    locality_code = (q.first("identifier") or "").split("|")[-1] or None
    total, found = repo.localities(
        ctx.session,
        ids=ids,
        code=locality_code,
        name=q.first("name"),
        last_updated=q.criteria.get("_lastUpdated", []),
        offset=q.offset,
        limit=limit,
    )
    return total, [m.location(x, repo.locality_areas(ctx.session, x.id)) for x in found], []
