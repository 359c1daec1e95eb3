"""Merges of duplicate records: the merge itself and each value it moved (so an unmerge can put
back exactly what moved), and the shapes that ask for a merge or an unmerge."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field as PField
from pydantic import field_validator
from sqlmodel import Field, SQLModel

from directory.models.base import Input, Output, new_id, utc_field
from directory.models.vocabulary import utcnow


class ChildMerge(SQLModel, table=True):
    """A duplicate record merged into the record kept; deleted by its unmerge (the audit log keeps both)."""

    __tablename__ = "child_merge"
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    kept_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    duplicate_id: uuid.UUID = Field(foreign_key="child.id", unique=True)
    reason: str = Field(max_length=500)
    merged_by: str = Field(max_length=200)
    merged_at: datetime = utc_field(default_factory=utcnow)


class MergeMove(SQLModel, table=True):
    """One value a merge changed: which table, row and column, and the value before and after."""

    __tablename__ = "merge_move"
    merge_id: uuid.UUID = Field(foreign_key="child_merge.id", primary_key=True)
    seq: int = Field(primary_key=True)
    table_name: str = Field(max_length=64)
    row_id: str = Field(max_length=200)  # the row's primary key values, '/'-joined
    column_name: str = Field(max_length=64)
    old_value: str | None = None
    new_value: str | None = None


class MergeRequest(Input):
    """Merge a duplicate record into this one (the one kept)."""

    duplicate_id: uuid.UUID
    reason: str = PField(min_length=1, max_length=500)

    @field_validator("reason")
    @classmethod
    def _no_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("give the reason the records are the same child")
        return v


class UnmergeRequest(Input):
    """Undo a merge, with the reason (kept in the audit event)."""

    reason: str = PField(min_length=1, max_length=500)


class MergeRead(Output):
    """A merge as done or undone: the two records, and how many values moved."""

    kept_id: uuid.UUID
    duplicate_id: uuid.UUID
    merged_at: datetime
    moved: dict[str, int]
    unmerge_until: datetime | None = None
