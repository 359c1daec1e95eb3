"""The FHIR R4 NDJSON reader of the bulk import: Patient and RelatedPerson lines into the rows
the domain's import writer takes (directory/importer/).

One resource per line (as in the files of a Bulk Data export; give several files to one
import). Identifier systems and extensions are interop's own (interop/systems.py), so a
Patient read back from /fhir imports as it was written: ``NHS_NUMBER`` -> ``nhs``, ``UPN``
-> ``upn``, ``LOCAL_PREFIX<name>`` -> ``local:<name>``; any other absolute system URI is kept
exactly as sent (``systems.received_identifier_system``, the rule /fhir writes apply too), so it
reads back from /fhir unchanged. A Patient's shield (the ``EXT_SHIELDED`` extension /fhir writes,
or a restricted ``meta.security`` label) is kept. Name uses official, usual, old/maiden (previous, with
period.end) and nickname (alias). An unborn child is a Patient without birthDate and with
the ``EXT_EXPECTED_DELIVERY`` extension (valueDate). A RelatedPerson links to its Patient by
``patient.reference`` ``Patient/<id>``; parental responsibility comes from the
``EXT_PARENTAL_RESPONSIBILITY`` extension (valueBoolean) and otherwise is assumed for a
birth mother (who always has it in English law) only.

One declaration, used by both readers of a Patient (this one and mapping.patient_in, the reader of
/fhir writes): the identifier systems and extensions (interop/systems.py), the rule for a system
it does not know (``received_identifier_system``), the name uses (``NAME_USES_IN``) and when a
Patient comes shielded (``shielded_in``: the extension, or a restricted confidentiality label).
What differs is the envelope, not the rules: an export from another system carries previous
addresses (ended, or use 'old'), its own resource ids for RelatedPerson references, names of
uses the directory does not keep (anonymous, temp: skipped), and its report never quotes a
value, where /fhir validates each resource with R4B and answers one write with an
OperationOutcome.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from directory.identifiers import normalise_postcode
from directory.importer import (
    SEX,
    AddressRow,
    ChildRow,
    PatientRejection,
    PersonRow,
    Rejection,
    RowError,
    checked_child,
    checked_identifier,
    parse_date,
)
from directory.models import NameUse, RelatedPersonIn
from interop import systems as S
from interop.mapping.patient import NAME_USES_IN, shielded_in

# FHIR v3 RoleCode relationship codes -> the relationship words the directory stores.
_ROLE_CODES = {
    "MTH": "mother",
    "FTH": "father",
    "PRN": "parent",
    "NMTH": "mother",
    "NFTH": "father",
    "STPMTH": "stepmother",
    "STPFTH": "stepfather",
    "GRMTH": "grandmother",
    "GRFTH": "grandfather",
    "GRPRN": "grandparent",
    "AUNT": "aunt",
    "UNCLE": "uncle",
    "SIB": "sibling",
    "GUARD": "guardian",
    "FAMMEMB": "family member",
    "ADOPTMTH": "mother",
    "ADOPTFTH": "father",
    "FMRSPS": "former spouse",
}
_EDD_FIELD = "extension(expected-delivery-date)"


def read_ndjson(path: Path, *, today: date) -> Iterator[ChildRow | PersonRow | Rejection]:
    """Checked Patients, RelatedPersons and rejections from a FHIR NDJSON file."""
    source = path.name
    with path.open(encoding="utf-8-sig") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                res = json.loads(text)
            except json.JSONDecodeError:
                yield Rejection(source, line, "line", "not a JSON object")
                continue
            if not isinstance(res, dict):
                yield Rejection(source, line, "line", "not a JSON object")
                continue
            kind = res.get("resourceType")
            try:
                if kind == "Patient":
                    yield _patient(res, source, line, today)
                elif kind == "RelatedPerson":
                    yield _related(res, source, line)
                else:
                    yield Rejection(
                        source,
                        line,
                        "resourceType",
                        "only Patient and RelatedPerson resources are imported",
                    )
            except RowError as bad:
                yield _rejection(res, source, line, bad.field, bad.reason)
            except (AttributeError, TypeError):
                yield _rejection(res, source, line, "resource", "not a valid FHIR R4 resource shape")


def _rejection(res: dict[str, Any], source: str, line: int, field_: str, reason: str) -> Rejection:
    if res.get("resourceType") == "Patient" and isinstance(res.get("id"), str):
        return PatientRejection(source, line, field_, reason, key=res["id"])
    return Rejection(source, line, field_, reason)


def _domain_system(uri: str) -> str:
    """The domain identifier system of a FHIR system URI: the FHIR surface's own rule
    (systems.received_identifier_system): ours as declared, any other URI exactly as sent."""
    system = S.received_identifier_system(uri)
    if system is None:
        raise RowError("identifier.system", "an identifier system must be an absolute URI (https:// or urn:)")
    return system


def _field(loc: tuple[Any, ...]) -> str:
    """The FHIR element to fix, for a pydantic location in ChildCreate."""
    head = {
        "names": "name",
        "date_of_birth": "birthDate",
        "sex": "gender",
        "address": "address",
        "identifiers": "identifier",
        "expected_delivery_date": _EDD_FIELD,
    }
    return (
        head.get(str(loc[0]), str(loc[0]))
        + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
        if loc
        else "resource"
    )


def _period(obj: dict[str, Any], part: str, field_: str) -> date | None:
    value = (obj.get("period") or {}).get(part)
    if not value:
        return None
    if not isinstance(value, str):
        raise RowError(field_, "period dates must be text")
    return parse_date(value[:10], field_)


def _patient(res: dict[str, Any], source: str, line: int, today: date) -> ChildRow:
    key = res.get("id")
    if not isinstance(key, str) or not key:
        raise RowError("id", "a Patient needs an id for RelatedPerson lines to refer to")
    identifiers = _identifiers(res)
    names = _names(res)
    edd = None
    for ext in res.get("extension") or []:
        if ext.get("url") == S.EXT_EXPECTED_DELIVERY:
            edd = parse_date(str(ext.get("valueDate", "")), _EDD_FIELD)
    birth = res.get("birthDate") or ""
    if birth and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", birth):
        raise RowError("birthDate", "a full date (YYYY-MM-DD) is needed, not a year or month")
    sex = SEX.get(str(res.get("gender") or ""))
    if sex is None or len(str(res.get("gender") or "")) == 1:
        raise RowError("gender", "use male, female, other or unknown")
    current, previous = _addresses(res, today)
    payload: dict[str, Any] = {
        "names": names,
        "sex": sex,
        "date_of_birth": birth or None,
        "expected_delivery_date": edd,
    }
    if current is not None:
        payload["address"] = current
    row = checked_child(
        source=source,
        line=line,
        key=key,
        payload=payload,
        identifiers=identifiers,
        previous=previous,
        today=today,
        fields=_field,
    )
    # A shield the sending system set (the extension /fhir writes, or a restricted label) is kept.
    row.shielded = shielded_in(res)
    return row


def _identifiers(res: dict[str, Any]) -> list[tuple[str, str]]:
    identifiers: list[tuple[str, str]] = []
    for i, ident in enumerate(res.get("identifier") or []):
        system, value = ident.get("system"), ident.get("value")
        if not isinstance(system, str) or not isinstance(value, str):
            raise RowError(f"identifier[{i}]", "an identifier needs a system and a value")
        identifiers.append(checked_identifier(_domain_system(system), value, f"identifier[{i}]"))
    return identifiers


def _names(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The child's names, the official one first (a usual one stands in when none is official)."""
    names: list[dict[str, Any]] = []
    for i, name in enumerate(res.get("name") or []):
        use = NAME_USES_IN.get(name.get("use") or "official")
        if use is None:
            continue  # anonymous / temp names are not the child's names
        given = name.get("given") or []
        if not isinstance(given, list) or not given:
            raise RowError(f"name[{i}].given", "a name needs a given name")
        names.append(
            {
                "given": given[0],
                "middle": " ".join(given[1:]) or None,
                "family": name.get("family") or "",
                "use": use,
                "until": _period(name, "end", f"name[{i}].period.end")
                if use == NameUse.PREVIOUS.value
                else None,
            }
        )
    names.sort(key=lambda n: n["use"] != "official")  # the official name first
    if not names or names[0]["use"] != "official":
        if names and names[0]["use"] == "usual":
            names[0]["use"] = "official"
        else:
            raise RowError("name", "no official (or usual) name")
    return names


