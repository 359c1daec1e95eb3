"""A record's life after it stops being an ordinary active record: when and why it was archived (the
age range, a death, a move out of the area), when it was purged; and the sealed link between an
adopted child's birth record and the adoptive one, which only the adoption team may read."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from pydantic import Field as PField
from pydantic import field_validator
from sqlmodel import Field, SQLModel

from directory.models.base import Input, Output, utc_field
from directory.models.children import AddressIn, IdentifierIn, NameIn
from directory.models.vocabulary import Sex


class ArchiveReason(enum.StrEnum):
    """Why a record was archived (a code: the audit log and the tombstone hold nothing else)."""

    AGED_OUT = "aged-out"
    DIED = "died"
    MOVED_AWAY = "moved-away"


class ChildLifecycle(SQLModel, table=True):
    """The dates of a record's life: archived, died, moved away, purged (one row per child that has any).

    After a purge only `archived_at` and `purged_at` are left (with the child's id and status)."""

    __tablename__ = "child_lifecycle"
    child_id: uuid.UUID = Field(foreign_key="child.id", primary_key=True)
    archived_at: datetime | None = utc_field(default=None, index=True)
    died_on: date | None = None
    moved_to: str | None = Field(default=None, max_length=200)  # the authority the child moved to
    moved_on: date | None = Field(default=None, index=True)
    purged_at: datetime | None = utc_field(default=None)


class AdoptionLink(SQLModel, table=True):
    """Which adoptive record replaced which sealed birth record: read only by the adoption team."""

    __tablename__ = "adoption_link"
    sealed_id: uuid.UUID = Field(foreign_key="child.id", primary_key=True)
    adoptive_id: uuid.UUID = Field(foreign_key="child.id", unique=True)
    sealed_at: datetime = utc_field()
    sealed_by: str = Field(max_length=200)


class AuditNote(SQLModel, table=True):
    """Free text that goes with an audit event about a child (the reason given for overriding or
    lifting a shield): kept beside the chain, never in it, so that a purge can delete it while the
    chain still verifies. The event's detail says a note was kept."""

    __tablename__ = "audit_note"
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    child_id: uuid.UUID = Field(index=True)
    text: str = Field(max_length=500)


class AdoptionCreate(Input):
    """The adoptive identity: a new record; the birth record is sealed.

    The date of birth stays the birth record's unless given. Involvements are carried over only when
    listed one by one (their ids, on the birth record); nothing else is."""

    names: list[NameIn] = PField(min_length=1, max_length=5)
    date_of_birth: date | None = None
    sex: Sex | None = None
    nhs_number: str | None = PField(default=None, max_length=12)
    identifiers: list[IdentifierIn] = PField(default_factory=list, max_length=10)
    address: AddressIn | None = None
    carry_involvements: list[uuid.UUID] = PField(default_factory=list, max_length=50)

    @field_validator("carry_involvements")
    @classmethod
    def _once(cls, v: list[uuid.UUID]) -> list[uuid.UUID]:
        if len(set(v)) != len(v):
            raise ValueError("list each involvement to carry over once")
        return v


class AdoptionRead(Output):
    """An adoption as the adoption team sees it."""

    sealed_id: uuid.UUID
    adoptive_id: uuid.UUID
    sealed_at: datetime


class DeathSource(enum.StrEnum):
    """Who reported a death (a code, kept in the audit event: never the reporter's name)."""

    REGISTRAR = "registrar"
    HEALTH = "health"
    FAMILY = "family"
    OTHER_AGENCY = "other-agency"


class DeathRecord(Input):
    """A child's death, as reported (the date and who reported it: never the cause)."""

    date_of_death: date
    source: DeathSource | None = None


class MoveAway(Input):
    """A move out of the area: the authority the child moved to, and when."""

    authority: str = PField(min_length=2, max_length=200)
    moved_on: date


class LifecycleRead(Output):
    """A record's life-cycle dates."""

    child_id: uuid.UUID
    status: str
    archived_reason: str | None = None
    archived_at: datetime | None = None
    died_on: date | None = None
    moved_to: str | None = None
    moved_on: date | None = None
    purged_at: datetime | None = None
