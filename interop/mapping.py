"""Domain <-> FHIR R4 mappers: pure functions, no I/O. Every resource is validated with the R4B models.

Outbound mappers take what the domain lets this caller see (a ChildCard built by
directory.service, or catalogue rows) and return plain JSON dicts; inbound mappers take a
FHIR JSON dict and return the domain's input shapes (or a small dataclass of references),
raising MappingError with the FHIRPath of what is wrong.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from directory.bounds import DATE_RANGE, date_in_bounds
from directory.models import (
    AuditEvent,
    CafOutcome,
    CafRead,
    ChildCard,
    ConsentRead,
    InvolvementUpdate,
    LeadProfessionalRead,
    Locality,
    NameUse,
    Organisation,
    Practitioner,
    PractitionerCreate,
    RelatedPersonRead,
    Service,
    Tac,
)
from interop import systems as S

# --------------------------------------------------------------------------- plumbing


class MappingError(ValueError):
    """A FHIR resource that does not fit the domain; `where` is a FHIRPath, `code` an issue type."""

    def __init__(self, message: str, *, where: str | None = None, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.code = code


def validated(resource: dict[str, Any]) -> dict[str, Any]:
    """Validate a resource with the fhir.resources R4B model of its type; return its JSON form."""
    kind = resource.get("resourceType")
    if not isinstance(kind, str):
        raise MappingError("The resource has no resourceType.", where="resourceType")
    try:
        model = get_fhir_model_class(kind)
    except KeyError:
        raise MappingError(f"'{kind}' is not a FHIR resource type.", where="resourceType") from None
    try:
        obj = model.model_validate(resource)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "__root__")
        raise MappingError(
            f"{kind} is not valid FHIR: {first.get('msg', 'invalid')}", where=f"{kind}.{where}".rstrip(".")
        ) from None
    except (TypeError, AttributeError):
        # fhir.resources' own validators (url, uri) fail this way on a value of the wrong JSON type
        raise MappingError(f"{kind} is not valid FHIR: a value has the wrong type.", where=kind) from None
    out: dict[str, Any] = obj.model_dump(mode="json", exclude_none=True)
    return out


def _ref(kind: str, id_: uuid.UUID | str | None, display: str | None = None) -> dict[str, Any] | None:
    if id_ is None:
        return None
    out: dict[str, Any] = {"reference": f"{kind}/{_rid(id_)}"}
    if display:
        out["display"] = display
    return out


def _rid(id_: uuid.UUID | str) -> str:
    return str(id_)


def ref_id(reference: Any, kind: str, *, where: str) -> uuid.UUID:
    """The uuid in a reference 'Kind/<uuid>' (also accepts absolute URLs ending so)."""
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        raise MappingError(f"Give a reference to a {kind}.", where=where)
    parts = reference["reference"].rstrip("/").split("/")
    # a PractitionerRole shares its practitioner's id here, so it may stand for the Practitioner
    same = len(parts) >= 2 and (
        parts[-2] == kind or (kind == "Practitioner" and parts[-2] == "PractitionerRole")
    )
    if not same:
        raise MappingError(f"The reference must point at a {kind} ('{kind}/<id>').", where=where)
    try:
        return uuid.UUID(parts[-1])
    except ValueError:
        raise MappingError(f"No {kind} has the id '{parts[-1]}'.", where=where, code="not-found") from None


def _telecom(phone: str | None, email: str | None, use: str = "work") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if phone:
        out.append({"system": "phone", "value": phone, "use": use})
    if email:
        out.append({"system": "email", "value": email, "use": use})
    return out


def _from_telecom(telecom: Iterable[dict[str, Any]] | None) -> tuple[str | None, str | None]:
    phone = email = None
    for t in telecom or []:
        if t.get("system") == "phone" and phone is None:
            phone = t.get("value")
        elif t.get("system") == "email" and email is None:
            email = t.get("value")
    return phone, email


def _ext(url: str, **value: Any) -> dict[str, Any]:
    return {"url": url, **value}


def _ext_value(resource: dict[str, Any], url: str, key: str) -> Any:
    for ext in resource.get("extension") or []:
        if ext.get("url") == url:
            return ext.get(key)
    return None


def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _d(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _parse_date(value: Any, where: str) -> date | None:
    if value is None:
        return None
    try:
        parsed = date.fromisoformat(str(value)[:10])
    except ValueError:
        raise MappingError(f"'{value}' is not a date (YYYY-MM-DD).", where=where) from None
    if not date_in_bounds(parsed):
        raise MappingError(f"'{value}': dates must fall {DATE_RANGE}.", where=where)
    return parsed


def _meta(
    version: int | None = None, *, restricted: bool = False, updated: datetime | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if version is not None:
        meta["versionId"] = str(version)
    if updated is not None:
        meta["lastUpdated"] = updated.isoformat()
    if restricted:
        meta["security"] = [{"system": S.V3_CONFIDENTIALITY, "code": "R", "display": "restricted"}]
    return meta


def _is_restricted(resource: dict[str, Any]) -> bool:
    for sec in (resource.get("meta") or {}).get("security") or []:
        if sec.get("system") == S.V3_CONFIDENTIALITY and sec.get("code") in {"R", "V"}:
            return True
    return False


# --------------------------------------------------------------------------- Patient

_NAME_USE = {
    NameUse.OFFICIAL.value: "official",
    NameUse.USUAL.value: "usual",
    NameUse.PREVIOUS.value: "old",
    NameUse.ALIAS.value: "nickname",
}
_NAME_USE_BACK = {v: k for k, v in _NAME_USE.items()} | {"maiden": NameUse.PREVIOUS.value}
GENDERS = ("male", "female", "other", "unknown")


@dataclass(frozen=True)
class PatientExtras:
    """What a Patient needs beyond the card: links the card names but does not identify."""

    version: int
    updated_at: datetime | None = None
    gp_practice_id: uuid.UUID | None = None
    merged_into_id: uuid.UUID | None = None


def patient(card: ChildCard, extras: PatientExtras) -> dict[str, Any]:
    """Child (as the caller may see it) -> Patient: identifiers, names incl. old, address unless shielded."""
    res: dict[str, Any] = {
        "resourceType": "Patient",
        "id": _rid(card.id),
        "meta": _meta(extras.version, restricted=card.shielded, updated=extras.updated_at),
        "identifier": [
            {"system": S.fhir_identifier_system(i.system), "value": i.value} for i in card.identifiers
        ],
        "active": card.status == "active",
        "name": [],
        "gender": card.sex,
    }
    for n in card.names:
        name: dict[str, Any] = {
            "use": _NAME_USE.get(n.use, "usual"),
            "family": n.family,
            "given": [g for g in (n.given, n.middle) if g],
        }
        if n.until:
            name["period"] = {"end": n.until.isoformat()}
        res["name"].append(name)
    if card.date_of_birth:
        res["birthDate"] = card.date_of_birth.isoformat()
    extensions: list[dict[str, Any]] = []
    if card.expected_delivery_date:
        extensions.append(_ext(S.EXT_EXPECTED_DELIVERY, valueDate=card.expected_delivery_date.isoformat()))
    if card.shielded:
        extensions.append(_ext(S.EXT_SHIELDED, valueBoolean=True))
    if card.shield_notice is not None:
        ask = card.shield_notice.ask
        extensions.append(
            _ext(
                S.EXT_ASK,
                valueContactDetail={"name": ask.name, "telecom": _telecom(ask.phone, ask.email)},
            )
        )
    if extensions:
        res["extension"] = extensions
    if card.address is not None:
        a = card.address
        address: dict[str, Any] = {
            "use": "home",
            "line": [x for x in (a.line1, a.line2) if x],
            "postalCode": a.postcode,
        }
        if a.town:
            address["city"] = a.town
        if a.since:
            address["period"] = {"start": a.since.isoformat()}
        res["address"] = [address]
    if card.gp_practice is not None and extras.gp_practice_id is not None:
        res["generalPractitioner"] = [_ref("Organization", extras.gp_practice_id, card.gp_practice.name)]
    if extras.merged_into_id is not None:
        res["link"] = [{"other": _ref("Patient", extras.merged_into_id), "type": "replaced-by"}]
    return validated(res)


@dataclass(frozen=True)
class PatientIn:
    """A Patient read back into the domain's child fields."""

    id: uuid.UUID | None
    names: list[dict[str, Any]]
    identifiers: list[dict[str, str]]
    date_of_birth: date | None
    expected_delivery_date: date | None
    sex: str
    address: dict[str, Any] | None
    gp_practice_id: uuid.UUID | None
    shielded: bool


