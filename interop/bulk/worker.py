"""The background export: the children a kick-off selected, in keyset-paged batches (ordered by id,
each batch its own short transaction), each child's picture built by interop.picture exactly as a
read of it would be (shielding, sensitive services, withdrawn consents: the card's rules), written
line by line to one NDJSON file per type. Memory holds one batch, whatever the number of children.

Each batch is audited as one `bulk.export.read` event naming the export and concerning every child
in it (audit_subject), so a child's access log lists every export that included it.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from directory import audit
from directory.db import unit_of_work
from directory.models import Actor, Assessment, BulkExport, Child, Consent, Contact, Involvement, Tac, utcnow
from directory.permissions import SHIELD_VIEWERS
from directory.reach import reach_condition
from directory.visibility import readable_statuses
from interop import picture
from interop.bulk.jobs import BulkConfig, remove_files

log = logging.getLogger("childindex.fhir.bulk")


def selected(row: BulkExport, actor: Actor) -> sa.ColumnElement[bool]:
    """The children an export includes: those the actor may read (directory.visibility: a sealed or
    archived record is left out as a read leaves it out), of the Group's locality, changed since."""
    where: list[sa.ColumnElement[bool]] = [col(Child.status).in_(sorted(readable_statuses(actor.role)))]
    within = reach_condition(actor)  # the grant's localities, where they restrict reads
    if within is not None:
        where.append(within)
    if row.group_id is not None:
        where.append(col(Child.locality_id) == row.group_id)
    if row.since is not None:
        where.append(_changed_since(row.since, actor))
    return sa.and_(*where)


def _changed_since(since: datetime, actor: Actor) -> sa.ColumnElement[bool]:
    """A child changed since: its record (details, shield, status, merges: the Patient's lastUpdated),
    or a row of its that the client would see changed (an involvement, its CAF or TAC, a consent: each
    keeps `updated_at`, migration 0020). A hidden row's change never counts (a sensitive involvement
    or consent; a shielded child's rows for those who may not see behind the shield, as
    permissions.may_see_shielded and the export drop any override): otherwise the child's arrival in
    the export would tell of a change its resources do not show."""
    rows: list[tuple[Any, list[sa.ColumnElement[bool]]]] = [
        (Involvement, [col(Involvement.sensitive).is_(False)]),
        (Assessment, []),
        (Tac, []),
        (Consent, [sa.not_(col(Consent.scope).startswith("sensitive"))]),
    ]
    changed: list[sa.ColumnElement[bool]] = [col(Child.updated_at) >= since]
    for table, visible in rows:
        found = sa.select(col(table.id)).where(
            *visible, col(table.child_id) == col(Child.id), col(table.updated_at) >= since
        )
        changed.append(found.correlate(Child).exists())
    rows_seen = sa.or_(*changed[1:])
    if actor.role not in SHIELD_VIEWERS:
        rows_seen = sa.and_(col(Child.shielded).is_(False), rows_seen)
    return sa.or_(changed[0], rows_seen)


def next_batch(
    session: Session, where: sa.ColumnElement[bool], after: uuid.UUID | None, n: int
) -> list[uuid.UUID]:
    """The next `n` selected children's ids after `after` (keyset paging: no offset, no long scan)."""
    stmt = select(Child.id).where(where)
    if after is not None:
        stmt = stmt.where(col(Child.id) > after)
    return list(session.exec(stmt.order_by(col(Child.id)).limit(n)).all())


