"""Search: parse, run, audit and bundle. Patients by identifier or name and birthdate; the child-scoped
types one patient at a time, cut from each child's picture; the audit events of one patient; the
catalogue (catalogue.py)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from auth.deps import note_looks
from auth.policy import FHIR_CHILD_TYPES
from directory import audit, service
from directory.errors import DomainError, NotAllowed, NotFound
from directory.identifiers import normalise_identifier
from directory.models import Involvement, Organisation, Role
from directory.observe import observer
from directory.reach import OutsideReach, reach_condition
from directory.visibility import readable_statuses
from interop import mapping as m
from interop import params as P
from interop import repository as repo
from interop import systems as S
from interop.api.catalogue import read_catalogue_resource, search_catalogue
from interop.api.context import Ctx, ref_ids, require_purpose, search_ids, too_costly
from interop.api.searchset import Found, dedupe, searchset
from interop.outcome import FhirError
from interop.sync import InstantTest, last_updated_holds, last_updated_tests
from search.criteria import MAX_DATE_RANGE_DAYS, is_full_postcode, minimum_met
from search.normalise import normalise_postcode

MAX_PATIENTS_PER_SEARCH = 20
"""A search of child-scoped resources may name at most this many patients."""


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


# --------------------------------------------------------------------------- Patient


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


def _patient_ids(ctx: Ctx, q: P.Query) -> list[uuid.UUID]:
    """Every child the criteria match, once they are narrow enough to ask."""
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
    ids = search_ids(q.values("_id"))
    names = q.values("family") + q.values("given") + q.values("name")
    narrow_birth = any(b.width_days() is not None and b.width_days() <= MAX_DATE_RANGE_DAYS for b in births)  # type: ignore[operator]
    postcodes = [normalise_postcode(p) or " ".join(p.upper().split()) for p in q.values("address-postalcode")]
    full_postcode = any(is_full_postcode(p) for p in postcodes)
    if not minimum_met(
        identifier=bool(ids or identifiers),
        name=bool(names),
        narrow_birth=narrow_birth,
        full_postcode=full_postcode,
    ):
        raise too_costly(
            "This search could match too many children. Search by identifier (e.g. the NHS number), "
            "or by a name together with a birthdate (a day, a month or a year) or a full postcode."
        )
    return repo.patient_ids(
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
        statuses=readable_statuses(ctx.actor.role),
        within=reach_condition(ctx.actor),
        last_updated=q.criteria.get("_lastUpdated", []),
    )


def search_patients(ctx: Ctx, q: P.Query) -> Found:
    """Patients matching the criteria, one page, with the includes asked for; counted by outcome for
    the operations metrics as the app API's searches and $match are (childindex/metrics.py)."""
    try:
        require_purpose(ctx.actor)
        if ctx.actor.role == Role.AUDITOR:
            raise NotAllowed("Auditors review the audit log; they do not search the directory.")
        found_ids = _patient_ids(ctx, q)
    except (FhirError, DomainError):  # no purpose, an auditor, too little to search on
        observer().count("search", "refused")
        raise
    if len(found_ids) > repo.MAX_MATCHES:
        observer().count("search", "too-many")
        raise too_costly(f"More than {repo.MAX_MATCHES} children match: add detail to the search.")
    observer().count("search", "found" if found_ids else "none")
    page = found_ids[q.offset : q.offset + q.count] if q.summary != "count" else []
    matches: list[dict[str, Any]] = []
    includes: list[dict[str, Any]] = []
    for child_id in page:
        pic = ctx.pictures.of(child_id)
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
    return Found(len(found_ids), matches, dedupe(includes), page)


def read_catalogue_or_none(ctx: Ctx, kind: str, rid: str) -> dict[str, Any] | None:
    """A catalogue resource a found resource references, or None when there is no such one."""
    try:
        return read_catalogue_resource(ctx, kind, rid)
    except FhirError:
        return None


# --------------------------------------------------------------------------- child-scoped types


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


def _codes(codeable: dict[str, Any]) -> set[str]:
    """'system|code' and 'code' of each coding."""
    codes = {f"{c.get('system')}|{c.get('code')}" for c in codeable.get("coding", [])}
    return codes | {c.split("|")[1] for c in codes}


