"""The match review queue: feed rows held because their match was uncertain or a candidate is
shielded, with what a person needs to decide (the row as the feed gave it, the candidates and
their grades, the source, run and line), and the decision once made."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from directory.models.base import new_id, utc_field
from directory.models.vocabulary import utcnow


class ReviewStatus(enum.StrEnum):
    """Where a held row stands: open until someone links it to a child or creates a record."""

    OPEN = "open"
    LINKED = "linked"
    CREATED = "created"


class MatchReview(SQLModel, table=True):
    """A feed row held for a person to decide: link it to a candidate, or create a new record."""

    __tablename__ = "match_review"
    __table_args__ = (
        sa.CheckConstraint("status IN ('open', 'linked', 'created')", name="match_review_status"),
        sa.CheckConstraint("status = 'open' OR child_id IS NOT NULL", name="match_review_decided_child"),
        sa.Index("match_review_row", "source", "row_hash"),
    )
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    status: str = Field(default=ReviewStatus.OPEN.value, max_length=8, index=True)
    source: str = Field(max_length=40)  # the feed: pds, school-census, social-care, ...
    run_id: str = Field(max_length=32)  # the import run that held it
    file: str = Field(max_length=200)  # the file's name (never its contents)
    line: int
    row_hash: str = Field(max_length=64)  # sha256 of the row as read: a re-run holds it once
    row: dict[str, Any] = Field(sa_type=sa.JSON)  # the child as the feed gave it
    candidates: list[dict[str, Any]] = Field(sa_type=sa.JSON)  # [{"child_id", "grade"}], best first
    shielded_candidate: bool = False  # shown only to those who may see shielded records
    restricted: str | None = Field(default=None, max_length=16)  # "sealed" / "archived": reviews.RESTRICTED
    child_id: uuid.UUID | None = Field(default=None, foreign_key="child.id")  # linked to or created
    decided_by: str | None = Field(default=None, max_length=200)
    decided_at: datetime | None = utc_field(default=None)
    created_at: datetime = utc_field(default_factory=utcnow)