def _addresses(res: dict[str, Any], today: date) -> tuple[dict[str, Any] | None, list[AddressRow]]:
    """The current address (ChildCreate fields) and the previous ones (ended, or use 'old')."""
    current: dict[str, Any] | None = None
    previous: list[AddressRow] = []
    for i, addr in enumerate(res.get("address") or []):
        lines = addr.get("line") or []
        postcode = normalise_postcode(str(addr.get("postalCode") or ""))
        if postcode is None:
            raise RowError(f"address[{i}].postalCode", "not a UK postcode (for example OX4 1AB)")
        since = _period(addr, "start", f"address[{i}].period.start")
        until = _period(addr, "end", f"address[{i}].period.end")
        line1 = str(lines[0]) if lines else ""
        line2 = " ".join(str(x) for x in lines[1:]) or None
        if not line1:
            raise RowError(f"address[{i}].line", "an address needs its first line")
        if until is None and addr.get("use") != "old":
            if current is not None:
                raise RowError(
                    f"address[{i}]",
                    "more than one current address: give the others a period.end or use 'old'",
                )
            current = {
                "line1": line1,
                "line2": line2,
                "town": addr.get("city"),
                "postcode": postcode,
                "since": since,
            }
        else:
            previous.append(
                AddressRow(line1[:200], line2, addr.get("city"), postcode, since, until or since or today)
            )
    return current, previous