def patient_in(resource: dict[str, Any]) -> PatientIn:
    """Patient -> the domain's child fields (for ChildCreate, and for round-trip checks)."""
    validated(resource)
    if resource.get("resourceType") != "Patient":
        raise MappingError("Expected a Patient.", where="resourceType")
    gender = resource.get("gender", "unknown")
    if gender not in GENDERS:
        raise MappingError(f"'{gender}' is not an administrative gender.", where="Patient.gender")
    names = []
    for i, n in enumerate(resource.get("name") or []):
        given = n.get("given") or []
        if not given or not n.get("family"):
            raise MappingError("Each name needs a family and a given name.", where=f"Patient.name[{i}]")
        use = _NAME_USE_BACK.get(n.get("use", "official"))
        if use is None:
            raise MappingError(f"Name use '{n.get('use')}' is not supported.", where=f"Patient.name[{i}].use")
        names.append(
            {
                "given": given[0],
                "middle": " ".join(given[1:]) or None,
                "family": n["family"],
                "use": use,
                "until": _parse_date((n.get("period") or {}).get("end"), f"Patient.name[{i}].period.end"),
            }
        )
    identifiers = []
    for i, ident in enumerate(resource.get("identifier") or []):
        system = S.domain_identifier_system(ident.get("system", ""))
        if system is None:
            raise MappingError(
                f"Identifier system '{ident.get('system')}' is not one this directory holds.",
                where=f"Patient.identifier[{i}].system",
                code="code-invalid",
            )
        identifiers.append({"system": system, "value": ident.get("value", "")})
    address = None
    for a in resource.get("address") or []:
        lines = a.get("line") or []
        address = {
            "line1": lines[0] if lines else "",
            "line2": lines[1] if len(lines) > 1 else None,
            "town": a.get("city"),
            "postcode": a.get("postalCode", ""),
            "since": _parse_date((a.get("period") or {}).get("start"), "Patient.address.period.start"),
        }
        break
    gp = None
    for i, g in enumerate(resource.get("generalPractitioner") or []):
        gp = ref_id(g, "Organization", where=f"Patient.generalPractitioner[{i}]")
    rid = resource.get("id")
    return PatientIn(
        id=uuid.UUID(rid) if rid else None,
        names=names,
        identifiers=identifiers,
        date_of_birth=_parse_date(resource.get("birthDate"), "Patient.birthDate"),
        expected_delivery_date=_parse_date(
            _ext_value(resource, S.EXT_EXPECTED_DELIVERY, "valueDate"), "Patient.extension"
        ),
        sex=gender,
        address=address,
        gp_practice_id=gp,
        shielded=bool(_ext_value(resource, S.EXT_SHIELDED, "valueBoolean")),
    )


# --------------------------------------------------------------------------- RelatedPerson

_RELATIONSHIP = {
    "mother": "MTH",
    "father": "FTH",
    "parent": "PRN",
    "stepmother": "STPMTH",
    "stepfather": "STPFTH",
    "grandmother": "GRMTH",
    "grandfather": "GRFTH",
    "foster carer": "FSTPRN",
    "guardian": "GUARD",
    "carer": "CAREGIVER",
}
_RELATIONSHIP_BACK = {v: k for k, v in _RELATIONSHIP.items()}


def related_person(person: RelatedPersonRead, child_id: uuid.UUID) -> dict[str, Any]:
    """Parent/carer -> RelatedPerson, with parental responsibility as an extension."""
    code = _RELATIONSHIP.get(person.relationship.lower())
    relationship = (
        {"coding": [{"system": S.V3_ROLE_CODE, "code": code}], "text": person.relationship}
        if code
        else {
            "coding": [{"system": S.RELATIONSHIP_LOCAL, "code": person.relationship}],
            "text": person.relationship,
        }
    )
    res = {
        "resourceType": "RelatedPerson",
        "id": _rid(person.id),
        "extension": [_ext(S.EXT_PARENTAL_RESPONSIBILITY, valueBoolean=person.parental_responsibility)],
        "active": True,
        "patient": _ref("Patient", child_id),
        "relationship": [relationship],
        "name": [{"text": person.name}],
        "telecom": _telecom(person.phone, person.email, use="home"),
    }
    return validated(res)


def related_person_in(resource: dict[str, Any]) -> tuple[uuid.UUID, dict[str, Any]]:
    """RelatedPerson -> (child id, RelatedPersonIn fields)."""
    validated(resource)
    child_id = ref_id(resource.get("patient"), "Patient", where="RelatedPerson.patient")
    rel = (resource.get("relationship") or [{}])[0]
    coding = (rel.get("coding") or [{}])[0]
    relationship = (
        _RELATIONSHIP_BACK.get(coding.get("code", ""))
        if coding.get("system") == S.V3_ROLE_CODE
        else coding.get("code")
    ) or rel.get("text")
    if not relationship:
        raise MappingError("Say how the person is related to the child.", where="RelatedPerson.relationship")
    phone, email = _from_telecom(resource.get("telecom"))
    name = ((resource.get("name") or [{}])[0]).get("text")
    if not name:
        raise MappingError("Give the person's name.", where="RelatedPerson.name")
    return child_id, {
        "name": name,
        "relationship": relationship,
        "parental_responsibility": bool(_ext_value(resource, S.EXT_PARENTAL_RESPONSIBILITY, "valueBoolean")),
        "phone": phone,
        "email": email,
    }


