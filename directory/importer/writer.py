"""The import writer: checked rows from any reader into the directory, one audit event a run.

Good rows are applied in large batches (one identifier lookup and one bulk insert per
batch), or, with ``all_or_nothing``, in one transaction that is rolled back when any row
was rejected.

Re-importing is idempotent on identifiers: a row with an identifier the directory
already holds changes nothing and is counted as ``unchanged`` (changes to existing
records go through the API, where each one is audited). A row whose identifiers belong
to two different existing records is rejected, as is a row repeating an identifier of
an earlier row of the same import. A row must carry at least one identifier, so that a
re-import can recognise it.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RootTransaction
from sqlmodel import SQLModel

from directory import audit
from directory.bulk import BulkWriter, loading
from directory.db import unit_of_work
from directory.identifiers import postcode_district, postcode_sector
from directory.importer.rows import ChildRow, PatientRejection, PersonRow, Reader, Rejection
from directory.models import (
    Actor,
    Child,
    ChildAddress,
    ChildIdentifier,
    ChildName,
    LocalityArea,
    Outbox,
    RelatedPerson,
    utcnow,
)

Rows = dict[str, list[dict[str, Any]]]


@dataclass
class ImportResult:
    """What an import run did."""

    read: int = 0
    created: int = 0
    unchanged: int = 0
    related_people: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    applied: bool = True


def _empty_rows() -> Rows:
    return {
        t: []
        for t in ("child", "child_name", "child_identifier", "child_address", "related_person", "outbox")
    }


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


class Writer:
    """Looks up existing identifiers a batch at a time and bulk-inserts new children."""

    def __init__(self, conn: Connection, tx: RootTransaction, result: ImportResult, *, now: datetime) -> None:
        self.conn = conn
        self.tx = tx  # the open transaction: `commit` ends it and begins the next
        self.bulk = BulkWriter(conn)
        self.result = result
        self.now = now
        self.uuid = _Uuids()
        self.seen: dict[tuple[str, str], tuple[str, int]] = {}  # identifier -> where first seen
        self.patients: dict[str, uuid.UUID | Rejection | None] = {}  # None: already present
        area = LocalityArea.__table__  # type: ignore[attr-defined]
        self.areas = {a: loc for a, loc in conn.execute(sa.select(area.c.area, area.c.locality_id))}

    def commit(self) -> None:
        """Commit what is written so far and carry on in a new transaction."""
        self.tx.commit()
        self.tx = self.conn.begin()

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

    def write(self, children: Sequence[ChildRow]) -> None:
        """Write one batch of checked children; reject duplicates, skip those already present."""
        fresh: list[ChildRow] = []
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
        rows = _empty_rows()
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

    def existing(self, idents: Iterable[tuple[str, str]]) -> dict[tuple[str, str], uuid.UUID]:
        """Which of these identifiers the directory holds, and the record holding each."""
        return self._existing(idents)

    def create(self, children: Sequence[ChildRow]) -> None:
        """Insert new records for these checked children (the caller decided they are new)."""
        rows = _empty_rows()
        for child in children:
            self._rows(child, rows)
        self._insert(rows)

    def reject(self, child: ChildRow, field_: str, reason: str) -> None:
        """Reject a row (and the RelatedPerson lines that refer to it)."""
        self._reject(child, field_, reason)

    def _reject(self, child: ChildRow, field_: str, reason: str) -> None:
        rejection = Rejection(child.source, child.line, field_, reason)
        self.result.rejected.append(rejection)
        if child.key is not None:
            self.patients[child.key] = rejection

    def _rows(self, child: ChildRow, rows: Rows) -> None:
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
                "shielded": child.shielded,
                "shielded_reason": "shielded by the sending system" if child.shielded else None,
                "shielded_by": f"import:{child.source}"[:200] if child.shielded else None,
                "shielded_at": self.now if child.shielded else None,
                "archived_reason": None,
                "created_at": self.now,
                "updated_at": self.now,
                "version": 1,
            }
        )
        self._child_parts(cid, child, rows)
        rows["outbox"].append(
            {"topic": "child", "entity_id": cid.hex, "created_at": self.now, "processed_at": None}
        )
        self.result.created += 1
        if child.key is not None:
            self.patients[child.key] = cid

    def _child_parts(self, cid: uuid.UUID, child: ChildRow, rows: Rows) -> None:
        """The child's names, identifiers, addresses and parents or carers."""
        for name in child.data.names:
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
        for person in child.data.related_people:
            rows["related_person"].append(self._person_row(cid, person.model_dump()))

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

    def _insert(self, rows: Rows) -> None:
        for model in (Child, ChildName, ChildIdentifier, ChildAddress, RelatedPerson, Outbox):
            table = SQLModel.metadata.tables[str(model.__tablename__)]
            self.bulk.insert(table, rows[table.name])

    def link_people(self, people: Sequence[PersonRow]) -> None:
        """Attach parents and carers given apart (RelatedPerson lines) to the children they name."""
        rows: list[dict[str, Any]] = []
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
                rows.append(self._person_row(target, person.row))
        for i in range(0, len(rows), 20_000):
            self.bulk.insert(RelatedPerson.__table__, rows[i : i + 20_000])  # type: ignore[attr-defined]