class ExportRun:
    """One export, run to the end in a thread of the serving process."""

    def __init__(self, engine: Engine, cfg: BulkConfig, export_id: uuid.UUID, fallback: Contact) -> None:
        self.engine, self.cfg, self.export_id, self.fallback = engine, cfg, export_id, fallback
        self.counts: dict[str, int] = {}

    def start(self) -> threading.Thread:
        """Run in a daemon thread (a process that dies leaves a stale heartbeat: jobs.fail_interrupted)."""
        t = threading.Thread(target=self.run, name=f"bulk-export-{self.export_id.hex[:8]}", daemon=True)
        t.start()
        return t

    def run(self) -> None:
        """Export every selected child, then publish the files (or fail with an error a client can read)."""
        try:
            self._run()
        except Exception:
            log.exception("bulk export %s failed", self.export_id)
            remove_files(self.cfg, self.export_id)
            self._finish(
                "failed",
                error="The export failed on our side and was stopped; start it again, or quote its id "
                f"({self.export_id}) to the service desk.",
            )

    def _run(self) -> None:
        with Session(self.engine) as s:
            row = s.get(BulkExport, self.export_id)
            if row is None or row.status != "in-progress":
                return
            actor = Actor.model_validate_json(row.actor).model_copy(update={"shield_override_reason": None})
            types = tuple(row.types.split(","))
            where = selected(row, actor)
            total = s.exec(select(sa.func.count()).select_from(Child).where(where)).one()
        with unit_of_work(self.engine) as s:
            s.execute(
                sa.update(BulkExport).where(col(BulkExport.id) == self.export_id).values(children_total=total)
            )
        folder = self.cfg.files_of(self.export_id)
        folder.mkdir(parents=True, exist_ok=True)
        files: dict[str, IO[str]] = {t: (folder / f"{t}.ndjson").open("w", encoding="utf-8") for t in types}
        self.counts = dict.fromkeys(types, 0)
        try:
            after: uuid.UUID | None = None
            while True:
                ids = self._batch(actor, where, after, files)
                if ids is None:  # cancelled: DELETE removed the files
                    remove_files(self.cfg, self.export_id)
                    return
                if not ids:
                    break
                after = ids[-1]
        finally:
            for f in files.values():
                f.close()
        for t, n in self.counts.items():
            if n == 0:
                (folder / f"{t}.ndjson").unlink(missing_ok=True)
        self._finish("complete")

    def _batch(
        self, actor: Actor, where: sa.ColumnElement[bool], after: uuid.UUID | None, files: dict[str, IO[str]]
    ) -> list[uuid.UUID] | None:
        """One batch in one transaction: the pictures, the lines, the audit event, the heartbeat."""
        with unit_of_work(self.engine) as s:
            row = s.get(BulkExport, self.export_id)
            if row is None or row.status != "in-progress":
                return None
            ids = next_batch(s, where, after, self.cfg.batch_size)
            if not ids:
                return ids
            now = utcnow()
            for child_id in ids:
                pic = picture.for_child(
                    s, actor=actor, child_id=child_id, now=now, fallback=self.fallback, audited=False
                )
                for kind, out in files.items():
                    for res in pic.of(kind):
                        out.write(json.dumps(res, ensure_ascii=False, separators=(",", ":")))
                        out.write("\n")
                        self.counts[kind] += 1
            audit.append(
                s,
                actor=actor,
                action="bulk.export.read",
                target_type="bulk-export",
                target_id=self.export_id,
                children=ids,
                detail={"children": len(ids)},
            )
            row.children_done += len(ids)
            row.heartbeat_at = utcnow()
            s.add(row)
        return ids

    def _finish(self, status: str, *, error: str | None = None) -> None:
        with unit_of_work(self.engine) as s:
            row = s.get(BulkExport, self.export_id)
            if row is None or row.status != "in-progress":
                return
            now = utcnow()
            row.status, row.running_client, row.error, row.finished_at = status, None, error, now
            row.expires_at = now + timedelta(minutes=self.cfg.expire_minutes)
            if status == "complete":
                row.output = json.dumps(
                    [{"type": t, "file": f"{t}.ndjson", "count": n} for t, n in self.counts.items() if n]
                )
            s.add(row)
            actor = Actor.model_validate_json(row.actor)
            audit.append(
                s,
                actor=actor,
                action="bulk.export.complete" if status == "complete" else "bulk.export.failed",
                outcome="success" if status == "complete" else "error",
                target_type="bulk-export",
                target_id=self.export_id,
                detail={"children": row.children_done, "resources": dict(self.counts)},
            )


def file_path(
    cfg: BulkConfig, export_id: uuid.UUID, name: str, row_outputs: Sequence[dict[str, Any]]
) -> Path | None:
    """The path of one of an export's files, if the manifest lists it (nothing else on disk is served)."""
    if not any(o["file"] == name for o in row_outputs):
        return None
    return cfg.files_of(export_id) / name
