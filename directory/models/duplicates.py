"""The duplicates report, kept: the latest run (who started it, when, how far it got) and its pairs,
by id, grade and the fields that agreed, so every node and every restart shows the same report; and
the pairs a person decided are two children, which later runs leave out.

No personal data: ids, grades, scores and field names only (docs/duplicates.md)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from directory.models.base import new_id, utc_field
from directory.models.vocabulary import utcnow


class DuplicateRun(SQLModel, table=True):
    """One run of the duplicates report: running until it finishes or fails."""

    __tablename__ = "duplicate_run"
    __table_args__ = (
        sa.CheckConstraint("state IN ('running', 'done', 'failed')", name="duplicate_run_state"),
    )
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    state: str = Field(default="running", max_length=8)
    started_by: str = Field(max_length=200)  # the subject who started it
    started_at: datetime = utc_field(default_factory=utcnow, index=True)
    seen_at: datetime = utc_field(default_factory=utcnow)  # its last word of progress
    finished_at: datetime | None = utc_field(default=None, nullable=True)
    children: int = 0  # compared so far (the progress while it runs)
    total: int = 0  # the active children when it started
    pairs: int = 0
    seconds: float = 0.0
    error: str | None = Field(default=None, max_length=80)  # the kind of failure, never its text


class DuplicatePairRow(SQLModel, table=True):
    """A probable duplicate pair of one run (`first_id` < `second_id`)."""

    __tablename__ = "duplicate_pair"
    run_id: uuid.UUID = Field(foreign_key="duplicate_run.id", primary_key=True)
    first_id: uuid.UUID = Field(primary_key=True)
    second_id: uuid.UUID = Field(primary_key=True)
    rank: int  # the report's order: best first
    grade: str = Field(max_length=8)
    score: float
    agreed: str = Field(max_length=200)  # field names, space separated
    shielded: bool = False


class NotDuplicate(SQLModel, table=True):
    """Two records a person decided are two children: no later report lists the pair."""

    __tablename__ = "not_duplicate"
    first_id: uuid.UUID = Field(primary_key=True)
    second_id: uuid.UUID = Field(primary_key=True)
    decided_by: str = Field(max_length=200)
    decided_at: datetime = utc_field(default_factory=utcnow)
