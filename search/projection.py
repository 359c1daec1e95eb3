"""Builds what search sees of each child (PersonFields) from the directory's tables, in bulk."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import date
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from directory.db import READ_ONLY
from directory.models import Child, ChildAddress, ChildIdentifier, ChildName
from directory.names import names_shown
from search.port import PersonFields

_NAME_ORDER = {"official": 0, "usual": 1, "alias": 2, "previous": 3}


class _Name(NamedTuple):
    order: int
    given: str
    middle: str | None
    family: str
    use: str
    until: date | None


def project(conn: Connection, child_ids: Sequence[uuid.UUID]) -> tuple[list[PersonFields], list[str]]:
    """PersonFields for the active children among `child_ids`, and the ids to remove from the index."""
    if not child_ids:
        return [], []
    children = (
        conn.execute(
            sa.select(Child.__table__).where(Child.__table__.c.id.in_(child_ids))  # type: ignore[attr-defined]
        )
        .mappings()
        .all()
    )
    names: dict[uuid.UUID, list[_Name]] = defaultdict(list)
    for row in conn.execute(
        sa.select(ChildName.__table__).where(ChildName.__table__.c.child_id.in_(child_ids))  # type: ignore[attr-defined]
    ).mappings():
        names[row["child_id"]].append(
            _Name(
                _NAME_ORDER.get(row["use"], 9),
                row["given"],
                row["middle"],
                row["family"],
                row["use"],
                row["until"],
            )
        )
    idents: dict[uuid.UUID, list[tuple[str, str]]] = defaultdict(list)
    for row in conn.execute(
        sa.select(ChildIdentifier.__table__).where(ChildIdentifier.__table__.c.child_id.in_(child_ids))  # type: ignore[attr-defined]
    ).mappings():
        idents[row["child_id"]].append((row["system"], row["value"]))
    postcodes: dict[uuid.UUID, list[tuple[bool, str]]] = defaultdict(list)
    for row in conn.execute(
        sa.select(ChildAddress.__table__).where(ChildAddress.__table__.c.child_id.in_(child_ids))  # type: ignore[attr-defined]
    ).mappings():
        postcodes[row["child_id"]].append((row["until"] is not None, row["postcode"]))
    records: list[PersonFields] = []
    found = set()
    for child in children:
        found.add(child["id"])
        if child["status"] != "active":
            continue
        # A shielded child is keyed and scored by its current official name only (for every searcher:
        # the index cannot know who will search), so no former name or alias leads to it.
        child_names = names_shown(
            sorted(names[child["id"]]), shielded=bool(child["shielded"]), entitled=False
        )
        given: list[str] = []
        family: list[str] = []
        for name in child_names:
            g, middle, f = name.given, name.middle, name.family
            for value, bucket in ((g, given), (middle, given), (f, family)):
                if value and value not in bucket:
                    bucket.append(value)
        codes = [p for _, p in sorted(postcodes[child["id"]])]
        records.append(
            PersonFields(
                child_id=child["id"].hex,
                given_names=tuple(given),
                family_names=tuple(family),
                birth_date=child["date_of_birth"],
                expected_delivery_date=child["expected_delivery_date"],
                sex=child["sex"],
                postcodes=tuple(dict.fromkeys(codes)),
                identifiers=tuple(sorted(idents[child["id"]])),
                shielded=bool(child["shielded"]),
            ).redacted()
        )
    active = {uuid.UUID(r.child_id) for r in records}
    removed = [c.hex for c in child_ids if c not in active]
    return records, removed


def all_children(engine: Engine, *, batch: int = 5000) -> Iterator[PersonFields]:
    """Every active child, in batches by id (for a full rebuild)."""
    table = Child.__table__  # type: ignore[attr-defined]
    last: uuid.UUID | None = None
    while True:
        with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            stmt = sa.select(table.c.id).where(table.c.status == "active").order_by(table.c.id).limit(batch)
            if last is not None:
                stmt = stmt.where(table.c.id > last)
            ids = list(conn.execute(stmt).scalars())
            if not ids:
                return
            records, _ = project(conn, ids)
        last = ids[-1]
        yield from records


def count_active(engine: Engine) -> int:
    """How many active children the directory holds."""
    table = Child.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(table.c.status == "active")).scalar_one())
