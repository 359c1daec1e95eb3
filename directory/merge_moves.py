"""The queries of a merge: move what belongs to one child to another, logging each value it
changes (table, row, column, before, after), and put back exactly what a log says moved.

What moves is a list of (table, column naming the child), `CHILD_ROWS`: a table that gains a
column pointing at a child joins the list and merges and unmerges carry it. Values are logged as
text (`encode`) and read back through the column's own type (`decode`), the same on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from directory.models import ChildMerge, MergeMove, utcnow

CHILD_ROWS: tuple[tuple[str, str], ...] = (
    ("child_identifier", "child_id"),
    ("child_name", "child_id"),
    ("child_address", "child_id"),
    ("related_person", "child_id"),
    ("consent", "child_id"),
    ("involvement", "child_id"),
    ("involvement_version", "child_id"),
    ("assessment", "child_id"),
    ("lead_professional_assignment", "child_id"),
    ("tac", "child_id"),
    ("notice", "child_id"),
    ("notification", "child_id"),
    ("caf_request", "child_id"),  # requests about its CAFs move with them
    ("tac_action", "child_id"),  # the TAC's plan (directory/models/plan.py)
    ("tac_review", "child_id"),
    # records merged into the duplicate earlier now point at the record kept
    ("child", "merged_into_id"),
    # ("child_version", "child_id"),  # a child's record per version (the details branch): add here
)
"""Every (table, column) whose rows belong to a child and move with a merge."""

BOOKKEEPING = frozenset({("child", "version"), ("child", "updated_at")})
"""Values an unmerge never puts back: a record's version (and when it changed) only moves on."""


def _table(name: str) -> sa.Table:
    return SQLModel.metadata.tables[name]


