"""Child <-> Patient: identifiers, names (incl. old ones), address unless shielded, the ask-contact."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from directory.models import ChildCard, NameUse
from interop import systems as S
from interop.mapping.common import (
    MappingError,
    extension,
    extension_value,
    fhir_id,
    is_restricted,
    meta_of,
    parse_date,
    ref_id,
    ref_to,
    telecom_of,
    validated,
)

_NAME_USE = {
    NameUse.OFFICIAL.value: "official",
    NameUse.USUAL.value: "usual",
    NameUse.PREVIOUS.value: "old",
    NameUse.ALIAS.value: "nickname",
}
NAME_USES_IN = {v: k for k, v in _NAME_USE.items()} | {"maiden": NameUse.PREVIOUS.value}
"""A FHIR name use -> the directory's, for every reader of a Patient (/fhir writes, the NDJSON import)."""
GENDERS = ("male", "female", "other", "unknown")


def shielded_in(resource: dict[str, Any]) -> bool:
    """Whether a Patient comes shielded, for every reader of one: the shield extension /fhir writes, or
    a restricted (or very restricted) confidentiality label from the sending system."""
    return extension_value(resource, S.EXT_SHIELDED, "valueBoolean") is True or is_restricted(resource)


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
        "id": fhir_id(card.id),
        "meta": meta_of(extras.version, restricted=card.shielded, updated=extras.updated_at),
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
        extensions.append(
            extension(S.EXT_EXPECTED_DELIVERY, valueDate=card.expected_delivery_date.isoformat())
        )
    if card.shielded:
        extensions.append(extension(S.EXT_SHIELDED, valueBoolean=True))
    if card.shield_notice is not None:
        ask = card.shield_notice.ask
        extensions.append(
            extension(
                S.EXT_ASK, valueContactDetail={"name": ask.name, "telecom": telecom_of(ask.phone, ask.email)}
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
        res["generalPractitioner"] = [ref_to("Organization", extras.gp_practice_id, card.gp_practice.name)]
    if extras.merged_into_id is not None:
        res["link"] = [{"other": ref_to("Patient", extras.merged_into_id), "type": "replaced-by"}]
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


def _names_in(resource: dict[str, Any]) -> list[dict[str, Any]]:
    names = []
    for i, n in enumerate(resource.get("name") or []):
        given = n.get("given") or []
        if not given or not n.get("family"):
            raise MappingError("Each name needs a family and a given name.", where=f"Patient.name[{i}]")
        use = NAME_USES_IN.get(n.get("use", "official"))
        if use is None:
            raise MappingError(f"Name use '{n.get('use')}' is not supported.", where=f"Patient.name[{i}].use")
        names.append(
            {
                "given": given[0],
                "middle": " ".join(given[1:]) or None,
                "family": n["family"],
                "use": use,
                "until": parse_date((n.get("period") or {}).get("end"), f"Patient.name[{i}].period.end"),
            }
        )
    return names


def _identifiers_in(resource: dict[str, Any]) -> list[dict[str, str]]:
    identifiers = []
    for i, ident in enumerate(resource.get("identifier") or []):
        system = S.received_identifier_system(ident.get("system", ""))
        if system is None:
            raise MappingError(
                f"Identifier system '{ident.get('system')}' is not an absolute URI.",
                where=f"Patient.identifier[{i}].system",
                code="code-invalid",
            )
        identifiers.append({"system": system, "value": ident.get("value", "")})
    return identifiers


def _address_in(resource: dict[str, Any]) -> dict[str, Any] | None:
    for a in resource.get("address") or []:
        lines = a.get("line") or []
        return {
            "line1": lines[0] if lines else "",
            "line2": lines[1] if len(lines) > 1 else None,
            "town": a.get("city"),
            "postcode": a.get("postalCode", ""),
            "since": parse_date((a.get("period") or {}).get("start"), "Patient.address.period.start"),
        }
    return None


def patient_in(resource: dict[str, Any]) -> PatientIn:
    """Patient -> the domain's child fields (for ChildCreate, and for round-trip checks)."""
    validated(resource)
    if resource.get("resourceType") != "Patient":
        raise MappingError("Expected a Patient.", where="resourceType")
    gender = resource.get("gender", "unknown")
    if gender not in GENDERS:
        raise MappingError(f"'{gender}' is not an administrative gender.", where="Patient.gender")
    names = _names_in(resource)
    identifiers = _identifiers_in(resource)
    address = _address_in(resource)
    gp = None
    for i, g in enumerate(resource.get("generalPractitioner") or []):
        gp = ref_id(g, "Organization", where=f"Patient.generalPractitioner[{i}]")
    rid = resource.get("id")
    return PatientIn(
        id=uuid.UUID(rid) if rid else None,
        names=names,
        identifiers=identifiers,
        date_of_birth=parse_date(resource.get("birthDate"), "Patient.birthDate"),
        expected_delivery_date=parse_date(
            extension_value(resource, S.EXT_EXPECTED_DELIVERY, "valueDate"), "Patient.extension"
        ),
        sex=gender,
        address=address,
        gp_practice_id=gp,
        shielded=shielded_in(resource),
    )


def patient_change(resource: dict[str, Any], *, unborn: bool) -> dict[str, Any]:
    """A Patient (read by `patient_in`) as a change to a child's details: the fields of the domain's
    ChildChange that the Patient gives. What it leaves out stays as it is (a PUT cannot remove a
    name, an address or an identifier); old names are the record's own history and are not taken;
    a birthDate on an unborn child's record is the birth."""
    p = patient_in(resource)
    change: dict[str, Any] = {}
    official = [n for n in p.names if n["use"] == NameUse.OFFICIAL.value and n["until"] is None]
    if len(official) > 1:
        raise MappingError("A Patient has one current official name.", where="Patient.name")
    if official:
        change["official_name"] = {k: official[0][k] for k in ("given", "middle", "family")}
    others = [
        {k: n[k] for k in ("given", "middle", "family", "use")}
        for n in p.names
        if n["use"] in (NameUse.USUAL.value, NameUse.ALIAS.value) and n["until"] is None
    ]
    if others:
        change["add_names"] = others
    if p.date_of_birth is not None:
        change["born_on" if unborn else "date_of_birth"] = p.date_of_birth
    if "gender" in resource:
        change["sex"] = p.sex
    if p.address is not None:
        change["address"] = p.address
    if p.gp_practice_id is not None:
        change["gp_practice_id"] = p.gp_practice_id
    if p.identifiers:
        change["identifiers"] = p.identifiers
    return change
