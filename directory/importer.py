"""Bulk import of children from FHIR R4 NDJSON (a Bulk Data export) or from a CSV file.

Every row is checked with the domain's own rules (the ChildCreate shape, identifier and
postcode checks, the 0-19 age range); a bad row is reported with its line number, the
field and the reason - never its contents. Good rows are applied in large batches
(one identifier lookup and one bulk insert per batch), or, with ``all_or_nothing``, in
one transaction that is rolled back when any row was rejected.

Re-importing is idempotent on identifiers: a row with an identifier the directory
already holds changes nothing and is counted as ``unchanged`` (changes to existing
records go through the API, where each one is audited). A row whose identifiers belong
to two different existing records is rejected, as is a row repeating an identifier of
an earlier row of the same import. A row must carry at least one identifier, so that a
re-import can recognise it.

CSV layout (UTF-8, a header row, columns in any order, unknown columns refused; only
``given``, ``family``, a date and one identifier are required; yes/no values accept
yes/no, y/n, true/false, 1/0):

====================== =================================================================
column                 meaning
====================== =================================================================
nhs_number             10 digits passing the modulus-11 check (spaces allowed)
upn                    Unique Pupil Number, 13 characters with its check letter
local_id               ``<system>:<value>``, e.g. ``mosaic:MOS0001234`` (stored with
                       system ``local:mosaic``; a leading ``local:`` is accepted)
given, middle, family  the official name
known_as               a usual (known-as) given name
previous_family        a previous surname (stored as a previous name)
date_of_birth          YYYY-MM-DD or DD/MM/YYYY
expected_delivery_date for an unborn child instead of date_of_birth, same formats
sex                    female, male, other, unknown (or F, M, U)
address_line1          the current address: first line, second line, town, postcode
address_line2
town
postcode               a UK postcode; it sets the child's locality
parent_name            one parent or carer: name, relationship (mother, father, carer…),
parent_relationship    phone, e-mail and whether they have parental responsibility
parent_phone
parent_email
parental_responsibility
====================== =================================================================

FHIR NDJSON: one resource per line, ``Patient`` and ``RelatedPerson`` (as in the files
of a Bulk Data export; give several files to one import). Identifier systems: NHS number
``https://fhir.nhs.uk/Id/nhs-number`` -> ``nhs``; ``UPN_SYSTEM_URI`` -> ``upn``;
``LOCAL_SYSTEM_PREFIX<name>`` -> ``local:<name>``; any other system URI -> ``local:`` and
the URI's last path segment. Name uses official, usual, old/maiden (previous, with
period.end) and nickname (alias). An unborn child is a Patient without birthDate and with
the ``EDD_EXTENSION`` extension (valueDate). A RelatedPerson links to its Patient by
``patient.reference`` ``Patient/<id>``; parental responsibility comes from the
``PR_EXTENSION`` extension (valueBoolean) and otherwise is assumed for a birth mother
(who always has it in English law) only.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from directory import audit
from directory.bulk import BulkWriter, loading
from directory.db import unit_of_work
from directory.errors import DomainError
from directory.identifiers import (
    NHS_NUMBER_SYSTEM,
    UPN_SYSTEM,
    normalise_identifier,
    normalise_postcode,
    postcode_district,
    postcode_sector,
)
from directory.models import (
    Actor,
    Child,
    ChildAddress,
    ChildCreate,
    ChildIdentifier,
    ChildName,
    LocalityArea,
    NameUse,
    Outbox,
    RelatedPerson,
    RelatedPersonIn,
    utcnow,
)
from directory.service import validate_birth

NHS_SYSTEM_URI = "https://fhir.nhs.uk/Id/nhs-number"
UPN_SYSTEM_URI = "https://childindex.example/Id/upn"
LOCAL_SYSTEM_PREFIX = "https://childindex.example/Id/local/"
EDD_EXTENSION = "https://childindex.example/fhir/StructureDefinition/expected-delivery-date"
PR_EXTENSION = "https://childindex.example/fhir/StructureDefinition/parental-responsibility"

CSV_COLUMNS = (
    "nhs_number",
    "upn",
    "local_id",
    "given",
    "middle",
    "family",
    "known_as",
    "previous_family",
    "date_of_birth",
    "expected_delivery_date",
    "sex",
    "address_line1",
    "address_line2",
    "town",
    "postcode",
    "parent_name",
    "parent_relationship",
    "parent_phone",
    "parent_email",
    "parental_responsibility",
)
IMPORTED_BY = "import"

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
_SEX = {
    "f": "female",
    "female": "female",
    "m": "male",
    "male": "male",
    "o": "other",
    "other": "other",
    "u": "unknown",
    "unknown": "unknown",
    "": "unknown",
}
_YES = {
    "y": True,
    "yes": True,
    "true": True,
    "1": True,
    "n": False,
    "no": False,
    "false": False,
    "0": False,
    "": False,
}
_UK_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_NAME_USES = {
    "official": NameUse.OFFICIAL,
    "usual": NameUse.USUAL,
    "old": NameUse.PREVIOUS,
    "maiden": NameUse.PREVIOUS,
    "nickname": NameUse.ALIAS,
}
# Pydantic locations -> the CSV column a person fixes.
_CSV_FIELDS = {
    ("names", 0, "given"): "given",
    ("names", 0, "family"): "family",
    ("names", 0, "middle"): "middle",
    ("address", "line1"): "address_line1",
    ("address", "line2"): "address_line2",
    ("address", "town"): "town",
    ("address", "postcode"): "postcode",
    ("related_people", 0, "name"): "parent_name",
    ("related_people", 0, "relationship"): "parent_relationship",
    ("related_people", 0, "phone"): "parent_phone",
    ("related_people", 0, "email"): "parent_email",
    ("sex",): "sex",
}


@dataclass(frozen=True)
class Rejection:
    """A row that was not imported: where it is, which field, and why (never its contents)."""

    source: str
    line: int
    field: str
    reason: str


@dataclass(frozen=True)
class _PatientRejection(Rejection):
    """A rejected Patient line: its RelatedPerson lines are rejected with it."""

    key: str = ""


@dataclass
class ImportResult:
    """What an import run did."""

    read: int = 0
    created: int = 0
    unchanged: int = 0
    related_people: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    applied: bool = True


class _Bad(Exception):
    def __init__(self, field_: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field_
        self.reason = reason


@dataclass
class _Address:
    line1: str
    line2: str | None
    town: str | None
    postcode: str
    since: date | None
    until: date | None


@dataclass
class _Child:
    """One child, checked and normalised, ready to be written."""

    source: str
    line: int
    key: str | None  # the FHIR Patient id, to link RelatedPerson lines
    data: ChildCreate
    identifiers: list[tuple[str, str]]
    addresses: list[_Address]  # current (until None) and previous


@dataclass
class _Person:
    """A FHIR RelatedPerson line, waiting for its Patient."""

    source: str
    line: int
    patient_key: str
    row: dict[str, Any]


# --------------------------------------------------------------------------- reading


def _parse_date(value: str, field_: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    m = _UK_DATE.match(value)
    try:
        if m:
            return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        return date.fromisoformat(value)
    except ValueError:
        raise _Bad(field_, "not a date: use YYYY-MM-DD (or DD/MM/YYYY in CSV)") from None


def _identifier(system: str, value: str, field_: str) -> tuple[str, str]:
    try:
        return system, normalise_identifier(system, value)
    except ValueError:
        # The domain's message quotes the value; a report must not, so say it our way.
        if system == NHS_NUMBER_SYSTEM:
            reason = "not a valid NHS number: 10 digits passing the modulus-11 check"
        elif system == UPN_SYSTEM:
            reason = "not a valid Unique Pupil Number: 13 characters with a correct check letter"
        elif system.startswith("local:") and len(system) > 6:
            reason = "a local identifier must have between 1 and 64 characters"
        else:
            reason = "unknown identifier system: use nhs, upn or local:<name>"
        raise _Bad(field_, reason) from None


def _checked(
    *,
    source: str,
    line: int,
    key: str | None,
    payload: dict[str, Any],
    identifiers: list[tuple[str, str]],
    previous: list[_Address],
    today: date,
    fields: Callable[[tuple[Any, ...]], str],
) -> _Child:
    """Validate with the domain's ChildCreate, postcode and age-range rules."""
    if not identifiers:
        raise _Bad(
            "identifier",
            "no identifier: give an NHS number, UPN or local id so that a re-import finds the same child",
        )
    seen: set[tuple[str, str]] = set()
    for ident in identifiers:
        if ident in seen:
            raise _Bad("identifier", f"the {ident[0]} identifier is given twice")
        seen.add(ident)
    try:
        data = ChildCreate.model_validate(payload)
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        raise _Bad(fields(tuple(err["loc"])), err["msg"]) from None
    try:
        validate_birth(
            date_of_birth=data.date_of_birth,
            expected_delivery_date=data.expected_delivery_date,
            today=today,
        )
    except DomainError as exc:
        raise _Bad(fields(("date_of_birth",)), exc.message) from None
    addresses = list(previous)
    if data.address is not None:
        postcode = normalise_postcode(data.address.postcode)
        if postcode is None:
            raise _Bad(fields(("address", "postcode")), "not a UK postcode (for example OX4 1AB)")
        addresses.append(
            _Address(
                data.address.line1,
                data.address.line2,
                data.address.town,
                postcode,
                data.address.since,
                None,
            )
        )
    return _Child(source=source, line=line, key=key, data=data, identifiers=identifiers, addresses=addresses)