def encode(value: Any) -> str | None:
    """A column's value as logged text (None stays None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return value.hex
    return str(value)


def _stamped(table: sa.Table, values: dict[str, Any]) -> dict[str, Any]:
    """The values with the row's change time moved on, for a table that keeps one (an involvement, a
    CAF, a TAC: a sync client polling `_since` sees the row a merge or unmerge moved). Never logged,
    never put back: like a version, it only moves on (the child's own is BOOKKEEPING)."""
    if "updated_at" in table.c and "updated_at" not in values and table.name != "child":
        return {**values, "updated_at": utcnow()}
    return values


def _python_type(kind: Any) -> type:
    """The Python type a column holds (through a TypeDecorator such as the UTC time columns)."""
    try:
        found: type = kind.python_type
    except NotImplementedError:
        found = _python_type(kind.impl_instance) if hasattr(kind, "impl_instance") else str
    return found


def decode(column: sa.Column[Any], text: str | None) -> Any:
    """Logged text back to the value the column holds."""
    if text is None:
        return None
    kind = _python_type(column.type)
    if kind is bool:
        return text == "true"
    if kind is datetime:
        return datetime.fromisoformat(text)
    if kind is date:
        return date.fromisoformat(text)
    if kind is uuid.UUID:
        return uuid.UUID(hex=text)
    if kind is int:
        return int(text)
    return text


def _row_key(table: sa.Table, row: sa.Row[Any]) -> str:
    return "/".join(encode(getattr(row, c.name)) or "" for c in table.primary_key.columns)


def _where_key(table: sa.Table, key: str) -> sa.ColumnElement[bool]:
    parts = key.split("/")
    return sa.and_(*(c == decode(c, p) for c, p in zip(table.primary_key.columns, parts, strict=True)))


@dataclass
class MoveLog:
    """The values one merge changes, in order, each applied as it is logged."""

    session: Session
    moves: list[tuple[str, str, str, str | None, str | None]] = field(default_factory=list)

    def set(self, table_name: str, key: str, column: str, old: Any, new: Any) -> None:
        """Change one value of one row and log it (nothing logged when it is already so)."""
        self.set_row(table_name, key, {column: (old, new)})

    def set_row(self, table_name: str, key: str, changes: dict[str, tuple[Any, Any]]) -> None:
        """Change several values of one row at once (checks across them hold) and log each."""
        changes = {c: (o, n) for c, (o, n) in changes.items() if encode(o) != encode(n)}
        if not changes:
            return
        table = _table(table_name)
        values = _stamped(table, {c: n for c, (_, n) in changes.items()})
        self.session.execute(sa.update(table).where(_where_key(table, key)).values(values))
        for column, (old, new) in changes.items():
            self.moves.append((table_name, key, column, encode(old), encode(new)))

    def set_where(
        self, table_name: str, column: str, new: Any, where: sa.ColumnElement[bool] | None = None
    ) -> int:
        """Change one column of every row that matches (default: every row whose value differs)."""
        table = _table(table_name)
        pk = list(table.primary_key.columns)
        rows = self.session.execute(
            sa.select(*pk, table.c[column]).where(where if where is not None else sa.true())
        ).all()
        for row in rows:
            self.set(table_name, _row_key(table, row), column, getattr(row, column), new)
        return len(rows)

    def move_child_rows(self, from_id: uuid.UUID, to_id: uuid.UUID) -> dict[str, int]:
        """Move every row of CHILD_ROWS from one child to another; how many of each table moved."""
        moved: dict[str, int] = {}
        for table_name, column in CHILD_ROWS:
            table = _table(table_name)
            count = self.set_where(table_name, column, to_id, table.c[column] == from_id)
            if count:
                moved[table_name] = count
        return moved

    def save(self, merge: ChildMerge) -> None:
        """Write the log of this merge (in the same transaction as the moves)."""
        for seq, (table_name, key, column, old, new) in enumerate(self.moves, start=1):
            self.session.add(
                MergeMove(
                    merge_id=merge.id,
                    seq=seq,
                    table_name=table_name,
                    row_id=key,
                    column_name=column,
                    old_value=old,
                    new_value=new,
                )
            )


def logged_moves(session: Session, merge_id: uuid.UUID) -> Sequence[MergeMove]:
    """What a merge moved, in the order it moved it."""
    return session.exec(
        select(MergeMove).where(MergeMove.merge_id == merge_id).order_by(col(MergeMove.seq))
    ).all()


def current_value(session: Session, move: MergeMove) -> str | None:
    """The value a logged move changed as it stands now (encoded), or '<gone>' when the row is gone."""
    table = _table(move.table_name)
    row = session.execute(sa.select(table.c[move.column_name]).where(_where_key(table, move.row_id))).first()
    return "<gone>" if row is None else encode(row[0])


def restore(session: Session, moves: Sequence[MergeMove]) -> None:
    """Put back the values moves changed: one statement per row (checks across its columns hold),
    the rows in the reverse order of the merge."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for move in reversed(moves):
        column = _table(move.table_name).c[move.column_name]
        rows.setdefault((move.table_name, move.row_id), {})[column.name] = decode(column, move.old_value)
    for (table_name, key), values in rows.items():
        table = _table(table_name)
        session.execute(sa.update(table).where(_where_key(table, key)).values(_stamped(table, values)))


def forget(session: Session, merge: ChildMerge) -> None:
    """Delete a merge and its log (after an unmerge has put everything back)."""
    session.execute(sa.delete(_table("merge_move")).where(_table("merge_move").c.merge_id == merge.id))
    session.delete(merge)


def merge_of_duplicate(session: Session, duplicate_id: uuid.UUID) -> ChildMerge | None:
    """The merge that made this record a pointer, if any."""
    return session.exec(select(ChildMerge).where(ChildMerge.duplicate_id == duplicate_id)).first()


def merged_into_ids(session: Session, kept_id: uuid.UUID, *, depth: int = 10) -> list[uuid.UUID]:
    """The records merged into this one (and into those, and so on): whose access history is its own."""
    found: list[uuid.UUID] = []
    frontier = [kept_id]
    table = _table("child")
    for _ in range(depth):
        if not frontier:
            break
        rows = session.execute(
            sa.select(table.c.id).where(table.c.merged_into_id.in_(frontier), table.c.status == "merged")
        ).scalars()
        frontier = [r for r in rows if r not in found and r != kept_id]
        found.extend(frontier)
    return found


def names_of(child_id: uuid.UUID, uses: frozenset[str] | set[str]) -> sa.ColumnElement[bool]:
    """A child's names of some uses (the duplicate's current names, which become aliases)."""
    table = _table("child_name")
    return sa.and_(table.c.child_id == child_id, table.c.use.in_(sorted(uses)))


def bump_versions(session: Session, keys: set[str], now: datetime) -> None:
    """A new version of each child (by logged key) that changed since its merge, instead of an old one."""
    table = _table("child")
    for key in keys:
        session.execute(
            sa.update(table).where(_where_key(table, key)).values(version=table.c.version + 1, updated_at=now)
        )


def count_child_rows(session: Session, child_id: uuid.UUID) -> dict[str, int]:
    """How many rows of each table of CHILD_ROWS belong to a child (what a merge of it would move)."""
    counts: dict[str, int] = {}
    for table_name, column in CHILD_ROWS:
        table = _table(table_name)
        n = session.execute(sa.select(sa.func.count()).select_from(table).where(table.c[column] == child_id))
        value = int(n.scalar_one())
        if value:
            counts[table_name] = value
    return counts
