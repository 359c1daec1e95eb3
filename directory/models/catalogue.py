"""The catalogue: localities, organisations, services and practitioners, and how to reach them."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from pydantic import Field as PField
from sqlmodel import Field, SQLModel

from directory.models.base import Input, Output, new_id, utc_field
from directory.models.vocabulary import utcnow


class Locality(SQLModel, table=True):
    """A local delivery area with its core team: whom to ask about a shielded child."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=120)
    authority: str = Field(max_length=120)
    team_name: str = Field(max_length=160)
    team_phone: str | None = Field(default=None, max_length=40)
    team_email: str | None = Field(default=None, max_length=254)
    # when the row last changed (FHIR _history _since, _lastUpdated, meta.lastUpdated)
    updated_at: datetime = utc_field(default_factory=utcnow, index=True)


class LocalityArea(SQLModel, table=True):
    """A postcode district ("OX4") or sector ("OX4 1") that belongs to a locality."""

    __tablename__ = "locality_area"
    area: str = Field(primary_key=True, max_length=8)
    locality_id: uuid.UUID = Field(foreign_key="locality.id", index=True)


class Organisation(SQLModel, table=True):
    """A school, GP practice, trust, council team or voluntary body."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=32)
    urn: str | None = Field(default=None, max_length=12, unique=True)  # school URN
    ods_code: str | None = Field(default=None, max_length=12, unique=True)  # NHS ODS code
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=254)
    postcode: str | None = Field(default=None, max_length=8)
    locality_id: uuid.UUID | None = Field(default=None, foreign_key="locality.id")
    # when the row last changed (FHIR _history _since, _lastUpdated, meta.lastUpdated)
    updated_at: datetime = utc_field(default_factory=utcnow, index=True)


class Service(SQLModel, table=True):
    """A service in the catalogue: what it offers, at which level of need, where."""

    __table_args__ = (
        sa.CheckConstraint("level_of_need BETWEEN 1 AND 4", name="service_level_1_4"),
        sa.CheckConstraint("tier IN ('core', 'aligned', 'specialist')", name="service_tier"),
    )
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    name: str = Field(max_length=200)
    service_type: str = Field(max_length=48, index=True)
    organisation_id: uuid.UUID = Field(foreign_key="organisation.id")
    level_of_need: int
    tier: str = Field(max_length=12)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=254)
    sensitive: bool = False
    sensitive_category: str | None = Field(default=None, max_length=32)
    # when the row last changed (FHIR _history _since, _lastUpdated, meta.lastUpdated)
    updated_at: datetime = utc_field(default_factory=utcnow, index=True)


class ServiceLocality(SQLModel, table=True):
    """Which localities a service covers."""

    __tablename__ = "service_locality"
    service_id: uuid.UUID = Field(foreign_key="service.id", primary_key=True)
    locality_id: uuid.UUID = Field(foreign_key="locality.id", primary_key=True)


class Practitioner(SQLModel, table=True):
    """A named practitioner: the person to call."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    name: str = Field(max_length=160)
    role: str = Field(max_length=80)  # e.g. "health visitor", "SENCO", "youth worker"
    organisation_id: uuid.UUID = Field(foreign_key="organisation.id")
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=254)
    subject: str | None = Field(default=None, max_length=200, unique=True)  # sign-in subject
    active: bool = True
    # optimistic locking for updates from connected systems (PractitionerRole If-Match); the
    # server default sets rows that existed before the column at 1
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    # when the row last changed (FHIR _history _since, _lastUpdated, meta.lastUpdated)
    updated_at: datetime = utc_field(default_factory=utcnow, index=True)


class PractitionerCreate(Input):
    """A practitioner and the contact point to reach them."""

    name: str = PField(min_length=1, max_length=160)
    role: str = PField(min_length=1, max_length=80, examples=["health visitor"])
    organisation_id: uuid.UUID
    phone: str | None = PField(default=None, max_length=40)
    email: str | None = PField(default=None, max_length=254)
    active: bool = True


class Contact(Output):
    """Whom to call and how."""

    name: str
    role: str | None = None
    organisation: str | None = None
    phone: str | None = None
    email: str | None = None


class ServiceRead(Output):
    id: uuid.UUID
    name: str
    service_type: str
    organisation_id: uuid.UUID
    level_of_need: int
    tier: str
    phone: str | None
    email: str | None
    sensitive: bool


class PractitionerRead(Output):
    id: uuid.UUID
    name: str
    role: str
    organisation_id: uuid.UUID
    phone: str | None
    email: str | None


class LocalityRead(Output):
    id: uuid.UUID
    code: str
    name: str
    team_name: str
    team_phone: str | None
    team_email: str | None
