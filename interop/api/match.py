"""Patient/$match: the search engine's ranked candidates, with score and match grade (audited)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from auth.deps import note_looks
from directory import audit
from directory.bounds import DATE_RANGE, date_in_bounds
from directory.errors import NotFound
from directory.observe import observer
from directory.reach import OutsideReach
from interop import mapping as m
from interop import params as P
from interop import systems as S
from interop.api.context import Ctx, require_purpose, too_costly
from interop.outcome import FhirError
from search.matching import MatchingEngine, validate_criteria
from search.port import CriteriaError, SearchQuery, SearchResult


def match_patients(ctx: Ctx, body: dict[str, Any], matcher: MatchingEngine) -> dict[str, Any]:
    """Patient/$match: the search engine's ranked candidates with score and match grade."""
    require_purpose(ctx.actor)
    query, only_certain = _query(body)
    result = matcher.search(query)
    if result.too_many:
        observer().count("search", "too-many")  # (the operations metrics: childindex/metrics.py)
        audit.append(
            ctx.session,
            actor=ctx.actor,
            action="search",
            outcome="too-many",
            detail={"fingerprint": result.fingerprint, "via": "fhir-match"},
        )
        raise too_costly(
            "Too many children match these details: add a given name, the exact birth date, "
            "a postcode or an NHS number."
        )
    entries, children = _entries(ctx, result, only_certain)
    note_looks(ctx.request, ctx.session, ctx.actor, children)
    observer().count("search", "found" if entries else "none")
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
        "link": [{"relation": "self", "url": f"{ctx.base}/Patient/$match"}],
    }
    if entries:
        bundle["entry"] = entries
    return bundle


def _valid(resource: dict[str, Any]) -> None:
    try:
        m.validated(resource)
    except m.MappingError as exc:
        raise FhirError(400, exc.code, exc.message, where=exc.where) from None


def _patient(body: dict[str, Any]) -> tuple[dict[str, Any], int, bool]:
    """The Patient to match, how many candidates to return, and whether only certain ones."""
    if body.get("resourceType") != "Parameters":
        raise FhirError(
            400, "invalid", "Send a Parameters resource with a 'resource' parameter holding a Patient."
        )
    _valid(body)  # every parameter has its FHIR shape before any is read
    params = {p.get("name"): p for p in body.get("parameter") or []}
    resource = (params.get("resource") or {}).get("resource")
    count = _typed(params, "count", "valueInteger", int, 10)
    if isinstance(count, bool) or count < 1:
        raise FhirError(400, "invalid", "'count' must be a positive whole number.", where=_PARAMETER)
    only_certain = _typed(params, "onlyCertainMatches", "valueBoolean", bool, False)
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        raise FhirError(
            400, "invalid", "The 'resource' parameter must hold a Patient.", where="Parameters.parameter"
        )
    _valid(resource)
    return resource, count, only_certain


_PARAMETER = "Parameters.parameter"
_FHIRPATH = {
    "given": "Patient.name.given",
    "family": "Patient.name.family",
    "birth_date": "Patient.birthDate",
    "birth_date_from": "Patient.birthDate",
    "birth_date_to": "Patient.birthDate",
    "sex": "Patient.gender",
    "postcode": "Patient.address.postalCode",
    "identifier_system": "Patient.identifier.system",
    "identifier_value": "Patient.identifier.value",
}
"""The search engine's criteria fields, as the FHIRPath of the Patient element that carries each."""


def _typed(params: dict[Any, Any], name: str, key: str, kind: type, default: Any) -> Any:
    """A $match parameter's value, of the type the operation defines (a string 'true' is refused)."""
    param = params.get(name)
    if param is None:
        return default
    value = param.get(key)
    if not isinstance(value, kind):
        raise FhirError(400, "invalid", f"'{name}' takes {key}.", where=_PARAMETER)
    return value


def _query(body: dict[str, Any]) -> tuple[SearchQuery, bool]:
    """The search query a $match asks (checked as the search engine checks its criteria)."""
    resource, count, only_certain = _patient(body)
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
        element = _FHIRPATH.get(exc.field, "Patient") if exc.field else None
        raise FhirError(400, "invalid", exc.message, where=element) from None
    return query, only_certain


def _entries(
    ctx: Ctx, result: SearchResult, only_certain: bool
) -> tuple[list[dict[str, Any]], list[uuid.UUID]]:
    """The matches as searchset entries (each Patient as the caller may see it), and their children."""
    entries = []
    children = []
    for match in result.matches:
        if only_certain and match.grade != "certain":
            continue
        child_id = uuid.UUID(hex=match.child_id)
        try:
            pic = ctx.pictures.of(child_id)
        except NotFound:
            continue  # the index is behind the database; the database wins
        except OutsideReach:
            continue  # outside the localities the caller's grant restricts them to (directory.reach)
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
    return entries, children