# --------------------------------------------------------------------------- Organization

_ORG_TYPE = {
    "school": ("edu", "Educational Institute"),
    "early_years": ("edu", "Educational Institute"),
    "gp_practice": ("prov", "Healthcare Provider"),
    "nhs_trust": ("prov", "Healthcare Provider"),
    "local_authority": ("govt", "Government"),
    "police": ("govt", "Government"),
    "voluntary": ("cg", "Community Group"),
    "other": ("other", "Other"),
}


def organization(org: Organisation) -> dict[str, Any]:
    """Organisation -> Organization, identified by ODS code or school URN."""
    hl7, display = _ORG_TYPE.get(org.kind, ("other", "Other"))
    identifiers = []
    if org.ods_code:
        identifiers.append({"system": S.ODS_CODE, "value": org.ods_code})
    if org.urn:
        identifiers.append({"system": S.SCHOOL_URN, "value": org.urn})
    res: dict[str, Any] = {
        "resourceType": "Organization",
        "id": _rid(org.id),
        "identifier": identifiers,
        "active": True,
        "type": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                        "code": hl7,
                        "display": display,
                    },
                    {"system": S.ORGANISATION_KIND, "code": org.kind},
                ]
            }
        ],
        "name": org.name,
        "telecom": _telecom(org.phone, org.email),
    }
    if org.postcode:
        res["address"] = [{"use": "work", "postalCode": org.postcode}]
    return validated(res)


def organization_in(resource: dict[str, Any]) -> dict[str, Any]:
    """Organization -> Organisation fields."""
    validated(resource)
    kind = "other"
    for t in resource.get("type") or []:
        for c in t.get("coding") or []:
            if c.get("system") == S.ORGANISATION_KIND:
                kind = c.get("code", "other")
    ods = urn = None
    for i in resource.get("identifier") or []:
        if i.get("system") == S.ODS_CODE:
            ods = i.get("value")
        elif i.get("system") == S.SCHOOL_URN:
            urn = i.get("value")
    phone, email = _from_telecom(resource.get("telecom"))
    postcode = ((resource.get("address") or [{}])[0]).get("postalCode")
    return {
        "name": resource.get("name"),
        "kind": kind,
        "ods_code": ods,
        "urn": urn,
        "phone": phone,
        "email": email,
        "postcode": postcode,
    }


# --------------------------------------------------------------------------- Practitioner(Role)


def practitioner(p: Practitioner) -> dict[str, Any]:
    """Practitioner -> Practitioner (the person; how to reach them is on the PractitionerRole)."""
    res = {
        "resourceType": "Practitioner",
        "id": _rid(p.id),
        "active": p.active,
        "name": [{"text": p.name}],
    }
    return validated(res)


def practitioner_role(p: Practitioner, org_name: str | None = None) -> dict[str, Any]:
    """Practitioner -> PractitionerRole: role at an organisation, with the contact point as telecom."""
    res = {
        "resourceType": "PractitionerRole",
        "id": _rid(p.id),
        "meta": _meta(p.version),
        "active": p.active,
        "practitioner": _ref("Practitioner", p.id, p.name),
        "organization": _ref("Organization", p.organisation_id, org_name),
        "code": [
            {
                "coding": [{"system": S.PRACTITIONER_ROLE, "code": _slug(p.role), "display": p.role}],
                "text": p.role,
            }
        ],
        "telecom": _telecom(p.phone, p.email),
    }
    return validated(res)


def _slug(text: str) -> str:
    return "-".join(text.lower().split())


def practitioner_role_in(resource: dict[str, Any]) -> PractitionerCreate:
    """PractitionerRole -> PractitionerCreate (the practitioner's name comes from practitioner.display)."""
    validated(resource)
    if resource.get("resourceType") != "PractitionerRole":
        raise MappingError("Expected a PractitionerRole.", where="resourceType")
    org_id = ref_id(resource.get("organization"), "Organization", where="PractitionerRole.organization")
    name = (resource.get("practitioner") or {}).get("display")
    if not name:
        raise MappingError(
            "Name the practitioner in practitioner.display.", where="PractitionerRole.practitioner.display"
        )
    code = (resource.get("code") or [{}])[0]
    role = code.get("text") or ((code.get("coding") or [{}])[0]).get("display")
    if not role:
        raise MappingError("Say what the practitioner's role is (code.text).", where="PractitionerRole.code")
    phone, email = _from_telecom(resource.get("telecom"))
    try:
        return PractitionerCreate(
            name=name,
            role=role,
            organisation_id=org_id,
            phone=phone,
            email=email,
            active=resource.get("active", True),
        )
    except ValidationError as exc:
        raise MappingError(str(exc.errors()[0].get("msg")), where="PractitionerRole") from None


# --------------------------------------------------------------------------- HealthcareService, Location


def healthcare_service(service: Service, locality_ids: Sequence[uuid.UUID]) -> dict[str, Any]:
    """Service -> HealthcareService: type, level of need, tier and the localities it covers."""
    characteristic = [
        {
            "coding": [
                {
                    "system": S.LEVEL_OF_NEED,
                    "code": str(service.level_of_need),
                    "display": _LEVEL_DISPLAY.get(service.level_of_need),
                }
            ]
        },
        {"coding": [{"system": S.SERVICE_TIER, "code": service.tier}]},
    ]
    extensions = []
    if service.sensitive:
        extensions.append(_ext(S.EXT_SENSITIVE_CATEGORY, valueCode=service.sensitive_category or "all"))
    res: dict[str, Any] = {
        "resourceType": "HealthcareService",
        "id": _rid(service.id),
        "active": True,
        "providedBy": _ref("Organization", service.organisation_id),
        "type": [{"coding": [{"system": S.SERVICE_TYPE, "code": service.service_type}]}],
        "name": service.name,
        "telecom": _telecom(service.phone, service.email),
        "characteristic": characteristic,
        "coverageArea": [_ref("Location", loc) for loc in locality_ids],
    }
    if service.sensitive:
        res["meta"] = _meta(restricted=True)
        res["extension"] = extensions
    return validated(res)


