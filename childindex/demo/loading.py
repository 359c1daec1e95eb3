"""The county as prepared rows, a batch at a time (optionally made in a second process), and
their bulk load: SQLAlchemy Core executemany on SQLite, COPY on PostgreSQL (directory.bulk)."""

from __future__ import annotations

import multiprocessing
import random
import traceback
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from queue import Empty
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from childindex.demo.base import Rows, SeedError
from childindex.demo.catalogue import build_catalogue
from childindex.demo.children import ChildFactory
from directory.bulk import BulkWriter, Prepared, loading, prepare
from directory.models import (
    Assessment,
    Child,
    ChildAddress,
    ChildIdentifier,
    ChildName,
    Consent,
    Involvement,
    LeadProfessionalAssignment,
    Locality,
    LocalityArea,
    Organisation,
    Practitioner,
    RelatedPerson,
    Service,
    ServiceLocality,
    Tac,
    TacMember,
)

CATALOGUE_TABLES: list[type[SQLModel]] = [
    Locality,
    LocalityArea,
    Organisation,
    Service,
    ServiceLocality,
    Practitioner,
]
CHILD_TABLES: list[type[SQLModel]] = [
    Child,
    ChildName,
    ChildIdentifier,
    ChildAddress,
    RelatedPerson,
    Consent,
    Involvement,
    Assessment,
    LeadProfessionalAssignment,
    Tac,
    TacMember,
]  # in foreign-key order

Batches = Iterator[tuple[int, list[Prepared]]]
"""(children in the batch, their rows prepared table by table); the catalogue comes as 0 children."""


def generate(*, children: int, seed: int, today: date, now: datetime, batch: int, drivername: str) -> Batches:
    """The county as prepared rows: the catalogue first (0 children), then batches of children."""
    dialect = sa.engine.URL.create(drivername).get_dialect()()
    rng = random.Random(seed)
    cat = build_catalogue(rng, children)
    catalogue = [m.__table__ for m in CATALOGUE_TABLES]  # type: ignore[attr-defined]
    for table in catalogue:  # when each catalogue row last changed (FHIR _history, meta.lastUpdated)
        if "updated_at" in table.c:
            for row in cat.rows[table.name]:
                row["updated_at"] = now
    yield 0, [prepare(dialect, t, cat.rows[t.name]) for t in catalogue if cat.rows[t.name]]
    factory = ChildFactory(rng, cat, today=today, now=now)
    tables = [m.__table__ for m in CHILD_TABLES]  # type: ignore[attr-defined]
    for start in range(0, children, batch):
        size = min(batch, children - start)
        rows: Rows = {t.name: [] for t in tables}
        for i in range(start, start + size):
            factory.child(rows, i)
        for table in tables:  # involvements, CAFs, TACs, consents: when each last changed
            if "updated_at" in table.c:
                for row in rows[table.name]:
                    row.setdefault("updated_at", now)
        yield size, [prepare(dialect, t, rows[t.name]) for t in tables if rows[t.name]]


def _produce(queue: Any, kwargs: dict[str, Any]) -> None:
    """Run `generate` in a separate process, handing batches over through a queue."""
    try:
        for item in generate(**kwargs):
            queue.put(("rows", item))
        queue.put(("done", None))
    except BaseException:  # the parent re-raises it; nothing here may hang it
        queue.put(("error", traceback.format_exc()))


def from_process(kwargs: dict[str, Any]) -> Batches:
    """The batches of `generate(**kwargs)`, made in a second (spawned) process."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue(maxsize=4)
    process = ctx.Process(target=_produce, args=(queue, kwargs), daemon=True)
    process.start()
    try:
        while True:
            try:
                kind, item = queue.get(timeout=5)
            except Empty:
                if not process.is_alive():
                    raise SeedError("the process generating the children stopped") from None
                continue
            if kind == "done":
                break
            if kind == "error":
                raise SeedError(f"generating the children failed:\n{item}")
            yield item
    finally:
        if process.is_alive():
            process.terminate()
        process.join()


def write(
    engine: Engine,
    batches: Iterable[tuple[int, list[Prepared]]],
    *,
    commit_every: int,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Bulk-load the batches into an empty database, committing every `commit_every` children;
    returns the rows written per table."""
    tables = {t.name: t for t in SQLModel.metadata.sorted_tables}
    with loading(engine, empty_database=True) as conn:
        writer = BulkWriter(conn)
        tx = conn.begin()
        try:
            since_commit = 0
            for size, prepared in batches:
                for part in prepared:
                    writer.insert_prepared(tables[part.table], part)
                since_commit += size
                if since_commit >= commit_every:
                    tx.commit()
                    tx = conn.begin()
                    since_commit = 0
                if progress is not None and size:
                    progress(size)
            tx.commit()
        finally:
            if tx.is_active:
                tx.rollback()
        return dict(writer.counts)
