"""Involvements: a service working with a child, each version kept; the shapes that record, change
and end one, and how a card shows it."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from pydantic import Field as PField
from sqlmodel import Field, SQLModel

from directory.models.base import Input, Output, new_id, utc_field
from directory.models.catalogue import Contact
from directory.models.vocabulary import InvolvementStatus, utcnow


class Involvement(SQLModel, table=True):
    """A service (and maybe a named practitioner) working with a child."""

    __table_args__ = (
        sa.CheckConstraint("NOT sensitive OR consent_id IS NOT NULL", name="sensitive_has_consent"),
        sa.CheckConstraint("level_of_need BETWEEN 1 AND 4", name="involvement_level_1_4"),
        sa.CheckConstraint("status IN ('active', 'ended')", name="involvement_status"),
        sa.CheckConstraint("status <> 'ended' OR end_date IS NOT NULL", name="ended_involvement_has_end"),
        # Whether a practitioner works in a sensitive service (named on a sensitive involvement of
        # any child) is asked per card and per search hit with a CAF: one seek here. (On the
        # practitioner alone, a health visitor's thousands of involvements were read one by one:
        # 0.4 ms more per page of hits at 1,000,000 children.)
        sa.Index("ix_involvement_practitioner_sensitive", "practitioner_id", "sensitive"),
    )
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    service_id: uuid.UUID = Field(foreign_key="service.id", index=True)
    practitioner_id: uuid.UUID | None = Field(default=None, foreign_key="practitioner.id")
    role: str = Field(max_length=80)
    level_of_need: int
    start_date: date
    end_date: date | None = None
    status: str = Field(default=InvolvementStatus.ACTIVE.value, max_length=8)
    sensitive: bool = False
    consent_id: uuid.UUID | None = Field(default=None, foreign_key="consent.id")
    source: str = Field(default="app", max_length=80)
    last_confirmed_at: datetime = utc_field(default_factory=utcnow)
    recorded_by: str = Field(max_length=200)
    version: int = 1
    # when the row last changed (recorded, a new version, moved by a merge): meta.lastUpdated, _since
    updated_at: datetime = utc_field(default_factory=utcnow, index=True)


class InvolvementVersion(SQLModel, table=True):
    """An involvement as it stood at one version: its history, written with each change."""

    __tablename__ = "involvement_version"
    involvement_id: uuid.UUID = Field(foreign_key="involvement.id", primary_key=True)
    version: int = Field(primary_key=True)
    child_id: uuid.UUID = Field(index=True)
    change: str = Field(max_length=20)  # record | update | end
    snapshot: str  # canonical JSON of the involvement's columns
    recorded_at: datetime = utc_field(default_factory=utcnow)
    recorded_by: str = Field(max_length=200)


class InvolvementCreate(Input):
    """Record that a service is working with a child."""

    service_id: uuid.UUID
    practitioner_id: uuid.UUID | None = None
    role: str = PField(min_length=1, max_length=80, examples=["health visitor"])
    level_of_need: int = PField(ge=1, le=4)
    start_date: date
    sensitive: bool = False
    consent_id: uuid.UUID | None = None
    source: str = PField(default="app", max_length=80)


class InvolvementUpdate(Input):
    """Change an involvement: who is working with the child, in what role, at what level, or end it."""

    practitioner_id: uuid.UUID | None = None
    role: str = PField(min_length=1, max_length=80)
    level_of_need: int = PField(ge=1, le=4)
    end_date: date | None = None


class InvolvementEnd(Input):
    end_date: date
    reason: str | None = PField(default=None, max_length=500)


class InvolvementRead(Output):
    id: uuid.UUID
    service_id: uuid.UUID
    service_name: str
    service_type: str
    tier: str
    role: str
    level_of_need: int
    start_date: date
    end_date: date | None = None
    status: str
    sensitive: bool
    source: str
    last_confirmed_at: datetime
    contact: Contact
    version: int