def _csv_field(loc: tuple[Any, ...]) -> str:
    if loc in _CSV_FIELDS:
        return _CSV_FIELDS[loc]
    if loc[:1] == ("names",):
        return "known_as" if loc[-1] == "given" else "previous_family"
    if loc[:1] == ("related_people",):
        return "parent_" + str(loc[-1])
    return str(loc[0]) if loc else "row"


def read_csv(path: Path, *, today: date) -> Iterator[_Child | Rejection]:
    """Checked children and rejections from a CSV file in the documented layout."""
    source = path.name
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [h.strip().lower() for h in next(reader, [])]
        unknown = [h for h in header if h not in CSV_COLUMNS]
        if unknown or not header:
            yield Rejection(
                source,
                1,
                ", ".join(unknown) or "header",
                "unknown column(s); the layout is documented in directory/importer.py",
            )
            return
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                yield Rejection(source, line, "row", f"{len(row)} values for {len(header)} columns")
                continue
            values = dict(zip(header, (c.strip() for c in row), strict=True))
            try:
                yield _csv_child(values, source, line, today)
            except _Bad as bad:
                yield Rejection(source, line, bad.field, bad.reason)


def _csv_child(v: dict[str, str], source: str, line: int, today: date) -> _Child:
    get = v.get
    identifiers: list[tuple[str, str]] = []
    if get("nhs_number"):
        identifiers.append(_identifier(NHS_NUMBER_SYSTEM, v["nhs_number"], "nhs_number"))
    if get("upn"):
        identifiers.append(_identifier(UPN_SYSTEM, v["upn"], "upn"))
    if get("local_id"):
        system, sep, value = v["local_id"].removeprefix("local:").partition(":")
        if not sep or not system.strip():
            raise _Bad("local_id", "write it as <system>:<value>, e.g. mosaic:MOS0001234")
        identifiers.append(_identifier(f"local:{system.strip().lower()}", value, "local_id"))
    names: list[dict[str, Any]] = [
        {"given": get("given", ""), "middle": get("middle") or None, "family": get("family", "")}
    ]
    if get("known_as"):
        names.append({"given": v["known_as"], "family": get("family", ""), "use": "usual"})
    if get("previous_family"):
        names.append(
            {
                "given": get("given", ""),
                "middle": get("middle") or None,
                "family": v["previous_family"],
                "use": "previous",
            }
        )
    sex = _SEX.get(get("sex", "").lower())
    if sex is None:
        raise _Bad("sex", "use female, male, other or unknown (or F, M, U)")
    payload: dict[str, Any] = {
        "names": names,
        "sex": sex,
        "date_of_birth": _parse_date(get("date_of_birth", ""), "date_of_birth"),
        "expected_delivery_date": _parse_date(get("expected_delivery_date", ""), "expected_delivery_date"),
    }
    if get("postcode") or get("address_line1"):
        payload["address"] = {
            "line1": get("address_line1", ""),
            "line2": get("address_line2") or None,
            "town": get("town") or None,
            "postcode": get("postcode", ""),
        }
    if get("parent_name"):
        pr = _YES.get(get("parental_responsibility", "").lower())
        if pr is None:
            raise _Bad("parental_responsibility", "use yes or no")
        payload["related_people"] = [
            {
                "name": v["parent_name"],
                "relationship": get("parent_relationship") or "parent",
                "parental_responsibility": pr,
                "phone": get("parent_phone") or None,
                "email": get("parent_email") or None,
            }
        ]
    elif any(get(c) for c in ("parent_relationship", "parent_phone", "parent_email")):
        raise _Bad("parent_name", "parent details without a parent_name")
    return _checked(
        source=source,
        line=line,
        key=None,
        payload=payload,
        identifiers=identifiers,
        previous=[],
        today=today,
        fields=_csv_field,
    )


