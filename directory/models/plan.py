"""A Team Around the Child's plan: its actions (who, which area of need, by when, status, a short
title) and its reviews (when held, the outcome, whether the family has a copy of the plan).

No free text beyond an action's title (80 characters): the directory is a signpost, not a case
record, so what was said and why stays in each service's own case notes.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Literal

import sqlalchemy as sa
from pydantic import Field as PField
from sqlmodel import Field, SQLModel

from directory.models.base import Input, Output, new_id, utc_field
from directory.models.catalogue import Contact
from directory.models.vocabulary import utcnow

TITLE_MAX = 80
FAMILY = "family"
"""An action's owner when it is not a practitioner: the child's family."""

_REASON = PField(
    default=None,
    max_length=500,
    description="Why you are making this change: required when you do not hold the CAF (its holder "
    "is told, with this reason)",
)
_TITLE_DOC = (
    "What is to be done, in at most 80 characters (e.g. 'Book a hearing test'). No case notes, names or "
    "details about the child or family: those stay in your own service's records."
)


class PlanArea(enum.StrEnum):
    """The area of need an action serves: the CAF's three domains and their areas (codes only)."""

    # Development of the child
    HEALTH = "child.health"
    PHYSICAL = "child.physical-development"
    SPEECH = "child.speech-language-communication"
    EMOTIONAL = "child.emotional-social-development"
    BEHAVIOUR = "child.behavioural-development"
    IDENTITY = "child.identity-self-image"
    RELATIONSHIPS = "child.family-social-relationships"
    SELF_CARE = "child.self-care-independence"
    LEARNING = "child.learning"
    # Parents and carers
    BASIC_CARE = "parents.basic-care-safety"
    WARMTH = "parents.emotional-warmth-stability"
    GUIDANCE = "parents.guidance-boundaries-stimulation"
    # Family and environment
    FAMILY_FUNCTIONING = "family.history-functioning-wellbeing"
    WIDER_FAMILY = "family.wider-family"
    HOUSING = "family.housing-employment-finance"
    COMMUNITY = "family.social-community-resources"


PLAN_DOMAINS: dict[str, tuple[tuple[PlanArea, str], ...]] = {
    "Development of the child": (
        (PlanArea.HEALTH, "General health"),
        (PlanArea.PHYSICAL, "Physical development"),
        (PlanArea.SPEECH, "Speech, language and communication"),
        (PlanArea.EMOTIONAL, "Emotional and social development"),
        (PlanArea.BEHAVIOUR, "Behavioural development"),
        (PlanArea.IDENTITY, "Identity, self-esteem and self-image"),
        (PlanArea.RELATIONSHIPS, "Family and social relationships"),
        (PlanArea.SELF_CARE, "Self-care skills and independence"),
        (PlanArea.LEARNING, "Learning, education and achievement"),
    ),
    "Parents and carers": (
        (PlanArea.BASIC_CARE, "Basic care, safety and protection"),
        (PlanArea.WARMTH, "Emotional warmth and stability"),
        (PlanArea.GUIDANCE, "Guidance, boundaries and stimulation"),
    ),
    "Family and environment": (
        (PlanArea.FAMILY_FUNCTIONING, "Family history, functioning and well-being"),
        (PlanArea.WIDER_FAMILY, "Wider family"),
        (PlanArea.HOUSING, "Housing, employment and finance"),
        (PlanArea.COMMUNITY, "Social and community resources"),
    ),
}
"""The areas under their CAF domain, with the words a page shows (the one vocabulary of the plan)."""

AREA_LABELS: dict[str, str] = {
    area.value: f"{domain}: {label}" for domain, areas in PLAN_DOMAINS.items() for area, label in areas
}


class ActionStatus(enum.StrEnum):
    OPEN = "open"
    DONE = "done"
    DROPPED = "dropped"


class ReviewOutcome(enum.StrEnum):
    NEEDS_MET = "needs_met"  # the child's needs are met: the CAF and its TAC close
    RECONVENE = "reconvene"  # reconvene and revise the plan: a next review date


class TacAction(SQLModel, table=True):
    """One action of a TAC's plan; its owner is a TAC member practitioner, or the family (NULL)."""

    __tablename__ = "tac_action"
    __table_args__ = (sa.CheckConstraint("status IN ('open', 'done', 'dropped')", name="tac_action_status"),)
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tac_id: uuid.UUID = Field(foreign_key="tac.id", index=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    title: str = Field(max_length=TITLE_MAX)
    area: str = Field(max_length=40)
    owner_practitioner_id: uuid.UUID | None = Field(default=None, foreign_key="practitioner.id")
    due_date: date = Field(index=True)
    status: str = Field(default=ActionStatus.OPEN.value, max_length=8)
    created_at: datetime = utc_field(default_factory=utcnow)
    updated_at: datetime = utc_field(default_factory=utcnow)
    version: int = 1


class TacReview(SQLModel, table=True):
    """A review of a TAC's plan: when it was held, its outcome and whether the family has the plan."""

    __tablename__ = "tac_review"
    __table_args__ = (
        sa.CheckConstraint("outcome IN ('needs_met', 'reconvene')", name="tac_review_outcome"),
        sa.CheckConstraint(
            "outcome = 'needs_met' OR next_review_date IS NOT NULL", name="tac_review_reconvene_date"
        ),
    )
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tac_id: uuid.UUID = Field(foreign_key="tac.id", index=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    held_on: date
    outcome: str = Field(max_length=12)
    next_review_date: date | None = None
    family_has_plan: bool
    recorded_at: datetime = utc_field(default_factory=utcnow)


class ActionCreate(Input):
    """A new action of the plan."""

    title: str = PField(min_length=1, max_length=TITLE_MAX, description=_TITLE_DOC)
    area: PlanArea = PField(description="The area of need (the CAF's domains), as a code")
    owner: Literal["family"] | uuid.UUID = PField(
        description="Who does it: a current member of the TAC (their practitioner id), or 'family'"
    )
    due_date: date = PField(description="By when; not before the TAC was convened")
    reason: str | None = _REASON


class ActionChange(Input):
    """Change an action's status or its date (at least one)."""

    status: ActionStatus | None = None
    due_date: date | None = None
    reason: str | None = _REASON


class ReviewCreate(Input):
    """A review of the plan, held on a day; reconvening needs the next review's date."""

    held_on: date = PField(description="When the review was held: not in the future, not before the TAC")
    outcome: ReviewOutcome
    next_review_date: date | None = PField(
        default=None, description="Required when reconvening, and in the future; none when needs are met"
    )
    family_has_plan: bool = PField(description="Whether the family has a copy of the plan")
    reason: str | None = _REASON


class ActionRead(Output):
    id: uuid.UUID
    tac_id: uuid.UUID
    title: str
    area: str
    area_label: str
    owner: str = PField(description="'family', 'practitioner', or 'withheld' (you may not see who)")
    owner_practitioner_id: uuid.UUID | None = None
    owner_contact: Contact | None = None
    due_date: date
    status: str
    overdue: bool
    version: int


class ReviewRead(Output):
    id: uuid.UUID
    tac_id: uuid.UUID
    held_on: date
    outcome: str
    next_review_date: date | None = None
    family_has_plan: bool
    recorded_at: datetime