_LEVEL_DISPLAY = {1: "Universal", 2: "Additional / targeted", 3: "Complex", 4: "Acute / statutory"}


def healthcare_service_in(resource: dict[str, Any]) -> tuple[dict[str, Any], list[uuid.UUID]]:
    """HealthcareService -> (Service fields, covered locality ids)."""
    validated(resource)
    level = tier = None
    for c in resource.get("characteristic") or []:
        for coding in c.get("coding") or []:
            if coding.get("system") == S.LEVEL_OF_NEED:
                level = int(coding["code"])
            elif coding.get("system") == S.SERVICE_TIER:
                tier = coding.get("code")
    stype = ((resource.get("type") or [{}])[0].get("coding") or [{}])[0].get("code")
    phone, email = _from_telecom(resource.get("telecom"))
    category = _ext_value(resource, S.EXT_SENSITIVE_CATEGORY, "valueCode")
    fields = {
        "name": resource.get("name"),
        "service_type": stype,
        "organisation_id": ref_id(
            resource.get("providedBy"), "Organization", where="HealthcareService.providedBy"
        ),
        "level_of_need": level,
        "tier": tier,
        "phone": phone,
        "email": email,
        "sensitive": category is not None,
        "sensitive_category": None if category in (None, "all") else category,
    }
    areas = [
        ref_id(a, "Location", where=f"HealthcareService.coverageArea[{i}]")
        for i, a in enumerate(resource.get("coverageArea") or [])
    ]
    return fields, areas


def location(locality: Locality, areas: Sequence[str]) -> dict[str, Any]:
    """Locality -> Location (an area, with its core delivery team as the contact point)."""
    res = {
        "resourceType": "Location",
        "id": _rid(locality.id),
        "identifier": [{"system": S.LOCALITY_CODE, "value": locality.code}],
        "status": "active",
        "name": locality.name,
        "alias": [locality.team_name],
        "description": f"Local delivery area of {locality.authority}; postcode areas: {', '.join(areas)}",
        "mode": "kind",
        "physicalType": {"coding": [{"system": S.LOCATION_TYPE, "code": "area", "display": "Area"}]},
        "telecom": _telecom(locality.team_phone, locality.team_email),
    }
    return validated(res)


def location_in(resource: dict[str, Any]) -> dict[str, Any]:
    """Location -> Locality fields (the authority is read back from the description)."""
    validated(resource)
    code = next(
        (i.get("value") for i in resource.get("identifier") or [] if i.get("system") == S.LOCALITY_CODE), None
    )
    phone, email = _from_telecom(resource.get("telecom"))
    description = resource.get("description") or ""
    authority = description.removeprefix("Local delivery area of ").split(";")[0]
    return {
        "code": code,
        "name": resource.get("name"),
        "authority": authority,
        "team_name": (resource.get("alias") or [None])[0],
        "team_phone": phone,
        "team_email": email,
    }


# --------------------------------------------------------------------------- EpisodeOfCare

EPISODE_STATUSES = ("planned", "waitlist", "active", "onhold", "finished", "cancelled", "entered-in-error")


@dataclass(frozen=True)
class EpisodeRow:
    """An involvement as the mapper needs it (all from directory rows)."""

    id: uuid.UUID
    child_id: uuid.UUID
    service_id: uuid.UUID
    service_name: str
    service_type: str
    organisation_id: uuid.UUID
    organisation_name: str | None
    practitioner_id: uuid.UUID | None
    practitioner_name: str | None
    role: str
    level_of_need: int
    start_date: date
    end_date: date | None
    status: str
    sensitive: bool
    consent_id: uuid.UUID | None
    source: str
    last_confirmed_at: datetime | None
    version: int


def episode_of_care(row: EpisodeRow) -> dict[str, Any]:
    """Involvement -> EpisodeOfCare: patient, managing organisation, care manager, period, status, type."""
    extensions = [
        _ext(
            S.EXT_HEALTHCARE_SERVICE,
            valueReference=_ref("HealthcareService", row.service_id, row.service_name),
        ),
        _ext(S.EXT_INVOLVEMENT_ROLE, valueString=row.role),
        _ext(
            S.EXT_LEVEL_OF_NEED,
            valueCoding={
                "system": S.LEVEL_OF_NEED,
                "code": str(row.level_of_need),
                "display": _LEVEL_DISPLAY[row.level_of_need],
            },
        ),
        _ext(S.EXT_RECORDED_BY_SOURCE, valueString=row.source),
    ]
    if row.last_confirmed_at:
        extensions.append(_ext(S.EXT_LAST_CONFIRMED, valueDateTime=row.last_confirmed_at.isoformat()))
    if row.consent_id:
        extensions.append(_ext(S.EXT_COVERING_CONSENT, valueReference=_ref("Consent", row.consent_id)))
    period: dict[str, Any] = {"start": row.start_date.isoformat()}
    if row.end_date:
        period["end"] = row.end_date.isoformat()
    res: dict[str, Any] = {
        "resourceType": "EpisodeOfCare",
        "id": _rid(row.id),
        "meta": _meta(row.version, restricted=row.sensitive),
        "extension": extensions,
        "status": "active" if row.status == "active" else "finished",
        "type": [
            {"coding": [{"system": S.SERVICE_TYPE, "code": row.service_type, "display": row.service_name}]}
        ],
        "patient": _ref("Patient", row.child_id),
        "managingOrganization": _ref("Organization", row.organisation_id, row.organisation_name),
        "period": period,
    }
    if row.practitioner_id:
        res["careManager"] = _ref("Practitioner", row.practitioner_id, row.practitioner_name)
    return validated(res)


@dataclass(frozen=True)
class EpisodeIn:
    """An EpisodeOfCare read back into the domain's involvement fields."""

    child_id: uuid.UUID
    service_id: uuid.UUID
    practitioner_id: uuid.UUID | None
    role: str | None
    level_of_need: int | None
    start_date: date
    end_date: date | None
    status: str  # active | ended
    sensitive: bool
    consent_id: uuid.UUID | None
    source: str | None

    def update(self, *, role: str, level_of_need: int) -> InvolvementUpdate:
        """The update shape, with defaults for what the resource left out."""
        return InvolvementUpdate(
            practitioner_id=self.practitioner_id,
            role=self.role or role,
            level_of_need=self.level_of_need or level_of_need,
            end_date=self.end_date if self.status == "ended" else None,
        )