def run_import(
    engine: Engine,
    paths: Sequence[Path],
    *,
    read: Reader,
    fmt: str,
    actor: Actor,
    all_or_nothing: bool = False,
    batch: int = 20_000,
    today: date | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import the children `read` finds in the files; one audit event (naming `fmt`) for the run."""
    today = today or date.today()
    now = utcnow().astimezone(UTC).replace(tzinfo=None)
    result = ImportResult()
    with loading(engine) as conn:
        tx = conn.begin()
        writer: Writer | None = None
        try:
            writer = Writer(conn, tx, result, now=now)
            _write_all(writer, paths, read, today, all_or_nothing, batch, progress)
            tx = writer.tx
            if all_or_nothing and result.rejected:
                tx.rollback()
                result.applied = False
            else:
                tx.commit()
        except BaseException:
            tx = writer.tx if writer is not None else tx
            if tx.is_active:
                tx.rollback()
            raise
    result.rejected.sort(key=lambda r: (r.source, r.line))
    _audit(engine, result, paths, fmt=fmt, actor=actor, all_or_nothing=all_or_nothing)
    if not result.applied:
        result.created = 0
        result.related_people = 0
    return result


def _write_all(
    writer: Writer,
    paths: Sequence[Path],
    read: Reader,
    today: date,
    all_or_nothing: bool,
    batch: int,
    progress: Callable[[int], None] | None,
) -> None:
    """Read every file and write its rows a batch at a time."""
    result = writer.result
    people: list[PersonRow] = []
    pending: list[ChildRow] = []
    for path in paths:
        for item in read(path, today=today):
            result.read += 1
            if isinstance(item, Rejection):
                result.rejected.append(item)
                if isinstance(item, PatientRejection):
                    writer.patients[item.key] = item
            elif isinstance(item, PersonRow):
                people.append(item)
            else:
                pending.append(item)
            if len(pending) >= batch:
                writer.write(pending)
                pending = []
                if not all_or_nothing:  # commit as we go: a crash keeps what is done
                    writer.commit()
            if progress is not None and result.read % 1000 == 0:
                progress(1000)
    writer.write(pending)
    writer.link_people(people)
    if progress is not None:
        progress(result.read % 1000)


def _audit(
    engine: Engine,
    result: ImportResult,
    paths: Sequence[Path],
    *,
    fmt: str,
    actor: Actor,
    all_or_nothing: bool,
) -> None:
    """One audit event for the run: counts only, and a hash of the file names (never contents)."""
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
