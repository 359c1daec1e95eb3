"""The CSV reader: children from a CSV file in the layout below, one child a row.

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
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from directory.identifiers import NHS_NUMBER_SYSTEM, UPN_SYSTEM
from directory.importer.rows import (
    SEX,
    ChildRow,
    Rejection,
    RowError,
    checked_child,
    checked_identifier,
    parse_date,
)

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


def read_csv(path: Path, *, today: date) -> Iterator[ChildRow | Rejection]:
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
                "unknown column(s); the layout is documented in directory/importer/csv_reader.py",
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
            except RowError as bad:
                yield Rejection(source, line, bad.field, bad.reason)


def _csv_field(loc: tuple[Any, ...]) -> str:
    if loc in _CSV_FIELDS:
        return _CSV_FIELDS[loc]
    if loc[:1] == ("names",):
        return "known_as" if loc[-1] == "given" else "previous_family"
    if loc[:1] == ("related_people",):
        return "parent_" + str(loc[-1])
    return str(loc[0]) if loc else "row"


def _csv_child(v: dict[str, str], source: str, line: int, today: date) -> ChildRow:
    get = v.get
    sex = SEX.get(get("sex", "").lower())
    identifiers = _csv_identifiers(v)
    names = _csv_names(v)
    if sex is None:
        raise RowError("sex", "use female, male, other or unknown (or F, M, U)")
    payload: dict[str, Any] = {
        "names": names,
        "sex": sex,
        "date_of_birth": parse_date(get("date_of_birth", ""), "date_of_birth"),
        "expected_delivery_date": parse_date(get("expected_delivery_date", ""), "expected_delivery_date"),
    }
    if get("postcode") or get("address_line1"):
        payload["address"] = {
            "line1": get("address_line1", ""),
            "line2": get("address_line2") or None,
            "town": get("town") or None,
            "postcode": get("postcode", ""),
        }
    parent = _csv_parent(v)
    if parent is not None:
        payload["related_people"] = [parent]
    return checked_child(
        source=source,
        line=line,
        key=None,
        payload=payload,
        identifiers=identifiers,
        previous=[],
        today=today,
        fields=_csv_field,
    )


def _csv_identifiers(v: dict[str, str]) -> list[tuple[str, str]]:
    identifiers: list[tuple[str, str]] = []
    if v.get("nhs_number"):
        identifiers.append(checked_identifier(NHS_NUMBER_SYSTEM, v["nhs_number"], "nhs_number"))
    if v.get("upn"):
        identifiers.append(checked_identifier(UPN_SYSTEM, v["upn"], "upn"))
    if v.get("local_id"):
        system, sep, value = v["local_id"].removeprefix("local:").partition(":")
        if not sep or not system.strip():
            raise RowError("local_id", "write it as <system>:<value>, e.g. mosaic:MOS0001234")
        identifiers.append(checked_identifier(f"local:{system.strip().lower()}", value, "local_id"))
    return identifiers


def _csv_names(v: dict[str, str]) -> list[dict[str, Any]]:
    get = v.get
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
    return names


def _csv_parent(v: dict[str, str]) -> dict[str, Any] | None:
    get = v.get
    if get("parent_name"):
        pr = _YES.get(get("parental_responsibility", "").lower())
        if pr is None:
            raise RowError("parental_responsibility", "use yes or no")
        return {
            "name": v["parent_name"],
            "relationship": get("parent_relationship") or "parent",
            "parental_responsibility": pr,
            "phone": get("parent_phone") or None,
            "email": get("parent_email") or None,
        }
    if any(get(c) for c in ("parent_relationship", "parent_phone", "parent_email")):
        raise RowError("parent_name", "parent details without a parent_name")
    return None