def episode_of_care_in(resource: dict[str, Any]) -> EpisodeIn:
    """EpisodeOfCare -> the domain's involvement fields; refuses statuses the directory does not keep."""
    if resource.get("resourceType") != "EpisodeOfCare":
        raise MappingError(
            f"Expected an EpisodeOfCare, got {resource.get('resourceType') or 'no resourceType'}.",
            where="resourceType",
        )
    validated(resource)
    status = resource.get("status")
    if status not in EPISODE_STATUSES:
        raise MappingError(
            f"'{status}' is not an EpisodeOfCare status ({', '.join(EPISODE_STATUSES)}).",
            where="EpisodeOfCare.status",
            code="code-invalid",
        )
    if status not in ("active", "finished"):
        raise MappingError(
            f"The directory records involvements that are active or finished, not '{status}'.",
            where="EpisodeOfCare.status",
            code="not-supported",
        )
    service = _ext_value(resource, S.EXT_HEALTHCARE_SERVICE, "valueReference")
    if service is None:
        raise MappingError(
            f"Say which service is involved: an extension {S.EXT_HEALTHCARE_SERVICE} with a reference "
            "to a HealthcareService.",
            where="EpisodeOfCare.extension",
            code="required",
        )
    level_coding = _ext_value(resource, S.EXT_LEVEL_OF_NEED, "valueCoding")
    level = None
    if level_coding is not None:
        if level_coding.get("system") != S.LEVEL_OF_NEED or level_coding.get("code") not in {
            "1",
            "2",
            "3",
            "4",
        }:
            raise MappingError(
                f"The level of need must be a code 1-4 from {S.LEVEL_OF_NEED}.",
                where="EpisodeOfCare.extension",
                code="code-invalid",
            )
        level = int(level_coding["code"])
    period = resource.get("period") or {}
    start = _parse_date(period.get("start"), "EpisodeOfCare.period.start")
    if start is None:
        raise MappingError(
            "Give the date the involvement started.", where="EpisodeOfCare.period.start", code="required"
        )
    end = _parse_date(period.get("end"), "EpisodeOfCare.period.end")
    if status == "finished" and end is None:
        raise MappingError(
            "A finished episode needs period.end.", where="EpisodeOfCare.period.end", code="required"
        )
    consent = _ext_value(resource, S.EXT_COVERING_CONSENT, "valueReference")
    return EpisodeIn(
        child_id=ref_id(resource.get("patient"), "Patient", where="EpisodeOfCare.patient"),
        service_id=ref_id(service, "HealthcareService", where="EpisodeOfCare.extension"),
        practitioner_id=(
            ref_id(resource["careManager"], "Practitioner", where="EpisodeOfCare.careManager")
            if resource.get("careManager")
            else None
        ),
        role=_ext_value(resource, S.EXT_INVOLVEMENT_ROLE, "valueString"),
        level_of_need=level,
        start_date=start,
        end_date=end,
        status="active" if status == "active" else "ended",
        sensitive=_is_restricted(resource),
        consent_id=ref_id(consent, "Consent", where="EpisodeOfCare.extension") if consent else None,
        source=_ext_value(resource, S.EXT_RECORDED_BY_SOURCE, "valueString"),
    )


# --------------------------------------------------------------------------- CareTeam (TAC)

LEAD_PROFESSIONAL = "lead-professional"
_TAC_STATUS = {"forming": "proposed", "convened": "active", "closed": "inactive"}
_TAC_STATUS_BACK = {v: k for k, v in _TAC_STATUS.items()}


@dataclass(frozen=True)
class TeamMember:
    """A TAC member as the CareTeam shows them."""

    practitioner_id: uuid.UUID
    name: str
    role: str
    organisation: str | None = None


def care_team(
    tac: Tac,
    members: Sequence[TeamMember],
    *,
    lead_practitioner_id: uuid.UUID | None,
    version: int | None = None,
) -> dict[str, Any]:
    """TAC -> CareTeam: each practitioner with their role; the Lead Professional carries the coded LP role.

    `version` defaults to the TAC's; the FHIR surface passes TAC version + CAF version, so that a
    Lead Professional hand-over (which moves the CAF on) also moves the CareTeam's version.
    """
    participants = []
    for m in members:
        roles: list[dict[str, Any]] = [{"text": m.role}]
        if m.practitioner_id == lead_practitioner_id:
            roles.insert(
                0,
                {
                    "coding": [
                        {
                            "system": S.CARE_TEAM_ROLE,
                            "code": LEAD_PROFESSIONAL,
                            "display": "Lead Professional",
                        }
                    ]
                },
            )
        participants.append({"role": roles, "member": _ref("Practitioner", m.practitioner_id, m.name)})
    extensions = [_ext(S.EXT_FAMILY_PARTICIPATING, valueBoolean=tac.family_participating)]
    if tac.next_review_date:
        extensions.append(_ext(S.EXT_NEXT_REVIEW, valueDate=tac.next_review_date.isoformat()))
    res: dict[str, Any] = {
        "resourceType": "CareTeam",
        "id": _rid(tac.id),
        "meta": _meta(tac.version if version is None else version),
        "extension": extensions,
        "status": _TAC_STATUS[tac.status],
        "category": [
            {
                "coding": [
                    {
                        "system": "http://loinc.org",
                        "code": "LA28865-6",
                        "display": "Longitudinal care-coordination focused care team",
                    }
                ]
            }
        ],
        "name": "Team Around the Child",
        "subject": _ref("Patient", tac.child_id),
        "participant": participants,
    }
    if tac.convened_at:
        res["period"] = {"start": tac.convened_at.isoformat()}
    return validated(res)


@dataclass(frozen=True)
class CareTeamIn:
    """A CareTeam read back: status, members and who is Lead Professional."""

    child_id: uuid.UUID
    status: str
    members: list[tuple[uuid.UUID, str]]
    lead_practitioner_id: uuid.UUID | None
    family_participating: bool | None  # None when the resource does not say
    next_review_date: date | None
    reason: str | None = None  # why the Lead Professional changes, when it does


def care_team_in(resource: dict[str, Any]) -> CareTeamIn:
    """CareTeam -> TAC fields."""
    validated(resource)
    status = _TAC_STATUS_BACK.get(resource.get("status", ""))
    if status is None:
        raise MappingError(
            "A TAC is proposed, active or inactive.", where="CareTeam.status", code="code-invalid"
        )
    members: list[tuple[uuid.UUID, str]] = []
    lead = None
    for i, p in enumerate(resource.get("participant") or []):
        pid = ref_id(p.get("member"), "Practitioner", where=f"CareTeam.participant[{i}].member")
        text = None
        for r in p.get("role") or []:
            if any(
                c.get("system") == S.CARE_TEAM_ROLE and c.get("code") == LEAD_PROFESSIONAL
                for c in r.get("coding") or []
            ):
                lead = pid
            elif r.get("text"):
                text = r["text"]
        members.append((pid, text or "member"))
    return CareTeamIn(
        child_id=ref_id(resource.get("subject"), "Patient", where="CareTeam.subject"),
        status=status,
        members=members,
        lead_practitioner_id=lead,
        family_participating=_ext_value(resource, S.EXT_FAMILY_PARTICIPATING, "valueBoolean"),
        next_review_date=_parse_date(
            _ext_value(resource, S.EXT_NEXT_REVIEW, "valueDate"), "CareTeam.extension"
        ),
        reason=_ext_value(resource, S.EXT_CHANGE_REASON, "valueString"),
    )


