"""What a reader hands the writer, and the checks every reader applies.

A reader turns one file into `ChildRow`s (checked and normalised), `PersonRow`s (a parent or
carer given apart from the child, as FHIR RelatedPerson lines are) and `Rejection`s (where,
which field, why: never the row's contents). `checked_child` applies the domain's own rules:
the ChildCreate shape, identifier and postcode checks, the 0-19 age range.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from directory.errors import DomainError
from directory.identifiers import (
    NHS_NUMBER_SYSTEM,
    UPN_SYSTEM,
    is_foreign_system,
    normalise_identifier,
    normalise_postcode,
)
from directory.models import ChildCreate
from directory.service import validate_birth


@dataclass(frozen=True)
class Rejection:
    """A row that was not imported: where it is, which field, and why (never its contents)."""

    source: str
    line: int
    field: str
    reason: str


@dataclass(frozen=True)
class PatientRejection(Rejection):
    """A rejected row that others refer to by `key` (a FHIR Patient): they are rejected with it."""

    key: str = ""


class RowError(Exception):
    """What is wrong with a row: the field a person fixes, and why (never the value)."""

    def __init__(self, field_: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field_
        self.reason = reason


@dataclass
class AddressRow:
    """A checked address: current (until None) or previous."""

    line1: str
    line2: str | None
    town: str | None
    postcode: str
    since: date | None
    until: date | None


@dataclass
class ChildRow:
    """One child, checked and normalised, ready to be written."""

    source: str
    line: int
    key: str | None  # what PersonRows refer to it by (a FHIR Patient id)
    data: ChildCreate
    identifiers: list[tuple[str, str]]
    addresses: list[AddressRow]  # current (until None) and previous
    shielded: bool = False  # the sending system marks the child shielded (a FHIR Patient's label)


@dataclass
class PersonRow:
    """A parent or carer given apart from the child (a FHIR RelatedPerson), waiting for them."""

    source: str
    line: int
    patient_key: str
    row: dict[str, Any]  # RelatedPersonIn fields


Item = ChildRow | PersonRow | Rejection


class Reader(Protocol):
    """Reads one file into checked rows and rejections, in the file's order."""

    def __call__(self, path: Path, *, today: date) -> Iterator[Item]: ...


SEX = {
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
"""What a file may say for sex -> the domain's value (FHIR readers refuse the one-letter forms)."""

_UK_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


def parse_date(value: str, field_: str) -> date | None:
    """A date from YYYY-MM-DD or DD/MM/YYYY; None when blank."""
    value = value.strip()
    if not value:
        return None
    m = _UK_DATE.match(value)
    try:
        if m:
            return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        return date.fromisoformat(value)
    except ValueError:
        raise RowError(field_, "not a date: use YYYY-MM-DD (or DD/MM/YYYY in CSV)") from None


def checked_identifier(system: str, value: str, field_: str) -> tuple[str, str]:
    """(system, normalised value), or a RowError that does not quote the value."""
    try:
        return system, normalise_identifier(system, value)
    except ValueError:
        # The domain's message quotes the value; a report must not, so say it our way.
        if system == NHS_NUMBER_SYSTEM:
            reason = "not a valid NHS number: 10 digits passing the modulus-11 check"
        elif system == UPN_SYSTEM:
            reason = "not a valid Unique Pupil Number: 13 characters with a correct check letter"
        elif (system.startswith("local:") and len(system) > 6) or is_foreign_system(system):
            reason = "a local or foreign identifier must have between 1 and 64 characters"
        else:
            reason = "unknown identifier system: use nhs, upn or local:<name>"
        raise RowError(field_, reason) from None


def checked_child(
    *,
    source: str,
    line: int,
    key: str | None,
    payload: dict[str, Any],
    identifiers: list[tuple[str, str]],
    previous: list[AddressRow],
    today: date,
    fields: Callable[[tuple[Any, ...]], str],
) -> ChildRow:
    """Validate with the domain's ChildCreate, postcode and age-range rules.

    `fields` names, for a pydantic location in ChildCreate, the field of the file to fix."""
    if not identifiers:
        raise RowError(
            "identifier",
            "no identifier: give an NHS number, UPN or local id so that a re-import finds the same child",
        )
    seen: set[tuple[str, str]] = set()
    for ident in identifiers:
        if ident in seen:
            raise RowError("identifier", f"the {ident[0]} identifier is given twice")
        seen.add(ident)
    try:
        data = ChildCreate.model_validate(payload)
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        raise RowError(fields(tuple(err["loc"])), err["msg"]) from None
    try:
        validate_birth(
            date_of_birth=data.date_of_birth,
            expected_delivery_date=data.expected_delivery_date,
            today=today,
        )
    except DomainError as exc:
        raise RowError(fields(("date_of_birth",)), exc.message) from None
    addresses = list(previous)
    if data.address is not None:
        postcode = normalise_postcode(data.address.postcode)
        if postcode is None:
            raise RowError(fields(("address", "postcode")), "not a UK postcode (for example OX4 1AB)")
        addresses.append(
            AddressRow(
                data.address.line1,
                data.address.line2,
                data.address.town,
                postcode,
                data.address.since,
                None,
            )
        )
    return ChildRow(
        source=source, line=line, key=key, data=data, identifiers=identifiers, addresses=addresses
    )
