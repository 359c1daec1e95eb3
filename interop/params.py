"""FHIR search parameters: what each resource type accepts, parsed strictly (pure, no I/O).

An unknown parameter or modifier is dropped and reported (an OperationOutcome entry in the Bundle,
and left out of its `self` link, as R4 asks), unless the client sent `Prefer: handling=strict`, in
which case it is refused with 400 naming it (a client that must not have its search widened asks so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from directory.bounds import DATE_RANGE, date_in_bounds
from interop import systems as S
from interop.outcome import FhirError, operation_outcome

ParamType = Literal["token", "string", "date", "reference"]

# Resource type -> search parameter -> type. The CapabilityStatement is built from this table.
SEARCH_PARAMS: dict[str, dict[str, ParamType]] = {
    "Patient": {
        "_id": "token",
        "identifier": "token",
        "family": "string",
        "given": "string",
        "name": "string",
        "birthdate": "date",
        "gender": "token",
        "address-postalcode": "string",
    },
    "EpisodeOfCare": {
        "_id": "token",
        "patient": "reference",
        "status": "token",
        "date": "date",
        "organization": "reference",
        "care-manager": "reference",
        "type": "token",
    },
    "Flag": {"_id": "token", "patient": "reference", "status": "token", "code": "token"},
    "CareTeam": {"_id": "token", "patient": "reference", "subject": "reference", "status": "token"},
    "CarePlan": {"_id": "token", "patient": "reference", "subject": "reference", "status": "token"},
    "Consent": {"_id": "token", "patient": "reference", "status": "token"},
    "RelatedPerson": {"patient": "reference"},
    "Practitioner": {"_id": "token", "name": "string", "active": "token"},
    "PractitionerRole": {
        "_id": "token",
        "practitioner": "reference",
        "organization": "reference",
        "role": "token",
        "active": "token",
    },
    "Organization": {"_id": "token", "identifier": "token", "name": "string", "type": "token"},
    "HealthcareService": {
        "_id": "token",
        "organization": "reference",
        "service-type": "token",
        "coverage-area": "reference",
        "characteristic": "token",
    },
    "Location": {"_id": "token", "identifier": "token", "name": "string"},
    "AuditEvent": {"patient": "reference", "date": "date", "subtype": "token"},
}

PARAM_DOCS: dict[str, str] = {
    "identifier": f"system|value; the NHS number system is {S.NHS_NUMBER}",
    "birthdate": "with prefixes eq, ne, lt, le, gt, ge; YYYY, YYYY-MM or YYYY-MM-DD",
    "date": "with prefixes eq, ne, lt, le, gt, ge; YYYY, YYYY-MM or YYYY-MM-DD",
    "family": "starts with, case-insensitive; ':exact' for an exact match",
    "given": "starts with, case-insensitive; ':exact' for an exact match",
    "address-postalcode": "starts with (full postcode, sector or district)",
}

# _lastUpdated on the catalogue and the child's resources (issue #19, staying in sync: interop/sync.py
# reads it); on the child's resources it only narrows a search that names its patients
for _kind in (
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "HealthcareService",
    "Location",
    "Patient",
    "EpisodeOfCare",
    "Flag",
    "CareTeam",
    "CarePlan",
    "Consent",
    "RelatedPerson",
):
    SEARCH_PARAMS[_kind]["_lastUpdated"] = "date"
PARAM_DOCS["_lastUpdated"] = (
    "when the resource last changed: an instant with seconds and a time zone (or a date), with "
    "prefixes eq, ne, lt, le, gt, ge; as meta.lastUpdated and _history's _since"
)

# (source type, search parameter) -> the type it points at
INCLUDES: dict[str, dict[str, str]] = {
    "Patient": {"general-practitioner": "Organization"},
    "EpisodeOfCare": {"patient": "Patient", "care-manager": "Practitioner", "organization": "Organization"},
    "CareTeam": {"participant": "Practitioner", "patient": "Patient", "subject": "Patient"},
    "CarePlan": {"patient": "Patient", "subject": "Patient"},
    "PractitionerRole": {"practitioner": "Practitioner", "organization": "Organization"},
    "HealthcareService": {"organization": "Organization", "coverage-area": "Location"},
    "Flag": {"patient": "Patient"},
    "Consent": {"patient": "Patient"},
    "RelatedPerson": {"patient": "Patient"},
}
# target type -> the (source type, parameter) pairs that may be reverse-included
REVINCLUDES: dict[str, set[tuple[str, str]]] = {
    "Patient": {
        ("EpisodeOfCare", "patient"),
        ("Flag", "patient"),
        ("CareTeam", "patient"),
        ("CareTeam", "subject"),
        ("CarePlan", "patient"),
        ("CarePlan", "subject"),
        ("Consent", "patient"),
        ("RelatedPerson", "patient"),
    },
    "Practitioner": {("PractitionerRole", "practitioner")},
}

RESULT_PARAMS = {"_count", "_offset", "_include", "_revinclude", "_summary", "_elements", "_format", "_total"}
DEFAULT_COUNT = 20
MAX_COUNT = 100
MAX_OFFSET = 100_000
# Caps on what a search may carry, checked before anything else: a name, an identifier or a date
# is short, and a longer value only costs the database (a 60,000-character family name once
# made SQLite give up with "pattern too complex").
MAX_PARAMETERS = 50
MAX_NAME_LENGTH = 64
MAX_VALUE_LENGTH = 2048  # a whole value: up to 20 references or identifiers, comma-separated
MAX_STRING_LENGTH = 100  # one name or postcode, as the app API's search allows
PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge")
_DATE = re.compile(r"^([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?\Z")


@dataclass(frozen=True)
class DateTest:
    """A date search value: prefix and the inclusive range its precision covers."""

    prefix: str
    start: date
    end: date

    def bounds(self) -> tuple[date | None, date | None, bool]:
        """(lowest, highest, negate): the inclusive range a matching value lies in."""
        if self.prefix == "eq":
            return self.start, self.end, False
        if self.prefix == "ne":
            return self.start, self.end, True
        if self.prefix == "ge":
            return self.start, None, False
        if self.prefix == "gt":
            return self.end + timedelta(days=1), None, False
        if self.prefix == "le":
            return None, self.end, False
        return None, self.start - timedelta(days=1), False  # lt

    def width_days(self) -> int | None:
        """How many days an 'eq' covers (None for open ranges)."""
        return (self.end - self.start).days + 1 if self.prefix == "eq" else None


@dataclass
class Query:
    """A parsed search: criteria (per occurrence, a list of OR-ed values) and result controls."""

    resource: str
    criteria: dict[str, list[list[str]]] = field(default_factory=dict)
    modifiers: dict[str, str] = field(default_factory=dict)
    count: int = DEFAULT_COUNT
    offset: int = 0
    includes: list[tuple[str, str, str]] = field(default_factory=list)  # (source, param, target)
    revincludes: list[tuple[str, str]] = field(default_factory=list)  # (source, param)
    summary: str | None = None
    elements: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def values(self, name: str) -> list[str]:
        """All values of a parameter, flattened."""
        return [v for group in self.criteria.get(name, []) for v in group]

    def first(self, name: str) -> str | None:
        """The first value of a parameter, if given."""
        values = self.values(name)
        return values[0] if values else None


def parse_date(raw: str, name: str) -> DateTest:
    """Parse a date search value with its prefix and precision."""
    prefix = "eq"
    if raw[:2] in PREFIXES:
        prefix, raw = raw[:2], raw[2:]
    elif raw[:2] in ("sa", "eb", "ap"):
        raise FhirError(
            400,
            "not-supported",
            f"The date prefix '{raw[:2]}' is not supported here; use one of {', '.join(PREFIXES)}.",
            where=name,
        )
    m = _DATE.match(raw)
    if not m:
        raise FhirError(
            400,
            "invalid",
            f"'{raw}' is not a date: use YYYY, YYYY-MM or YYYY-MM-DD "
            "with an optional prefix (eq, ne, lt, le, gt, ge).",
            where=name,
        )
    year, month, day = int(m.group(1)), m.group(2), m.group(3)
    try:
        if day:
            start = end = date(year, int(month or 1), int(day))
        elif month:
            start = date(year, int(month), 1)
            end = (date(year + int(month) // 12, int(month) % 12 + 1, 1)) - timedelta(days=1)
        else:
            start, end = date(year, 1, 1), date(year, 12, 31)
    except ValueError:
        raise FhirError(400, "invalid", f"'{raw}' is not a real date.", where=name) from None
    if not (date_in_bounds(start) and date_in_bounds(end)):
        raise FhirError(400, "invalid", f"'{raw}': search dates must fall {DATE_RANGE}.", where=name)
    return DateTest(prefix, start, end)


STRICT_REFUSAL = "(you sent 'Prefer: handling=strict'; without it, it is ignored)."
"""What a refusal of an unknown parameter adds: why it was refused, and how it would not be."""


def ignored_outcome(names: list[str]) -> dict[str, Any]:
    """The warning a Bundle carries for the parameters it ignored (searches and histories alike)."""
    return operation_outcome(
        "not-supported",
        f"Ignored (send 'Prefer: handling=strict' to have them refused): {', '.join(names)}.",
        severity="warning",
    )


def parse(resource: str, items: list[tuple[str, str]], *, lenient: bool) -> Query:
    """Parse query-string items for a search of `resource`; refuse what is unknown unless lenient."""
    known = SEARCH_PARAMS[resource]
    q = Query(resource)
    check_sizes(resource, items)

    def refuse(message: str, where: str, code: str = "not-supported") -> None:
        if lenient:
            q.ignored.append(where)
            return
        raise FhirError(
            400,
            code,
            f"{message} {STRICT_REFUSAL}",
            where=where,
        )

    for key, value in items:
        name, _, modifier = key.partition(":")
        if name in RESULT_PARAMS:
            _result_param(q, name, value, refuse)
            continue
        if name not in known:
            refuse(
                f"Unknown search parameter '{name}' for {resource}; this server supports: "
                f"{', '.join(sorted(known))}.",
                key,
            )
            continue
        if modifier:
            allowed = {"string": {"exact"}, "token": set(), "date": set(), "reference": set()}[known[name]]
            if modifier not in allowed:
                refuse(f"The modifier ':{modifier}' is not supported on '{name}'.", key)
                continue
            q.modifiers[name] = modifier
        if value == "":
            raise FhirError(400, "invalid", f"The parameter '{name}' has no value.", where=name)
        q.criteria.setdefault(name, []).append(value.split(","))
    return q


def check_sizes(resource: str, items: list[tuple[str, str]]) -> None:
    """Refuse (400) a search with too many parameters, or a name or value longer than any we use."""
    if len(items) > MAX_PARAMETERS:
        raise FhirError(
            400,
            "too-costly",
            f"A search may carry at most {MAX_PARAMETERS} parameters; this one has {len(items)}.",
        )
    strings = {n for n, t in SEARCH_PARAMS[resource].items() if t == "string"}
    for key, value in items:
        if len(key) > MAX_NAME_LENGTH:
            raise FhirError(
                400, "invalid", f"A search parameter name is longer than {MAX_NAME_LENGTH} characters."
            )
        if len(value) > MAX_VALUE_LENGTH:
            raise FhirError(
                400,
                "invalid",
                f"The value of '{key}' is longer than {MAX_VALUE_LENGTH} characters.",
                where=key,
            )
        if key.partition(":")[0] in strings and any(len(v) > MAX_STRING_LENGTH for v in value.split(",")):
            raise FhirError(
                400,
                "invalid",
                f"'{key}' is longer than {MAX_STRING_LENGTH} characters: give a name or postcode as written.",
                where=key,
            )


def _whole_number(name: str, value: str, most: int) -> int:
    """A non-negative whole number of ASCII digits, at most `most` (400 otherwise)."""
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise FhirError(400, "invalid", f"{name} must be a whole number.", where=name)
    number = int(value)
    if number > most:
        raise FhirError(400, "invalid", f"{name} may be at most {most}.", where=name)
    return number


def _result_param(q: Query, name: str, value: str, refuse: object) -> None:
    if name == "_count":
        q.count = min(_whole_number("_count", value, 999_999_999), MAX_COUNT)
    elif name == "_offset":
        q.offset = _whole_number("_offset", value, MAX_OFFSET)
    elif name == "_include":
        source, _, param = value.partition(":")
        param, _, target = param.partition(":")
        targets = INCLUDES.get(source, {})
        if source != q.resource or param not in targets or (target and target != targets[param]):
            raise FhirError(
                400,
                "not-supported",
                f"_include={value} is not supported; for {q.resource} use: "
                + (", ".join(f"{q.resource}:{p}" for p in INCLUDES.get(q.resource, {})) or "none"),
                where="_include",
            )
        q.includes.append((source, param, targets[param]))
    elif name == "_revinclude":
        source, _, param = value.partition(":")
        param = param.partition(":")[0]
        allowed = REVINCLUDES.get(q.resource, set())
        if (source, param) not in allowed:
            raise FhirError(
                400,
                "not-supported",
                f"_revinclude={value} is not supported; for {q.resource} use: "
                + (", ".join(sorted(f"{s}:{p}" for s, p in allowed)) or "none"),
                where="_revinclude",
            )
        q.revincludes.append((source, param))
    elif name == "_summary":
        if value not in ("true", "false", "count"):
            raise FhirError(
                400, "not-supported", "_summary may be true, false or count here.", where="_summary"
            )
        q.summary = None if value == "false" else value
    elif name == "_elements":
        q.elements = [e.strip() for e in value.split(",") if e.strip()]
    elif name == "_format":
        check_format(value)
    # _total: the total is always counted exactly; nothing to do


def check_format(value: str) -> None:
    """406 unless `_format` asks for JSON (this server speaks FHIR JSON only)."""
    if value not in ("json", "application/fhir+json", "application/json"):
        raise FhirError(406, "not-supported", "This server speaks FHIR JSON only.", where="_format")


# Elements kept by _summary=true (the summary elements of the base resources, as far as we emit them).
SUMMARY_ELEMENTS: dict[str, set[str]] = {
    "Patient": {"identifier", "active", "name", "gender", "birthDate", "link", "generalPractitioner"},
    "EpisodeOfCare": {"status", "type", "patient", "managingOrganization", "period", "careManager"},
    "Flag": {"status", "category", "code", "subject", "period", "author"},
    "CareTeam": {"status", "category", "name", "subject", "period", "participant"},
    "CarePlan": {"status", "intent", "title", "subject", "period", "careTeam"},
    "Consent": {"status", "scope", "category", "patient", "dateTime", "performer"},
    "RelatedPerson": {"active", "patient", "relationship", "name", "telecom"},
    "Practitioner": {"active", "name"},
    "PractitionerRole": {"active", "practitioner", "organization", "code", "telecom"},
    "Organization": {"identifier", "active", "type", "name"},
    "HealthcareService": {"active", "providedBy", "type", "name"},
    "Location": {"identifier", "status", "name", "alias", "mode"},
    "AuditEvent": {"type", "subtype", "action", "recorded", "outcome", "agent", "source", "entity"},
}
# The elements R4 requires (min 1) of the resources we emit: _elements keeps them whatever is asked, as R4
# says a server should, so that a subsetted resource still parses (strict clients refuse it otherwise).
MANDATORY_ELEMENTS: dict[str, set[str]] = {
    "EpisodeOfCare": {"status", "patient"},
    "Flag": {"status", "code", "subject"},
    "CarePlan": {"status", "intent", "subject"},
    "Consent": {"status", "scope", "category"},
    "RelatedPerson": {"patient"},
    "AuditEvent": {"type", "recorded", "agent", "source"},
}
_SUBSETTED = {"system": S.V3_OBSERVATION_VALUE, "code": "SUBSETTED"}


def subset(resource: dict[str, object], *, summary: str | None, elements: list[str]) -> dict[str, object]:
    """Apply _summary=true or _elements to one resource, marking it SUBSETTED."""
    if summary != "true" and not elements:
        return resource
    kind = str(resource["resourceType"])
    keep = {*elements, *MANDATORY_ELEMENTS.get(kind, ())} if elements else SUMMARY_ELEMENTS.get(kind, set())
    out = {k: v for k, v in resource.items() if k in keep or k in ("resourceType", "id", "meta")}
    meta = dict(out.get("meta") or {})  # type: ignore[call-overload]
    meta["tag"] = [*meta.get("tag", []), _SUBSETTED]
    out["meta"] = meta
    return out