# --------------------------------------------------------------------------- Flag (CAF status, LP in place)

_CAF_OPEN = {"signalled", "in_progress", "completed"}
CAF_OUTCOMES = tuple(o.value for o in CafOutcome)
_CAF_DISPLAY = {
    "signalled": "A practitioner has signalled that they are starting a CAF",
    "in_progress": "CAF (early help assessment) in progress",
    "completed": "CAF completed; plan / TAC running",
    "closed": "CAF closed",
    "expired": "Signal of intent to start a CAF lapsed",
    "withdrawn": "Signal of intent to start a CAF withdrawn",
}


def caf_flag(
    child_id: uuid.UUID, caf: CafRead, *, holder_id: uuid.UUID | None, version: int | None = None
) -> dict[str, Any]:
    """CAF status -> Flag 'caf-<status>': active while the CAF is open, naming the holder to contact."""
    text = _CAF_DISPLAY[caf.status]
    if caf.holder is not None:
        text += f": contact {caf.holder.name}" + (
            f" ({caf.holder.organisation})" if caf.holder.organisation else ""
        )
    elif caf.advice:
        text += f". {caf.advice}"
    period: dict[str, Any] = {"start": caf.signalled_at.isoformat()}
    if caf.closed_at:
        period["end"] = caf.closed_at.isoformat()
    res: dict[str, Any] = {
        "resourceType": "Flag",
        "id": f"caf-{caf.id.hex}",
        "meta": _meta(version),
        "status": "active" if caf.status in _CAF_OPEN else "inactive",
        "category": [{"coding": [{"system": S.FLAG_CATEGORY, "code": "admin", "display": "Administrative"}]}],
        "code": {
            "coding": [
                {
                    "system": S.FLAG_CODE,
                    "code": f"caf-{caf.status.replace('_', '-')}",
                    "display": _CAF_DISPLAY[caf.status],
                }
            ],
            "text": text,
        },
        "subject": _ref("Patient", child_id),
        "period": period,
    }
    if holder_id is not None and caf.holder is not None:
        res["author"] = _ref("Practitioner", holder_id, caf.holder.name)
    if caf.outcome:
        res["extension"] = [_ext(S.EXT_CAF_OUTCOME, valueCode=caf.outcome)]
    if not res["meta"]:
        del res["meta"]
    return validated(res)


def lead_flag(
    child_id: uuid.UUID, lead: LeadProfessionalRead, *, version: int | None = None
) -> dict[str, Any]:
    """A current Lead Professional -> Flag 'lead-professional-in-place' naming them and how to reach them.

    Its version is the CAF's: a hand-over moves the CAF on a version.
    """
    how = " or ".join(x for x in (lead.contact.phone, lead.contact.email) if x)
    text = f"Lead Professional in place: {lead.contact.name}"
    if lead.contact.organisation:
        text += f", {lead.contact.organisation}"
    if how:
        text += f" ({how})"
    res = {
        "resourceType": "Flag",
        "id": f"lp-{child_id.hex}",
        **({"meta": _meta(version)} if version is not None else {}),
        "status": "active",
        "category": [{"coding": [{"system": S.FLAG_CATEGORY, "code": "admin", "display": "Administrative"}]}],
        "code": {
            "coding": [
                {
                    "system": S.FLAG_CODE,
                    "code": "lead-professional-in-place",
                    "display": "Lead Professional in place",
                }
            ],
            "text": text,
        },
        "subject": _ref("Patient", child_id),
        "period": {"start": lead.since.isoformat()},
        "author": _ref("Practitioner", lead.practitioner_id, lead.contact.name),
    }
    return validated(res)


def flags(
    card: ChildCard, *, caf_holder_id: uuid.UUID | None, caf_version: int | None = None
) -> list[dict[str, Any]]:
    """The at-a-glance Flags of a card: CAF status, and Lead Professional in place."""
    out = []
    if card.caf is not None:
        out.append(caf_flag(card.id, card.caf, holder_id=caf_holder_id, version=caf_version))
    if card.lead_professional is not None:
        out.append(lead_flag(card.id, card.lead_professional, version=caf_version))
    return out


@dataclass(frozen=True)
class FlagIn:
    """What a Flag says, read back."""

    kind: str  # caf | lead-professional
    child_id: uuid.UUID
    caf_status: str | None
    active: bool
    practitioner_id: uuid.UUID | None
    consent_id: uuid.UUID | None = None  # the consent a CAF is started with
    outcome: str | None = None  # the outcome a CAF is completed with
    reason: str | None = None  # why it is closed or handed over
    no_significant_harm: bool | None = None  # a signal's confirmation that the child is not at risk


def flag_in(resource: dict[str, Any]) -> FlagIn:
    """Flag -> what it says about the CAF or the Lead Professional."""
    validated(resource)
    code = ((resource.get("code") or {}).get("coding") or [{}])[0]
    if code.get("system") != S.FLAG_CODE:
        raise MappingError("Not a flag of this directory.", where="Flag.code", code="code-invalid")
    value = code.get("code", "")
    author = resource.get("author")
    pid = ref_id(author, "Practitioner", where="Flag.author") if author else None
    child_id = ref_id(resource.get("subject"), "Patient", where="Flag.subject")
    reason = _ext_value(resource, S.EXT_CHANGE_REASON, "valueString")
    active = resource.get("status") == "active"
    if value == "lead-professional-in-place":
        return FlagIn("lead-professional", child_id, None, active, pid, reason=reason)
    if value.startswith("caf-"):
        status = value.removeprefix("caf-").replace("-", "_")
        if status not in _CAF_DISPLAY:
            raise MappingError(f"Unknown CAF status '{status}'.", where="Flag.code", code="code-invalid")
        consent_ref = _ext_value(resource, S.EXT_CAF_CONSENT, "valueReference")
        outcome = _ext_value(resource, S.EXT_CAF_OUTCOME, "valueCode")
        if outcome is not None and outcome not in CAF_OUTCOMES:
            raise MappingError(
                f"'{outcome}' is not a CAF outcome ({', '.join(CAF_OUTCOMES)}).",
                where="Flag.extension",
                code="code-invalid",
            )
        return FlagIn(
            "caf",
            child_id,
            status,
            active,
            pid,
            consent_id=ref_id(consent_ref, "Consent", where="Flag.extension") if consent_ref else None,
            outcome=outcome,
            reason=reason,
            no_significant_harm=_ext_value(resource, S.EXT_NO_SIGNIFICANT_HARM, "valueBoolean"),
        )
    raise MappingError(f"Unknown flag '{value}'.", where="Flag.code", code="code-invalid")


