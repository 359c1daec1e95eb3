"""The CAF, its Lead Professional and its Team Around the Child: the tables, the shapes of each
step, and how a card shows them."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from pydantic import Field as PField
from sqlmodel import Field, SQLModel

from directory.models.base import Input, Output, new_id, utc_field
from directory.models.catalogue import Contact
from directory.models.vocabulary import CafOutcome, TacStatus, utcnow

_CHANGE_REASON = PField(
    default=None,
    max_length=500,
    description="Why you are making this change: required when you do not hold the CAF (its holder "
    "is told, with this reason)",
)


def _open_caf_sql() -> str:
    return "status IN ('signalled', 'in_progress', 'completed')"


class Assessment(SQLModel, table=True):
    """An early help assessment (CAF) from signal of intent to closure."""

    __table_args__ = (
        sa.Index(
            "one_open_caf_per_child",
            "child_id",
            unique=True,
            sqlite_where=sa.text(_open_caf_sql()),
            postgresql_where=sa.text(_open_caf_sql()),
        ),
        sa.CheckConstraint(
            "status IN ('signalled','in_progress','completed','closed','expired','withdrawn')",
            name="caf_status",
        ),
        sa.CheckConstraint(
            f"NOT ({_open_caf_sql()}) OR lead_practitioner_id IS NOT NULL",
            name="open_caf_has_lead_professional",
        ),
        sa.CheckConstraint(
            "status NOT IN ('in_progress', 'completed') OR consent_id IS NOT NULL",
            name="started_caf_has_consent",
        ),
    )
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    status: str = Field(max_length=12)
    initiator_id: uuid.UUID = Field(foreign_key="practitioner.id")
    lead_practitioner_id: uuid.UUID | None = Field(default=None, foreign_key="practitioner.id")
    consent_id: uuid.UUID | None = Field(default=None, foreign_key="consent.id")
    signalled_at: datetime = utc_field(default_factory=utcnow)
    signal_expires_at: datetime | None = utc_field(default=None)
    started_at: datetime | None = utc_field(default=None)
    completed_at: datetime | None = utc_field(default=None)
    closed_at: datetime | None = utc_field(default=None)
    outcome: str | None = Field(default=None, max_length=40)
    closed_reason: str | None = Field(default=None, max_length=500)
    version: int = 1
    updated_at: datetime = utc_field(default_factory=utcnow, index=True)  # meta.lastUpdated, _since
    came_from: str | None = Field(default=None, max_length=20)  # 'step_down': opened by social care


class LeadProfessionalAssignment(SQLModel, table=True):
    """One spell as Lead Professional; a hand-over ends one and starts the next."""

    __tablename__ = "lead_professional_assignment"
    __table_args__ = (
        sa.Index(
            "one_current_lead_professional",
            "child_id",
            unique=True,
            sqlite_where=sa.text("ended_at IS NULL"),
            postgresql_where=sa.text("ended_at IS NULL"),
        ),
    )
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    assessment_id: uuid.UUID = Field(foreign_key="assessment.id", index=True)
    practitioner_id: uuid.UUID = Field(foreign_key="practitioner.id")
    from_practitioner_id: uuid.UUID | None = Field(default=None, foreign_key="practitioner.id")
    reason: str = Field(max_length=500)
    assigned_by: str = Field(max_length=200)
    started_at: datetime = utc_field(default_factory=utcnow)
    ended_at: datetime | None = utc_field(default=None)


class Tac(SQLModel, table=True):
    """A Team Around the Child: practitioners and the family with a plan and review dates."""

    __table_args__ = (sa.CheckConstraint("status IN ('forming', 'convened', 'closed')", name="tac_status"),)
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    assessment_id: uuid.UUID = Field(foreign_key="assessment.id", unique=True)
    status: str = Field(default=TacStatus.FORMING.value, max_length=10)
    family_participating: bool = True
    convened_at: datetime | None = utc_field(default=None)
    next_review_date: date | None = None
    closed_at: datetime | None = utc_field(default=None)
    version: int = 1
    updated_at: datetime = utc_field(default_factory=utcnow, index=True)  # meta.lastUpdated, _since


class TacMember(SQLModel, table=True):
    """A practitioner in a TAC."""

    __tablename__ = "tac_member"
    __table_args__ = (
        sa.Index(
            "tac_member_once",
            "tac_id",
            "practitioner_id",
            unique=True,
            sqlite_where=sa.text("left_at IS NULL"),
            postgresql_where=sa.text("left_at IS NULL"),
        ),
    )
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tac_id: uuid.UUID = Field(foreign_key="tac.id", index=True)
    practitioner_id: uuid.UUID = Field(foreign_key="practitioner.id")
    role: str = Field(max_length=80)
    joined_at: datetime = utc_field(default_factory=utcnow)
    left_at: datetime | None = utc_field(default=None)


class CafSignal(Input):
    """A practitioner says they are about to start a CAF.

    The practitioner is the signed-in one; a connected system names one of its own organisation's.
    """

    practitioner_id: uuid.UUID | None = PField(
        default=None,
        description="Only for a connected system: the practitioner of its own organisation starting "
        "the CAF. A person signals as themselves (their sign-in's practitioner record).",
    )
    no_risk_of_significant_harm: bool = PField(
        description="Confirm that the child is not thought to be at risk of significant harm: a CAF "
        "is not the route for that (refer to children's social care under safeguarding procedures)."
    )


class CafStart(Input):
    consent_id: uuid.UUID
    reason: str | None = _CHANGE_REASON


class CafComplete(Input):
    outcome: CafOutcome
    reason: str | None = _CHANGE_REASON


class CafClose(Input):
    reason: str = PField(min_length=1, max_length=500)


class HandOver(Input):
    """Hand the Lead Professional role to another practitioner."""

    to_practitioner_id: uuid.UUID
    reason: str = PField(min_length=1, max_length=500)


class TacMemberIn(Input):
    practitioner_id: uuid.UUID
    role: str = PField(min_length=1, max_length=80)


class TacUpdate(Input):
    """Create or change a TAC: members to add or remove, next review date."""

    add_members: list[TacMemberIn] = PField(default_factory=list, max_length=30)
    remove_practitioner_ids: list[uuid.UUID] = PField(default_factory=list, max_length=30)
    next_review_date: date | None = None
    family_participating: bool | None = None
    reason: str | None = _CHANGE_REASON


class TacConvene(Input):
    next_review_date: date
    reason: str | None = _CHANGE_REASON


class CafRead(Output):
    id: uuid.UUID
    status: str
    holder: Contact | None = None
    signalled_at: datetime
    signal_expires_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    closed_at: datetime | None = None
    outcome: str | None = None
    advice: str | None = None
    came_from: str | None = None  # 'step_down': opened by social care stepping the case down


class LeadProfessionalRead(Output):
    practitioner_id: uuid.UUID
    contact: Contact
    since: datetime
    reason: str


class HandOverRead(Output):
    from_practitioner: str | None
    to_practitioner: str
    at: datetime
    reason: str
    by: str


class TacMemberRead(Output):
    practitioner_id: uuid.UUID
    role: str
    contact: Contact


class TacRead(Output):
    id: uuid.UUID
    status: str
    family_participating: bool
    convened_at: datetime | None = None
    next_review_date: date | None = None
    members: list[TacMemberRead]
    core_group: bool = False  # stepped up to social care: the TAC is the core group until stepped down
