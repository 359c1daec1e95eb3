"""A child's record: the child, names, identifiers, addresses and related people; the shapes that
create and change it, and read it back."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from pydantic import EmailStr, field_validator
from pydantic import Field as PField
from sqlmodel import Field, SQLModel

from directory.models.base import Input, Output, new_id, utc_field
from directory.models.vocabulary import NameUse, RecordStatus, Sex, utcnow


class Child(SQLModel, table=True):
    """A child or unborn child known to the directory."""

    __table_args__ = (
        sa.CheckConstraint(
            # a purged record (a tombstone) keeps no date at all
            "date_of_birth IS NOT NULL OR expected_delivery_date IS NOT NULL OR status = 'purged'",
            name="child_born_or_expected",
        ),
        sa.CheckConstraint(
            "status IN ('active', 'archived', 'merged', 'sealed', 'purged')", name="child_status"
        ),
        sa.CheckConstraint("status <> 'merged' OR merged_into_id IS NOT NULL", name="child_merged_into"),
        sa.CheckConstraint(
            "NOT shielded OR (shielded_reason IS NOT NULL AND shielded_by IS NOT NULL)",
            name="child_shield_reason",
        ),
    )
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    status: str = Field(default=RecordStatus.ACTIVE.value, max_length=10, index=True)
    merged_into_id: uuid.UUID | None = Field(default=None, foreign_key="child.id")
    date_of_birth: date | None = Field(default=None, index=True)
    expected_delivery_date: date | None = None
    sex: str = Field(default=Sex.UNKNOWN.value, max_length=8)
    # No foreign key: related_person already points at child; the domain checks this link.
    mother_id: uuid.UUID | None = Field(default=None)
    locality_id: uuid.UUID | None = Field(default=None, foreign_key="locality.id", index=True)
    school_id: uuid.UUID | None = Field(default=None, foreign_key="organisation.id")
    gp_practice_id: uuid.UUID | None = Field(default=None, foreign_key="organisation.id")
    shielded: bool = False
    shielded_reason: str | None = Field(default=None, max_length=500)
    shielded_by: str | None = Field(default=None, max_length=200)
    shielded_at: datetime | None = utc_field(default=None)
    archived_reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = utc_field(default_factory=utcnow)
    updated_at: datetime = utc_field(default_factory=utcnow, index=True)
    version: int = 1


class ChildName(SQLModel, table=True):
    """A name a child has or had; previous names and aliases stay searchable."""

    __tablename__ = "child_name"
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    use: str = Field(default=NameUse.OFFICIAL.value, max_length=10)
    given: str = Field(max_length=100)
    middle: str | None = Field(default=None, max_length=100)
    family: str = Field(max_length=100)
    until: date | None = None  # when a previous name stopped being used


class ChildIdentifier(SQLModel, table=True):
    """An identifier of a child, unique within its system."""

    __tablename__ = "child_identifier"
    __table_args__ = (sa.UniqueConstraint("system", "value", name="identifier_unique_per_system"),)
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    system: str = Field(max_length=255)  # nhs, upn, local:<name>, or a foreign FHIR system URI as sent
    value: str = Field(max_length=64)


class ChildAddress(SQLModel, table=True):
    """Where a child lives or lived; the current address has no end date."""

    __tablename__ = "child_address"
    __table_args__ = (
        sa.Index(
            "one_current_address",
            "child_id",
            unique=True,
            sqlite_where=sa.text("until IS NULL"),
            postgresql_where=sa.text("until IS NULL"),
        ),
    )
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    line1: str = Field(max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    town: str | None = Field(default=None, max_length=100)
    postcode: str = Field(max_length=8, index=True)
    since: date | None = None
    until: date | None = None


class RelatedPerson(SQLModel, table=True):
    """A parent or carer of a child, with parental responsibility and contact details."""

    __tablename__ = "related_person"
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    child_id: uuid.UUID | None = Field(default=None, foreign_key="child.id", index=True)
    name: str = Field(max_length=160)
    relationship: str = Field(max_length=40)  # mother, father, carer, foster carer, ...
    parental_responsibility: bool = False
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=254)
    address: str | None = Field(default=None, max_length=300)
    until: date | None = None  # when they stopped being around the child (kept, off the card)


class NameIn(Input):
    given: str = PField(min_length=1, max_length=100)
    family: str = PField(min_length=1, max_length=100)
    middle: str | None = PField(default=None, max_length=100)
    use: NameUse = NameUse.OFFICIAL
    until: date | None = None


class IdentifierIn(Input):
    system: str = PField(min_length=2, max_length=255, examples=["nhs", "upn", "local:mosaic"])
    value: str = PField(min_length=1, max_length=64)


class AddressIn(Input):
    line1: str = PField(min_length=1, max_length=200)
    line2: str | None = PField(default=None, max_length=200)
    town: str | None = PField(default=None, max_length=100)
    postcode: str = PField(min_length=5, max_length=8)
    since: date | None = None


class RelatedPersonIn(Input):
    name: str = PField(min_length=1, max_length=160)
    relationship: str = PField(min_length=1, max_length=40, examples=["mother", "carer"])
    parental_responsibility: bool = False
    phone: str | None = PField(default=None, max_length=40)
    email: EmailStr | None = None
    address: str | None = PField(default=None, max_length=300)


class ChildCreate(Input):
    """A new child record (or an unborn child, by expected date of delivery)."""

    names: list[NameIn] = PField(min_length=1, max_length=20)
    date_of_birth: date | None = None
    expected_delivery_date: date | None = None
    sex: Sex = Sex.UNKNOWN
    identifiers: list[IdentifierIn] = PField(default_factory=list, max_length=20)
    address: AddressIn | None = None
    related_people: list[RelatedPersonIn] = PField(default_factory=list, max_length=10)
    mother_id: uuid.UUID | None = None
    school_id: uuid.UUID | None = None
    gp_practice_id: uuid.UUID | None = None


class DemographicsUpdate(Input):
    """Demographics from a national service (PDS) to bring a record up to date; None = keep ours."""

    source: str = PField(min_length=1, max_length=80, examples=["pds"])
    nhs_number: str | None = PField(default=None, max_length=12)  # the current number, when superseded
    given: str | None = PField(default=None, max_length=100)
    family: str | None = PField(default=None, max_length=100)
    date_of_birth: date | None = None
    sex: Sex | None = None
    address_line1: str | None = PField(default=None, max_length=200)
    address_line2: str | None = PField(default=None, max_length=200)
    town: str | None = PField(default=None, max_length=100)
    postcode: str | None = PField(default=None, max_length=10)


class ShieldSet(Input):
    reason: str = PField(min_length=1, max_length=500)

    @field_validator("reason")
    @classmethod
    def _no_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("give the reason the record is shielded")
        return v


class ShieldClear(Input):
    """Why a shield is lifted (kept in the audit event of the change)."""

    reason: str = PField(min_length=1, max_length=500)

    @field_validator("reason")
    @classmethod
    def _no_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("give the reason the shield is lifted")
        return v


class NameRead(Output):
    given: str
    middle: str | None = None
    family: str
    use: str
    until: date | None = None


class IdentifierRead(Output):
    system: str
    value: str


class AddressRead(Output):
    line1: str
    line2: str | None = None
    town: str | None = None
    postcode: str
    since: date | None = None


class RelatedPersonRead(Output):
    id: uuid.UUID
    name: str
    relationship: str
    parental_responsibility: bool
    phone: str | None = None
    email: str | None = None


class ChildRef(Output):
    """A created or changed child."""

    id: uuid.UUID
    status: str
    version: int
