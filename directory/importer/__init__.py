"""Bulk import of children: readers turn files into checked rows, one writer puts them in.

Every row is checked with the domain's own rules (rows.py: the ChildCreate shape,
identifier and postcode checks, the 0-19 age range); a bad row is reported with its line
number, the field and the reason - never its contents. The writer (writer.py) applies good
rows in large batches, idempotently on identifiers, with one audit event for the run.

Readers: CSV here (csv_reader.py, which documents the layout); FHIR R4 NDJSON in
interop/ndjson.py, which knows FHIR's identifier systems and extensions. The composition
root pairs a format with its reader (childindex/importing.py, `childindex import`).

Import rule: the domain core's (standard library, pydantic, SQLModel/SQLAlchemy and the
rest of directory/); no FHIR, HTTP or search here.
"""

from directory.importer.csv_reader import CSV_COLUMNS, read_csv
from directory.importer.rows import (
    SEX,
    AddressRow,
    ChildRow,
    Item,
    PatientRejection,
    PersonRow,
    Reader,
    Rejection,
    RowError,
    checked_child,
    checked_identifier,
    parse_date,
)
from directory.importer.writer import ImportResult, run_import

__all__ = [
    "CSV_COLUMNS",
    "SEX",
    "AddressRow",
    "ChildRow",
    "ImportResult",
    "Item",
    "PatientRejection",
    "PersonRow",
    "Reader",
    "Rejection",
    "RowError",
    "checked_child",
    "checked_identifier",
    "parse_date",
    "read_csv",
    "run_import",
]