def _related(res: dict[str, Any], source: str, line: int) -> PersonRow:
    ref = (res.get("patient") or {}).get("reference") or ""
    if not isinstance(ref, str) or not ref.startswith("Patient/"):
        raise RowError("patient.reference", "must be Patient/<id> of a Patient in this import")
    names = res.get("name") or [{}]
    first = names[0]
    name = first.get("text") or " ".join([*(first.get("given") or []), first.get("family") or ""])
    relationship, code = _relationship(res)
    pr = code in ("MTH", "NMTH")  # a birth mother always has parental responsibility
    for ext in res.get("extension") or []:
        if ext.get("url") == S.EXT_PARENTAL_RESPONSIBILITY:
            pr = ext.get("valueBoolean") is True
    phone, email, address = _contact(res)
    try:
        person = RelatedPersonIn.model_validate(
            {
                "name": name.strip(),
                "relationship": relationship.lower() or "related person",
                "parental_responsibility": pr,
                "phone": phone,
                "email": email,
                "address": address[:300] if address else None,
            }
        )
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        where = {
            "name": "name",
            "relationship": "relationship",
            "phone": "telecom",
            "email": "telecom",
            "address": "address",
        }.get(str(err["loc"][0]), "resource")
        raise RowError(where, err["msg"]) from None
    return PersonRow(
        source=source, line=line, patient_key=ref.removeprefix("Patient/"), row=person.model_dump()
    )


def _relationship(res: dict[str, Any]) -> tuple[str, str]:
    """(the relationship word, the last RoleCode given)."""
    relationship, code = "", ""
    for concept in res.get("relationship") or []:
        for coding in concept.get("coding") or []:
            code = coding.get("code") or code
            relationship = relationship or _ROLE_CODES.get(code, "") or (coding.get("display") or "")
        relationship = relationship or concept.get("text") or ""
    return relationship, code


def _contact(res: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """The first phone, the first e-mail and the first address (as one line of text)."""
    phone = email = None
    for telecom in res.get("telecom") or []:
        if telecom.get("system") == "phone" and phone is None:
            phone = telecom.get("value")
        elif telecom.get("system") == "email" and email is None:
            email = telecom.get("value")
    address = None
    for addr in res.get("address") or []:
        address = addr.get("text") or ", ".join(
            [*(addr.get("line") or []), addr.get("city") or "", addr.get("postalCode") or ""]
        ).strip(", ")
        break
    return phone, email, address
