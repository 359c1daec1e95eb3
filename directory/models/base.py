"""What every table and shape builds on: UTC time columns, new ids, and the base classes of the
inputs (strict, their dates in bounds) and of the outputs (read from the tables)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, field_validator
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field

from directory.bounds import bounded


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC (the same on SQLite and PostgreSQL) and returns aware UTC."""

    impl = sa.DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def new_id() -> uuid.UUID:
    """A new random id (the primary key of most tables)."""
    return uuid.uuid4()


def utc_field(**kw: Any) -> Any:
    """A date-time column stored as UTC (see UTCDateTime)."""
    return Field(sa_type=UTCDateTime, **kw)


class Input(BaseModel):
    """What comes into the domain: no unknown fields, text stripped, every date within bounds."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*")
    @classmethod
    def _dates_in_bounds(cls, value: Any) -> Any:
        return bounded(value)  # every date or date-time field of every input, one rule (directory.bounds)


class Output(BaseModel):
    """What the domain gives out, built from the tables' rows."""

    model_config = ConfigDict(from_attributes=True)