# --------------------------------------------------------------------------- Consent

_LOINC_PRIVACY = {"system": S.CONSENT_CATEGORY_LOINC, "code": "59284-0", "display": "Patient Consent"}


def consent(c: ConsentRead, child_id: uuid.UUID) -> dict[str, Any]:
    """Consent -> Consent: who gave it (parent/carer or competent young person), scope, given, withdrawn."""
    provision: dict[str, Any] = {"type": "permit", "period": {"start": c.given_at.isoformat()}}
    if c.withdrawn_at:
        provision["period"]["end"] = c.withdrawn_at.isoformat()
    res = {
        "resourceType": "Consent",
        "id": _rid(c.id),
        "status": "active" if c.current else "inactive",
        "scope": {
            "coding": [
                {"system": S.CONSENT_SCOPE_HL7, "code": "patient-privacy", "display": "Privacy Consent"}
            ]
        },
        "category": [
            {"coding": [_LOINC_PRIVACY]},
            {"coding": [{"system": S.CONSENT_SCOPE, "code": c.scope}]},
        ],
        "patient": _ref("Patient", child_id),
        "dateTime": c.given_at.isoformat(),
        "performer": [
            {
                "display": c.given_by_name,
                "extension": [_ext(S.EXT_CONSENT_GIVER, valueCode=c.given_by_kind)],
            }
        ],
        "policy": [{"uri": S.CONSENT_POLICY}],
        "provision": provision,
    }
    return validated(res)


@dataclass(frozen=True)
class ConsentIn:
    """A Consent read back: what the domain's ConsentCreate takes, and whether it is withdrawn."""

    child_id: uuid.UUID
    scope: str
    given_by_kind: str | None
    given_by_name: str | None
    related_person_id: uuid.UUID | None
    given_at: datetime | None
    young_person_competent: bool | None
    active: bool
    withdrawn_reason: str | None

    def create_fields(self) -> dict[str, Any]:
        """The fields of the domain's ConsentCreate."""
        return {
            "scope": self.scope,
            "given_by_kind": self.given_by_kind,
            "given_by_name": self.given_by_name,
            "related_person_id": self.related_person_id,
            "given_at": self.given_at,
            "young_person_competent": self.young_person_competent,
        }


CONSENT_STATUSES = ("draft", "proposed", "active", "rejected", "inactive", "entered-in-error")


def consent_in(resource: dict[str, Any]) -> ConsentIn:
    """Consent -> the domain's consent fields; status active (given) or inactive (withdrawn)."""
    validated(resource)
    status = resource.get("status")
    if status not in ("active", "inactive"):
        raise MappingError(
            "The directory records consents that are active (given) or inactive (withdrawn), "
            f"not '{status}'.",
            where="Consent.status",
            code="not-supported" if status in CONSENT_STATUSES else "code-invalid",
        )
    scope = None
    for cat in resource.get("category") or []:
        for coding in cat.get("coding") or []:
            if coding.get("system") == S.CONSENT_SCOPE:
                scope = coding.get("code")
    if scope is None:
        raise MappingError(
            "Say what the consent covers (category from the consent-scope system).",
            where="Consent.category",
            code="required",
        )
    performer = (resource.get("performer") or [{}])[0]
    kind = _ext_value(performer, S.EXT_CONSENT_GIVER, "valueCode")
    related = performer.get("reference")
    related_id = (
        ref_id(performer, "RelatedPerson", where="Consent.performer")
        if isinstance(related, str) and "RelatedPerson/" in related
        else None
    )
    given_at = None
    if resource.get("dateTime"):
        try:
            given_at = datetime.fromisoformat(str(resource["dateTime"]))
        except ValueError:
            raise MappingError("Consent.dateTime is not a date-time.", where="Consent.dateTime") from None
        if not date_in_bounds(given_at):
            raise MappingError(f"Consent.dateTime must fall {DATE_RANGE}.", where="Consent.dateTime")
    return ConsentIn(
        child_id=ref_id(resource.get("patient"), "Patient", where="Consent.patient"),
        scope=scope,
        given_by_kind=kind,
        given_by_name=performer.get("display"),
        related_person_id=related_id,
        given_at=given_at,
        young_person_competent=_ext_value(resource, S.EXT_YOUNG_PERSON_COMPETENT, "valueBoolean"),
        active=status == "active",
        withdrawn_reason=_ext_value(resource, S.EXT_CHANGE_REASON, "valueString"),
    )


# --------------------------------------------------------------------------- AuditEvent

_PURPOSE = {
    "considering-caf": ("TREAT", "treatment"),
    "direct-care": ("TREAT", "treatment"),
    "caf-coordination": ("CAREMGT", "care management"),
    "safeguarding-concern": ("PUBHLTH", "public health"),
    "administration": ("HOPERAT", "healthcare operations"),
    "audit": ("HSYSADMIN", "health system administration"),
}
_OUTCOME = {"success": "0", "too-many": "4", "refused": "4", "denied": "8", "alert": "0"}


