"""Changing a child's details: the shape of a change (`ChildChange`), the versions of a record
(`ChildVersion`, a snapshot of its details at each version) and how its history reads back."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field as PField
from pydantic import model_validator
from sqlmodel import Field, SQLModel

from directory.models.base import Input, Output, utc_field
from directory.models.children import AddressIn, IdentifierIn, RelatedPersonIn
from directory.models.vocabulary import Sex, utcnow


class ChildVersion(SQLModel, table=True):
    """A child's record as it stood at one version: written at create and at every new version."""

    __tablename__ = "child_version"
    child_id: uuid.UUID = Field(foreign_key="child.id", primary_key=True)
    version: int = Field(primary_key=True)
    at: datetime = utc_field(default_factory=utcnow)
    actor_subject: str = Field(max_length=200)
    role: str = Field(max_length=40)
    organisation: str | None = Field(default=None, max_length=200)
    source: str = Field(max_length=80)
    changed: str = Field(max_length=500)  # field names, comma separated: never values
    snapshot: str  # canonical JSON of the record's details at this version


class OfficialNameIn(Input):
    """A new official name: the old one is kept as a previous name."""

    given: str = PField(min_length=1, max_length=100)
    family: str = PField(min_length=1, max_length=100)
    middle: str | None = PField(default=None, max_length=100)


class OtherNameIn(Input):
    """A known-as name or an alias to add."""

    given: str = PField(min_length=1, max_length=100)
    family: str = PField(min_length=1, max_length=100)
    middle: str | None = PField(default=None, max_length=100)
    use: Literal["usual", "alias"] = "usual"


class RelatedPersonEnd(Input):
    """A parent or carer who is no longer around the child (kept, with the day it ended)."""

    id: uuid.UUID
    until: date | None = None  # today when not given


class ResponsibilityChange(Input):
    """Parental responsibility given to or taken from a parent or carer on the record."""

    id: uuid.UUID
    parental_responsibility: bool


class ChildChange(Input):
    """A change to a child's details: every field optional, a field left out stays as it is.

    `school_id` and `gp_practice_id` sent as null clear them; other nulls mean "unchanged".
    """

    official_name: OfficialNameIn | None = None
    add_names: list[OtherNameIn] = PField(default_factory=list, max_length=10)
    date_of_birth: date | None = None  # a correction (or, for an unborn child, the birth)
    born_on: date | None = None  # an unborn child is born: the same record gets its date of birth
    sex: Sex | None = None
    address: AddressIn | None = None
    school_id: uuid.UUID | None = None
    gp_practice_id: uuid.UUID | None = None
    add_related_people: list[RelatedPersonIn] = PField(default_factory=list, max_length=10)
    end_related_people: list[RelatedPersonEnd] = PField(default_factory=list, max_length=10)
    parental_responsibility: list[ResponsibilityChange] = PField(default_factory=list, max_length=10)
    identifiers: list[IdentifierIn] = PField(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _one_birth(self) -> ChildChange:
        if self.born_on is not None and self.date_of_birth is not None and self.born_on != self.date_of_birth:
            raise ValueError("give the date of birth once: born_on or date_of_birth, not two different dates")
        return self

    def clears(self, field: str) -> bool:
        """Whether the change sends this field as null on purpose (only school_id, gp_practice_id)."""
        return field in self.model_fields_set and getattr(self, field) is None


class ChildVersionRead(Output):
    """One version of a child's record in its history: who, when, from where, which fields; the
    values only where the reader may see them."""

    version: int
    at: datetime
    role: str
    organisation: str | None = None
    source: str
    changed: list[str]
    details: dict[str, Any] | None = None  # withheld parts are left out; None when none may be shown


class ChildVersionRef(Output):
    """The version a change made (or the version that stands when nothing changed)."""

    id: uuid.UUID
    version: int
    changed: list[str]