def _fhir_system(system: str) -> str:
    if system == NHS_SYSTEM_URI:
        return NHS_NUMBER_SYSTEM
    if system == UPN_SYSTEM_URI:
        return UPN_SYSTEM
    name = (
        system.removeprefix(LOCAL_SYSTEM_PREFIX)
        if system.startswith(LOCAL_SYSTEM_PREFIX)
        else system.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    )
    name = re.sub(r"[^a-z0-9_.-]", "-", name.lower()).strip("-")[:58]
    if not name:
        raise _Bad("identifier.system", "an identifier system must be a URI naming its system")
    return f"local:{name}"


def _fhir_field(loc: tuple[Any, ...]) -> str:
    head = {
        "names": "name",
        "date_of_birth": "birthDate",
        "sex": "gender",
        "address": "address",
        "identifiers": "identifier",
        "expected_delivery_date": "extension(expected-delivery-date)",
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
        raise _Bad(field_, "period dates must be text")
    return _parse_date(value[:10], field_)


def _fhir_patient(res: dict[str, Any], source: str, line: int, today: date) -> _Child:
    key = res.get("id")
    if not isinstance(key, str) or not key:
        raise _Bad("id", "a Patient needs an id for RelatedPerson lines to refer to")
    identifiers: list[tuple[str, str]] = []
    for i, ident in enumerate(res.get("identifier") or []):
        system, value = ident.get("system"), ident.get("value")
        if not isinstance(system, str) or not isinstance(value, str):
            raise _Bad(f"identifier[{i}]", "an identifier needs a system and a value")
        identifiers.append(_identifier(_fhir_system(system), value, f"identifier[{i}]"))
    names: list[dict[str, Any]] = []
    for i, name in enumerate(res.get("name") or []):
        use = _NAME_USES.get(name.get("use") or "official")
        if use is None:
            continue  # anonymous / temp names are not the child's names
        given = name.get("given") or []
        if not isinstance(given, list) or not given:
            raise _Bad(f"name[{i}].given", "a name needs a given name")
        names.append(
            {
                "given": given[0],
                "middle": " ".join(given[1:]) or None,
                "family": name.get("family") or "",
                "use": use.value,
                "until": _period(name, "end", f"name[{i}].period.end") if use == NameUse.PREVIOUS else None,
            }
        )
    names.sort(key=lambda n: n["use"] != "official")  # the official name first
    if not names or names[0]["use"] != "official":
        if names and names[0]["use"] == "usual":
            names[0]["use"] = "official"
        else:
            raise _Bad("name", "no official (or usual) name")
    edd = None
    for ext in res.get("extension") or []:
        if ext.get("url") == EDD_EXTENSION:
            edd = _parse_date(str(ext.get("valueDate", "")), "extension(expected-delivery-date)")
    birth = res.get("birthDate") or ""
    if birth and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", birth):
        raise _Bad("birthDate", "a full date (YYYY-MM-DD) is needed, not a year or month")
    sex = _SEX.get(str(res.get("gender") or ""))
    if sex is None or len(str(res.get("gender") or "")) == 1:
        raise _Bad("gender", "use male, female, other or unknown")
    current: dict[str, Any] | None = None
    previous: list[_Address] = []
    for i, addr in enumerate(res.get("address") or []):
        lines = addr.get("line") or []
        postcode = normalise_postcode(str(addr.get("postalCode") or ""))
        if postcode is None:
            raise _Bad(f"address[{i}].postalCode", "not a UK postcode (for example OX4 1AB)")
        since = _period(addr, "start", f"address[{i}].period.start")
        until = _period(addr, "end", f"address[{i}].period.end")
        line1 = str(lines[0]) if lines else ""
        line2 = " ".join(str(x) for x in lines[1:]) or None
        if not line1:
            raise _Bad(f"address[{i}].line", "an address needs its first line")
        if until is None and addr.get("use") != "old":
            if current is not None:
                raise _Bad(
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
                _Address(line1[:200], line2, addr.get("city"), postcode, since, until or since or today)
            )
    payload: dict[str, Any] = {
        "names": names,
        "sex": sex,
        "date_of_birth": birth or None,
        "expected_delivery_date": edd,
    }
    if current is not None:
        payload["address"] = current
    return _checked(
        source=source,
        line=line,
        key=key,
        payload=payload,
        identifiers=identifiers,
        previous=previous,
        today=today,
        fields=_fhir_field,
    )


def _fhir_related(res: dict[str, Any], source: str, line: int) -> _Person:
    ref = (res.get("patient") or {}).get("reference") or ""
    if not isinstance(ref, str) or not ref.startswith("Patient/"):
        raise _Bad("patient.reference", "must be Patient/<id> of a Patient in this import")
    names = res.get("name") or [{}]
    first = names[0]
    name = first.get("text") or " ".join([*(first.get("given") or []), first.get("family") or ""])
    relationship, code = "", ""
    for concept in res.get("relationship") or []:
        for coding in concept.get("coding") or []:
            code = coding.get("code") or code
            relationship = relationship or _ROLE_CODES.get(code, "") or (coding.get("display") or "")
        relationship = relationship or concept.get("text") or ""
    pr = code in ("MTH", "NMTH")  # a birth mother always has parental responsibility
    for ext in res.get("extension") or []:
        if ext.get("url") == PR_EXTENSION:
            pr = ext.get("valueBoolean") is True
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
        raise _Bad(where, err["msg"]) from None
    return _Person(
        source=source, line=line, patient_key=ref.removeprefix("Patient/"), row=person.model_dump()
    )


def read_ndjson(path: Path, *, today: date) -> Iterator[_Child | _Person | Rejection]:
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
                    yield _fhir_patient(res, source, line, today)
                elif kind == "RelatedPerson":
                    yield _fhir_related(res, source, line)
                else:
                    yield Rejection(
                        source,
                        line,
                        "resourceType",
                        "only Patient and RelatedPerson resources are imported",
                    )
            except _Bad as bad:
                yield _rejection(res, source, line, bad.field, bad.reason)
            except (AttributeError, TypeError):
                yield _rejection(res, source, line, "resource", "not a valid FHIR R4 resource shape")


def _rejection(res: dict[str, Any], source: str, line: int, field_: str, reason: str) -> Rejection:
    if res.get("resourceType") == "Patient" and isinstance(res.get("id"), str):
        return _PatientRejection(source, line, field_, reason, key=res["id"])
    return Rejection(source, line, field_, reason)


# --------------------------------------------------------------------------- writing


class _Uuids:
    """Random (version 4) uuids, drawing the operating system's randomness in blocks."""

    def __init__(self) -> None:
        self._block = b""
        self._at = 0

    def __call__(self) -> uuid.UUID:
        if self._at >= len(self._block):
            self._block, self._at = os.urandom(16 * 4096), 0
        raw = self._block[self._at : self._at + 16]
        self._at += 16
        return uuid.UUID(bytes=raw, version=4)


class _Writer:
    """Looks up existing identifiers a batch at a time and bulk-inserts new children."""

    def __init__(self, conn: Connection, result: ImportResult, *, now: datetime) -> None:
        self.conn = conn
        self.bulk = BulkWriter(conn)
        self.result = result
        self.now = now
        self.uuid = _Uuids()
        self.seen: dict[tuple[str, str], tuple[str, int]] = {}  # identifier -> where first seen
        self.patients: dict[str, uuid.UUID | Rejection | None] = {}  # None: already present
        area = LocalityArea.__table__  # type: ignore[attr-defined]
        self.areas = {a: loc for a, loc in conn.execute(sa.select(area.c.area, area.c.locality_id))}

    def _locality(self, postcode: str) -> uuid.UUID | None:
        return self.areas.get(postcode_sector(postcode)) or self.areas.get(postcode_district(postcode))

    def _existing(self, idents: Iterable[tuple[str, str]]) -> dict[tuple[str, str], uuid.UUID]:
        table = ChildIdentifier.__table__  # type: ignore[attr-defined]
        by_system: dict[str, list[str]] = {}
        for system, value in idents:
            by_system.setdefault(system, []).append(value)
        found: dict[tuple[str, str], uuid.UUID] = {}
        for system, values in by_system.items():
            for i in range(0, len(values), 5000):
                stmt = sa.select(table.c.value, table.c.child_id).where(
                    table.c.system == system, table.c.value.in_(values[i : i + 5000])
                )
                for value, child_id in self.conn.execute(stmt):
                    found[(system, value)] = child_id
        return found

    def write(self, children: Sequence[_Child]) -> None:
        """Write one batch of checked children; reject duplicates, skip those already present."""
        fresh: list[_Child] = []
        for child in children:
            repeat = next((self.seen[i] for i in child.identifiers if i in self.seen), None)
            if repeat is not None:
                self._reject(
                    child,
                    "identifier",
                    f"the same identifier is on line {repeat[1]} of {repeat[0]}",
                )
                continue
            for ident in child.identifiers:
                self.seen[ident] = (child.source, child.line)
            fresh.append(child)
        existing = self._existing(i for c in fresh for i in c.identifiers)
        rows: dict[str, list[dict[str, Any]]] = {
            t: []
            for t in (
                "child",
                "child_name",
                "child_identifier",
                "child_address",
                "related_person",
                "outbox",
            )
        }
        for child in fresh:
            owners = {existing[i] for i in child.identifiers if i in existing}
            if len(owners) > 1:
                self._reject(
                    child,
                    "identifier",
                    "its identifiers belong to two different records already in the directory",
                )
                continue
            if owners:
                self.result.unchanged += 1
                if child.key is not None:
                    self.patients[child.key] = None
                continue
            self._rows(child, rows)
        self._insert(rows)

    def _reject(self, child: _Child, field_: str, reason: str) -> None:
        rejection = Rejection(child.source, child.line, field_, reason)
        self.result.rejected.append(rejection)
        if child.key is not None:
            self.patients[child.key] = rejection

    def _rows(self, child: _Child, rows: dict[str, list[dict[str, Any]]]) -> None:
        data = child.data
        cid = self.uuid()
        current = next((a for a in child.addresses if a.until is None), None)
        rows["child"].append(
            {
                "id": cid,
                "status": "active",
                "merged_into_id": None,
                "date_of_birth": data.date_of_birth,
                "expected_delivery_date": data.expected_delivery_date,
                "sex": data.sex.value,
                "mother_id": None,
                "locality_id": self._locality(current.postcode) if current else None,
                "school_id": None,
                "gp_practice_id": None,
                "shielded": False,
                "shielded_reason": None,
                "shielded_by": None,
                "shielded_at": None,
                "archived_reason": None,
                "created_at": self.now,
                "updated_at": self.now,
                "version": 1,
            }
        )
        for name in data.names:
            rows["child_name"].append(
                {
                    "id": self.uuid(),
                    "child_id": cid,
                    "use": name.use.value,
                    "given": name.given,
                    "middle": name.middle,
                    "family": name.family,
                    "until": name.until,
                }
            )
        for system, value in child.identifiers:
            rows["child_identifier"].append(
                {"id": self.uuid(), "child_id": cid, "system": system, "value": value}
            )
        for a in child.addresses:
            rows["child_address"].append(
                {
                    "id": self.uuid(),
                    "child_id": cid,
                    "line1": a.line1,
                    "line2": a.line2,
                    "town": a.town,
                    "postcode": a.postcode,
                    "since": a.since,
                    "until": a.until,
                }
            )
        for person in data.related_people:
            rows["related_person"].append(self._person_row(cid, person.model_dump()))
        rows["outbox"].append(
            {"topic": "child", "entity_id": cid.hex, "created_at": self.now, "processed_at": None}
        )
        self.result.created += 1
        if child.key is not None:
            self.patients[child.key] = cid

    def _person_row(self, child_id: uuid.UUID, person: dict[str, Any]) -> dict[str, Any]:
        self.result.related_people += 1
        return {
            "id": self.uuid(),
            "child_id": child_id,
            "name": person["name"],
            "relationship": person["relationship"],
            "parental_responsibility": person["parental_responsibility"],
            "phone": person["phone"],
            "email": person["email"],
            "address": person["address"],
        }

    def _insert(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        for model in (Child, ChildName, ChildIdentifier, ChildAddress, RelatedPerson, Outbox):
            table = SQLModel.metadata.tables[str(model.__tablename__)]
            self.bulk.insert(table, rows[table.name])

    def link_people(self, people: Sequence[_Person]) -> None:
        """Attach RelatedPerson lines to the Patients they refer to."""
        rows: dict[str, list[dict[str, Any]]] = {"related_person": []}
        for person in people:
            target = self.patients.get(person.patient_key, "missing")
            if target == "missing":
                self.result.rejected.append(
                    Rejection(
                        person.source,
                        person.line,
                        "patient.reference",
                        "refers to a Patient that is not in this import",
                    )
                )
            elif isinstance(target, Rejection):
                self.result.rejected.append(
                    Rejection(
                        person.source,
                        person.line,
                        "patient.reference",
                        f"its Patient (line {target.line} of {target.source}) was rejected",
                    )
                )
            elif target is None:
                continue  # the child was already in the directory: nothing changes
            else:
                assert isinstance(target, uuid.UUID)
                rows["related_person"].append(self._person_row(target, person.row))
        for i in range(0, len(rows["related_person"]), 20_000):
            self.bulk.insert(
                RelatedPerson.__table__,  # type: ignore[attr-defined]
                rows["related_person"][i : i + 20_000],
            )


def import_files(
    engine: Engine,
    paths: Sequence[Path],
    *,
    fmt: str,
    actor: Actor,
    all_or_nothing: bool = False,
    batch: int = 20_000,
    today: date | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import children from CSV or FHIR NDJSON files; one audit event for the run."""
    if fmt not in ("csv", "fhir"):
        raise ValueError("the format is csv or fhir")
    today = today or date.today()
    now = utcnow().astimezone(UTC).replace(tzinfo=None)
    result = ImportResult()
    people: list[_Person] = []
    with loading(engine) as conn:
        tx = conn.begin()
        try:
            writer = _Writer(conn, result, now=now)
            pending: list[_Child] = []
            for path in paths:
                items: Iterator[Any] = (
                    read_csv(path, today=today) if fmt == "csv" else read_ndjson(path, today=today)
                )
                for item in items:
                    result.read += 1
                    if isinstance(item, Rejection):
                        result.rejected.append(item)
                        if isinstance(item, _PatientRejection):
                            writer.patients[item.key] = item
                    elif isinstance(item, _Person):
                        people.append(item)
                    else:
                        pending.append(item)
                    if len(pending) >= batch:
                        writer.write(pending)
                        pending = []
                        if not all_or_nothing:  # commit as we go: a crash keeps what is done
                            tx.commit()
                            tx = conn.begin()
                    if progress is not None and result.read % 1000 == 0:
                        progress(1000)
            writer.write(pending)
            writer.link_people(people)
            if progress is not None:
                progress(result.read % 1000)
            if all_or_nothing and result.rejected:
                tx.rollback()
                result.applied = False
            else:
                tx.commit()
        except BaseException:
            if tx.is_active:
                tx.rollback()
            raise
    result.rejected.sort(key=lambda r: (r.source, r.line))
    names_hash = hashlib.sha256("\n".join(sorted(p.name for p in paths)).encode()).hexdigest()
    with unit_of_work(engine) as session:
        audit.append(
            session,
            actor=actor,
            action="import",
            outcome="success"
            if result.applied and not result.rejected
            else ("partial" if result.applied else "refused"),
            detail={
                "format": fmt,
                "files_sha256": names_hash,
                "read": result.read,
                "created": result.created if result.applied else 0,
                "unchanged": result.unchanged,
                "rejected": len(result.rejected),
                "all_or_nothing": all_or_nothing,
                "applied": result.applied,
            },
        )
    if not result.applied:
        result.created = 0
        result.related_people = 0
    return result
