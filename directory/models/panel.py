"""The early intervention panel (a completed multi-agency CAF sent to the child's locality panel, and
the panel's decision), the step up of a CAF to children's social care (its TAC becomes the core group
until stepped down) and the referral notices queued for the social care front door.

Codes and short fields only: case notes stay out (docs/panel.md)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from pydantic import Field as PField
from sqlmodel import Field, SQLModel

from directory.models.base import Input, Output, new_id, utc_field
from directory.models.vocabulary import utcnow


class PanelStatus(enum.StrEnum):
    WAITING = "waiting"  # sent to panel, no decision yet
    DECIDED = "decided"


class PractitionerSupport(enum.StrEnum):
    """What the panel offers the practitioner who did the CAF."""

    NONE = "none"
    SUPERVISION = "supervision"
    JOINT_WORKING = "joint_working"
    TRAINING = "training"
    ADVICE = "advice"


class SuggestionStatus(enum.StrEnum):
    SUGGESTED = "suggested"  # recorded from the decision
    INVITED = "invited"  # turned into a TAC invitation (helper B's invite_to_tac, at merge)


class PanelReferral(SQLModel, table=True):
    """A CAF sent to its child's locality panel, and the panel's decision on it (one per CAF)."""

    __tablename__ = "panel_referral"
    __table_args__ = (
        sa.CheckConstraint("status IN ('waiting', 'decided')", name="panel_referral_status"),
        sa.CheckConstraint(
            "level_benchmark IS NULL OR level_benchmark BETWEEN 1 AND 4", name="panel_level_benchmark"
        ),
        sa.CheckConstraint(
            "status <> 'decided' OR (decided_at IS NOT NULL AND risk_of_harm IS NOT NULL)",
            name="panel_decided_has_decision",
        ),
    )
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    caf_id: uuid.UUID = Field(foreign_key="assessment.id", unique=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    locality_id: uuid.UUID | None = Field(default=None, foreign_key="locality.id", index=True)
    status: str = Field(default=PanelStatus.WAITING.value, max_length=10, index=True)
    sent_by: str = Field(max_length=200)  # the sender's subject
    sent_by_practitioner_id: uuid.UUID | None = Field(default=None, foreign_key="practitioner.id")
    sent_at: datetime = utc_field(default_factory=utcnow)
    decided_at: datetime | None = utc_field(default=None)
    decided_by: str | None = Field(default=None, max_length=200)
    risk_of_harm: bool | None = None
    need_level_3_4_screened: bool | None = None
    tac_needed: bool | None = None
    practitioner_support: str | None = Field(default=None, max_length=20)
    level_benchmark: int | None = None
    reason: str | None = Field(default=None, max_length=200)
    version: int = 1
    updated_at: datetime = utc_field(default_factory=utcnow)


class PanelSuggestion(SQLModel, table=True):
    """A practitioner the panel suggests for the child's TAC, with a role."""

    __tablename__ = "panel_suggestion"
    __table_args__ = (
        sa.UniqueConstraint("referral_id", "practitioner_id", name="panel_suggestion_once"),
        sa.CheckConstraint("status IN ('suggested', 'invited')", name="panel_suggestion_status"),
    )
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    referral_id: uuid.UUID = Field(foreign_key="panel_referral.id", index=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    practitioner_id: uuid.UUID = Field(foreign_key="practitioner.id")
    role: str = Field(max_length=80)
    status: str = Field(default=SuggestionStatus.SUGGESTED.value, max_length=10)
    created_at: datetime = utc_field(default_factory=utcnow)


class StepUp(SQLModel, table=True):
    """A CAF stepped up to children's social care: its TAC is the core group until stepped down."""

    __tablename__ = "step_up"
    __table_args__ = (
        sa.Index(
            "one_open_step_up_per_caf",
            "caf_id",
            unique=True,
            sqlite_where=sa.text("stepped_down_at IS NULL"),
            postgresql_where=sa.text("stepped_down_at IS NULL"),
        ),
    )
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    caf_id: uuid.UUID = Field(foreign_key="assessment.id", index=True)
    tac_id: uuid.UUID | None = Field(default=None, foreign_key="tac.id", index=True)
    stepped_up_by: str = Field(max_length=200)
    referrer_id: uuid.UUID | None = Field(default=None, foreign_key="practitioner.id")
    stepped_up_at: datetime = utc_field(default_factory=utcnow)
    stepped_down_at: datetime | None = utc_field(default=None)
    stepped_down_by: str | None = Field(default=None, max_length=200)


class FrontDoorNotice(SQLModel, table=True):
    """A referral notice to the social care front door, queued and retried until delivered."""

    __tablename__ = "front_door_notice"
    __table_args__ = (
        sa.CheckConstraint("channel IN ('webhook', 'email')", name="front_door_channel"),
        sa.CheckConstraint("status IN ('queued', 'delivered', 'dead')", name="front_door_status"),
        sa.UniqueConstraint("step_up_id", "channel", name="front_door_notice_once"),
    )
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    step_up_id: uuid.UUID = Field(foreign_key="step_up.id", index=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    channel: str = Field(max_length=10)
    status: str = Field(default="queued", max_length=10, index=True)
    attempts: int = 0
    next_attempt_at: datetime = utc_field(default_factory=utcnow)
    delivered_at: datetime | None = utc_field(default=None)
    last_error: str | None = Field(default=None, max_length=300)
    created_at: datetime = utc_field(default_factory=utcnow)


# --------------------------------------------------------------------------- shapes

SHORT_REASON = PField(
    default=None,
    max_length=200,
    description="A short reason (200 characters at most): no case notes, no details of the child",
)


class PanelSend(Input):
    """Send a completed multi-agency CAF to the child's locality panel."""

    reason: str | None = SHORT_REASON


class SuggestedMember(Input):
    practitioner_id: uuid.UUID
    role: str = PField(min_length=1, max_length=80)


class PanelDecision(Input):
    """The panel's decision: codes and flags, no case notes."""

    risk_of_harm: bool = PField(
        description="Risk of harm identified: if so, follow safeguarding procedures (no TAC is suggested)"
    )
    need_level_3_4_screened: bool = PField(description="Level of need 3 or 4 screened")
    tac_needed: bool
    suggested_members: list[SuggestedMember] = PField(default_factory=list, max_length=15)
    practitioner_support: PractitionerSupport = PractitionerSupport.NONE
    level_benchmark: int = PField(ge=1, le=4, description="The level of need the panel benchmarks (1-4)")
    reason: str | None = SHORT_REASON


class StepUpIn(Input):
    """Step a CAF up to children's social care."""

    reason: str | None = SHORT_REASON


class StepDownIn(Input):
    """A social worker steps a case down to early help."""

    lead_practitioner_id: uuid.UUID = PField(
        description="The early-help practitioner to be Lead Professional"
    )
    consent_id: uuid.UUID | None = PField(
        default=None, description="A current consent covering a CAF: needed when a new CAF is opened"
    )
    members: list[SuggestedMember] = PField(default_factory=list, max_length=15)
    reason: str = PField(min_length=1, max_length=200)


class SuggestionRead(Output):
    practitioner_id: uuid.UUID
    role: str
    status: str


class PanelReferralRead(Output):
    id: uuid.UUID
    caf_id: uuid.UUID
    child_id: uuid.UUID
    locality: str | None = None
    status: str
    sent_at: datetime
    decided_at: datetime | None = None
    risk_of_harm: bool | None = None
    need_level_3_4_screened: bool | None = None
    tac_needed: bool | None = None
    practitioner_support: str | None = None
    level_benchmark: int | None = None
    advice: str | None = None
    suggestions: list[SuggestionRead] = []


class StepRead(Output):
    id: uuid.UUID
    caf_id: uuid.UUID
    child_id: uuid.UUID
    tac_id: uuid.UUID | None = None
    core_group: bool
    front_door: list[str] = []  # the channels a referral notice is queued on
