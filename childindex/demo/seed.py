"""Synthetic data for one fictitious county (Demoshire), deterministic for a seed, bulk-loaded.

Everything here is made up: names are drawn from common-name lists, postcodes use the
fictitious area "DS", NHS numbers start with 9 (a range not issued to patients) and pass
the modulus-11 check, phone numbers come from Ofcom's ranges reserved for drama
(01632 960xxx, 07700 900xxx) and e-mail addresses use .example domains.

Rows go straight into the tables (SQLAlchemy Core executemany on SQLite, COPY on
PostgreSQL), a batch of children at a time; no audit event is written per row, one for
the run. The search index is rebuilt separately, so no outbox rows are written either.

The entry points live here (`seed`, `is_empty`, `SeedError`, `SeedResult`); what is made
lives beside it: catalogue.py (localities, organisations, services, settings), people.py
(names, practitioners), children.py (children and families), involvements.py and cafs.py
(services, CAFs, Lead Professionals, TACs), loading.py (batches, the second process, the
bulk write).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from childindex.demo.base import SEEDED_BY, Rows, SeedError
from childindex.demo.catalogue import AUTHORITY, Catalogue, build_catalogue
from childindex.demo.children import ChildFactory
from childindex.demo.loading import CATALOGUE_TABLES, CHILD_TABLES, from_process, generate, write
from childindex.migrations import upgrade
from directory import audit
from directory.db import unit_of_work
from directory.models import Actor, utcnow

__all__ = [
    "AUTHORITY",
    "CATALOGUE_TABLES",
    "CHILD_TABLES",
    "SEEDED_BY",
    "Catalogue",
    "ChildFactory",
    "Rows",
    "SeedError",
    "SeedResult",
    "build_catalogue",
    "generate",
    "is_empty",
    "seed",
]


@dataclass(frozen=True)
class SeedResult:
    """What a seed run wrote."""

    children: int
    seed: int
    rows: dict[str, int]


def is_empty(engine: Engine) -> bool:
    """True when the directory holds no localities and no children yet."""
    with engine.connect() as conn:
        for name in ("locality", "child"):
            table = SQLModel.metadata.tables[name]
            if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first():
                return False
    return True


def seed(
    engine: Engine,
    *,
    children: int,
    seed: int = 1,
    actor: Actor,
    today: date | None = None,
    now: datetime | None = None,
    batch: int = 20_000,
    commit_every: int = 100_000,
    parallel: bool | None = None,
    progress: Callable[[int], None] | None = None,
) -> SeedResult:
    """Migrate, then load a synthetic county with N children into an empty database.

    With ``parallel`` (the default from 50,000 children) the children are generated in a
    second process while this one writes; the data are the same either way.
    """
    if children < 0:
        raise SeedError("the number of children cannot be negative")
    upgrade(engine)
    if not is_empty(engine):
        raise SeedError("the database already holds data: seed into an empty database")
    now = (now or utcnow()).astimezone(UTC).replace(tzinfo=None, microsecond=0)
    today = today or now.date()
    kwargs: dict[str, Any] = {
        "children": children,
        "seed": seed,
        "today": today,
        "now": now,
        "batch": batch,
        "drivername": engine.url.drivername,
    }
    parallel = children >= 50_000 if parallel is None else parallel
    batches = from_process(kwargs) if parallel else generate(**kwargs)
    counts = write(engine, batches, commit_every=commit_every, progress=progress)
    with unit_of_work(engine) as session:
        audit.append(session, actor=actor, action="seed", detail={"children": children, "seed": seed})
    return SeedResult(children=children, seed=seed, rows=counts)