def _episode_matches(res: dict[str, Any], q: P.Query) -> bool:
    if q.values("date") and not _period_matches(
        res.get("period", {}), [P.parse_date(v, "date") for v in q.values("date")]
    ):
        return False
    if not _refs_match(
        res, "managingOrganization", ref_ids(q.values("organization"), "Organization", "organization")
    ):
        return False
    if not _refs_match(res, "careManager", ref_ids(q.values("care-manager"), "Practitioner", "care-manager")):
        return False
    types = q.values("type")
    if types:
        codes = set().union(*(_codes(t) for t in res.get("type", [])))
        if not any(t in codes for t in types):
            return False
    return True


def _filter(kind: str, res: dict[str, Any], q: P.Query, changed: list[list[InstantTest]]) -> bool:
    updated = (res.get("meta") or {}).get("lastUpdated")
    if not last_updated_holds(datetime.fromisoformat(updated) if updated else None, changed):
        return False
    statuses = q.values("status")
    if statuses and res.get("status") not in statuses:
        return False
    if q.values("_id") and res["id"] not in q.values("_id"):
        return False
    if (
        kind == "Flag"
        and q.values("code")
        and not any(v in _codes(res.get("code") or {}) for v in q.values("code"))
    ):
        return False
    if kind == "EpisodeOfCare":
        return _episode_matches(res, q)
    return True


def _children_named(ctx: Ctx, kind: str, q: P.Query) -> list[uuid.UUID]:
    """The children a child-scoped search is about: its patients (or, for EpisodeOfCare?_id, theirs)."""
    child_ids = ref_ids(q.values("patient") + q.values("subject"), "Patient", "patient")
    if not child_ids and kind == "EpisodeOfCare" and q.values("_id"):
        involvements = [ctx.session.get(Involvement, v) for v in search_ids(q.values("_id"))]
        child_ids = [r.child_id for r in involvements if r is not None]
        if not child_ids:
            return []  # none of ours: nothing matches
    if not child_ids:
        raise too_costly(
            f"Search {kind} for one child at a time: give patient=Patient/<id> "
            "(find the Patient first by identifier)."
        )
    if len(set(child_ids)) > MAX_PATIENTS_PER_SEARCH:
        raise too_costly(f"Name at most {MAX_PATIENTS_PER_SEARCH} patients in one search.")
    return child_ids


def search_child_resources(ctx: Ctx, kind: str, q: P.Query) -> Found:
    """EpisodeOfCare, Flag, CareTeam, Consent or RelatedPerson of the patients named in the search."""
    require_purpose(ctx.actor)
    changed = last_updated_tests(q.criteria.get("_lastUpdated", []))
    child_ids = _children_named(ctx, kind, q)
    if not child_ids:
        return Found(0, [], [], [])
    matches: list[dict[str, Any]] = []
    includes: list[dict[str, Any]] = []
    seen_children = []
    for child_id in dict.fromkeys(child_ids):
        try:
            pic = ctx.pictures.of(child_id)
        except (
            NotFound,
            OutsideReach,
        ):  # outside the caller's grant localities: left out, as a Patient search
            continue
        seen_children.append(child_id)
        rows = [r for r in pic.of(kind) if _filter(kind, r, q, changed)]
        matches += rows
        for _source, param, target in q.includes:
            ctx.need(target, "r")
            if target == "Patient":
                includes += pic.of("Patient") if rows else []
            else:
                includes += _included(ctx, rows, param, target)
    total = len(matches)
    page = matches[q.offset : q.offset + q.count] if q.summary != "count" else []
    return Found(total, page, dedupe(includes), seen_children)


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
            found = read_catalogue_or_none(ctx, target, (ref.get("reference") or "").split("/")[-1])
            if found is not None:
                out.append(found)
    return out


# --------------------------------------------------------------------------- AuditEvent


def search_audit_events(ctx: Ctx, q: P.Query) -> Found:
    """Who looked at a child: the audit events of one patient, for auditors (itself audited)."""
    child_ids = ref_ids(q.values("patient"), "Patient", "patient")
    if len(child_ids) != 1:
        raise too_costly("Search AuditEvent for one patient: patient=Patient/<id>.")
    service.access_log(ctx.session, actor=ctx.actor, child_id=child_ids[0])  # the rule and the audit
    events = audit.who_looked(ctx.session, child_id=child_ids[0], limit=1000, role=ctx.actor.role)
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
