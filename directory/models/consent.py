"""Consents: the table, the shapes that record and withdraw one, and how a card shows it."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from pydantic import Field as PField
from sqlmodel import Field, SQLModel

from directory.models.base import Input, Output, new_id, utc_field
from directory.models.vocabulary import ConsentGiver, ConsentScope, utcnow


class Consent(SQLModel, table=True):
    """A consent given by a parent/carer or a competent young person, until withdrawn."""

    __table_args__ = (
        sa.CheckConstraint("given_by_kind IN ('parent_carer', 'young_person')", name="consent_giver_kind"),
    )
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    scope: str = Field(max_length=40)
    given_by_kind: str = Field(max_length=16)
    given_by_name: str = Field(max_length=160)
    related_person_id: uuid.UUID | None = Field(default=None, foreign_key="related_person.id")
    given_at: datetime = utc_field()
    withdrawn_at: datetime | None = utc_field(default=None)
    withdrawn_reason: str | None = Field(default=None, max_length=500)
    recorded_by: str = Field(max_length=200)
    updated_at: datetime = utc_field(default_factory=utcnow)  # recorded or withdrawn: meta.lastUpdated


class ConsentCreate(Input):
    """A consent as given by a parent/carer or a competent young person."""

    scope: ConsentScope
    given_by_kind: ConsentGiver
    given_by_name: str = PField(min_length=1, max_length=160)
    related_person_id: uuid.UUID | None = None
    given_at: datetime | None = None
    young_person_competent: bool | None = PField(
        default=None, description="Required true when a young person gives consent themselves"
    )


class ConsentWithdraw(Input):
    reason: str = PField(min_length=1, max_length=500)


class ConsentRead(Output):
    id: uuid.UUID
    scope: str
    given_by_kind: str
    given_by_name: str
    given_at: datetime
    withdrawn_at: datetime | None = None
    withdrawn_reason: str | None = None
    current: bool
    updated_at: datetime | None = None  # when it was recorded or withdrawn

    @classmethod
    def of(cls, c: Consent) -> ConsentRead:
        """A consent as it is read back (current until it is withdrawn)."""
        return cls(
            id=c.id,
            scope=c.scope,
            given_by_kind=c.given_by_kind,
            given_by_name=c.given_by_name,
            given_at=c.given_at,
            withdrawn_at=c.withdrawn_at,
            withdrawn_reason=c.withdrawn_reason,
            current=c.withdrawn_at is None,
            updated_at=c.updated_at,
        )