def audit_event(e: AuditEvent) -> dict[str, Any]:
    """An audit log entry -> AuditEvent (read-only, for auditors); carries the chain hash."""
    action = "R" if (".read" in e.action or e.action.startswith("search")) else "E"
    if e.action.endswith((".create", ".record", ".register", ".signal")):
        action = "C"
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {"system": S.PARTICIPATION_TYPE, "code": "IRCP" if e.actor_role == "system" else "AUT"}
            ]
        },
        "who": {
            "identifier": {"system": f"{S.BASE}/Id/subject", "value": e.actor_subject},
            "display": e.actor_subject,
        },
        "name": e.actor_organisation,
        "requestor": True,
        "role": [{"text": e.actor_role}],
    }
    if e.client_id:
        agent["altId"] = e.client_id
    if e.purpose:
        code, display = _PURPOSE.get(e.purpose, ("TREAT", "treatment"))
        agent["purposeOfUse"] = [
            {"coding": [{"system": S.V3_ACT_REASON, "code": code, "display": display}], "text": e.purpose}
        ]
    res: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(e.seq),
        "type": {"system": AUDIT_TYPE_SYSTEM, "code": "rest", "display": "Restful Operation"},
        "subtype": [{"system": S.AUDIT_ACTION, "code": e.action}],
        "action": action,
        "recorded": e.at.isoformat(),
        "outcome": _OUTCOME.get(e.outcome, "4"),
        "outcomeDesc": e.outcome,
        "agent": [agent],
        "source": {
            "observer": {"display": "childindex"},
            "type": [{"system": S.AUDIT_SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "entity": [
            {
                "type": {"system": S.AUDIT_ENTITY_TYPE, "code": "4", "display": "Other"},
                "name": "hash-chain",
                "detail": [
                    {"type": "prev_hash", "valueString": e.prev_hash},
                    {"type": "hash", "valueString": e.hash},
                ],
            }
        ],
    }
    if e.request_id:
        res["entity"][0]["detail"].append({"type": "request_id", "valueString": e.request_id})
    if e.target_type == "child" and e.target_id:
        res["entity"].insert(
            0,
            {
                "what": _ref("Patient", e.target_id),
                "type": {"system": S.AUDIT_ENTITY_TYPE, "code": "1", "display": "Person"},
            },
        )
    return validated(res)


AUDIT_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-event-type"


def audit_event_in(resource: dict[str, Any]) -> dict[str, Any]:
    """AuditEvent -> its audit fields (for round-trip checks; the log is never written from FHIR)."""
    validated(resource)
    agent = resource["agent"][0]
    purpose = ((agent.get("purposeOfUse") or [{}])[0]).get("text")
    target = None
    details: dict[str, str] = {}
    for entity in resource.get("entity") or []:
        if entity.get("what"):
            target = str(ref_id(entity["what"], "Patient", where="AuditEvent.entity.what"))
        for d in entity.get("detail") or []:
            details[d["type"]] = d.get("valueString")
    return {
        "seq": int(resource["id"]),
        "action": resource["subtype"][0]["code"],
        "actor_subject": agent["who"]["identifier"]["value"],
        "actor_role": agent["role"][0]["text"],
        "actor_organisation": agent.get("name"),
        "client_id": agent.get("altId"),
        "purpose": purpose,
        "outcome": resource.get("outcomeDesc"),
        "target_id": target,
        "prev_hash": details.get("prev_hash"),
        "hash": details.get("hash"),
        "request_id": details.get("request_id"),
    }


# --------------------------------------------------------------------------- Subscription (notifications)

# What a rest-hook Subscription may ask for: exactly the events interop/notify.py delivers.
SUBSCRIPTION_CRITERIA: dict[tuple[str, str], str] = {
    ("Flag", "caf-signalled"): "caf-signalled",
    ("Flag", "caf-in-progress"): "caf-started",
    ("Flag", "caf-closed"): "caf-closed",  # also a signal withdrawn
    ("Flag", "lead-professional-in-place"): "lead-professional-changed",
    ("AuditEvent", "shielded-record-viewed"): "shielded-record-viewed",
}
_CRITERIA_PARAM = {"Flag": "code", "AuditEvent": "subtype"}
SIGNATURE_HEADER_NAME = "X-Childindex-Signature"  # as interop/notify.py signs
_CRITERIA_SYSTEM = {"Flag": S.FLAG_CODE, "AuditEvent": S.SUBSCRIPTION_EVENT}
CRITERIA_HELP = (
    "Supported criteria: Flag?code= one or more (comma-separated) of caf-signalled, caf-in-progress, "
    "caf-closed, lead-professional-in-place; or AuditEvent?subtype=shielded-record-viewed."
)


@dataclass(frozen=True)
class SubscriptionIn:
    """A rest-hook Subscription read back: the events it asks for and where to post them."""

    events: list[str]
    criteria: str
    endpoint: str
    reason: str
    secret: str | None


def subscription_events(criteria: str) -> list[str]:
    """The notify.py event codes a criteria string asks for; MappingError when it asks for more."""
    kind, _, query = criteria.strip().partition("?")
    name, eq, values = query.partition("=")
    if kind not in _CRITERIA_PARAM or not eq or name != _CRITERIA_PARAM[kind] or "&" in values or not values:
        raise MappingError(
            f"This server cannot notify on '{criteria}'. {CRITERIA_HELP}",
            where="Subscription.criteria",
            code="not-supported",
        )
    events = []
    for token in values.split(","):
        system, bar, code = token.partition("|")
        if not bar:
            system, code = "", token
        event = SUBSCRIPTION_CRITERIA.get((kind, code))
        if event is None or (system and system != _CRITERIA_SYSTEM[kind]):
            raise MappingError(
                f"This server cannot notify on '{token}'. {CRITERIA_HELP}",
                where="Subscription.criteria",
                code="not-supported",
            )
        events.append(event)
    return sorted(set(events))


def subscription_in(resource: dict[str, Any]) -> SubscriptionIn:
    """Subscription -> what notify.subscribe takes (rest-hook only; the notification is id-only)."""
    validated(resource)
    channel = resource.get("channel") or {}
    if channel.get("type") != "rest-hook":
        raise MappingError(
            "Only rest-hook channels are supported.", where="Subscription.channel.type", code="not-supported"
        )
    if channel.get("payload") not in (None, S.FHIR_JSON, "application/json"):
        raise MappingError(
            f"Notifications are sent as {S.FHIR_JSON} (an id-only history Bundle).",
            where="Subscription.channel.payload",
            code="not-supported",
        )
    if channel.get("header"):
        raise MappingError(
            "Custom headers are not sent: give a signing secret in the extension "
            f"{S.EXT_SIGNING_SECRET} and check the {SIGNATURE_HEADER_NAME} header instead.",
            where="Subscription.channel.header",
            code="not-supported",
        )
    if resource.get("status") not in ("requested", "active"):
        raise MappingError(
            "Create a Subscription with status requested (or active).", where="Subscription.status"
        )
    if resource.get("end"):
        raise MappingError(
            "Subscriptions here do not end by date: delete it instead.",
            where="Subscription.end",
            code="not-supported",
        )
    endpoint = channel.get("endpoint")
    if not endpoint:
        raise MappingError(
            "Give the endpoint to post to.", where="Subscription.channel.endpoint", code="required"
        )
    criteria = str(resource.get("criteria", ""))
    secret = _ext_value(resource, S.EXT_SIGNING_SECRET, "valueString")
    return SubscriptionIn(
        events=subscription_events(criteria),
        criteria=criteria,
        endpoint=str(endpoint),
        reason=str(resource.get("reason", "")),
        secret=secret,
    )


def subscription(sub: Any) -> dict[str, Any]:
    """A notify subscription -> Subscription (the signing secret is never shown)."""
    res = {
        "resourceType": "Subscription",
        "id": _rid(sub.id),
        "status": "active" if sub.status == "active" else "off",
        "reason": sub.reason or "childindex notifications",
        "criteria": sub.criteria or "",
        "channel": {"type": "rest-hook", "endpoint": sub.endpoint, "payload": S.FHIR_JSON},
    }
    return validated(res)
