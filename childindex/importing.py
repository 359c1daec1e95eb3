"""`childindex import`'s formats: each pairs a reader with the domain's one import writer.

The CSV reader is the domain's (directory/importer/csv_reader.py); the FHIR NDJSON reader
is interop's (interop/ndjson.py), which knows FHIR's identifier systems and extensions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

from sqlalchemy.engine import Engine

from directory.importer import ImportResult, Reader, read_csv, run_import
from directory.models import Actor
from interop.ndjson import read_ndjson

READERS: dict[str, Reader] = {"csv": read_csv, "fhir": read_ndjson}
"""Format name (`childindex import --format`) -> the reader of its files."""


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
    read = READERS.get(fmt)
    if read is None:
        raise ValueError("the format is csv or fhir")
    return run_import(
        engine,
        paths,
        read=read,
        fmt=fmt,
        actor=actor,
        all_or_nothing=all_or_nothing,
        batch=batch,
        today=today,
        progress=progress,
    )
