"""Requests about a CAF that someone else answers: a Lead Professional hand-over the named practitioner
accepts or declines, an ask to join a Team Around the Child its holder answers, an invitation to
join one the invited practitioner answers (directory/service/requests.py)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from pydantic import Field as PField
from sqlmodel import Field, SQLModel

from directory.models.base import Input, Output, new_id, utc_field
from directory.models.catalogue import Contact
from directory.models.vocabulary import utcnow


class RequestKind(enum.StrEnum):
    HAND_OVER = "hand-over"  # to: the practitioner asked to become Lead Professional
    JOIN = "join"  # practitioner: the one asking to join the TAC; answered by a holder
    INVITE = "invite"  # practitioner: the one invited to the TAC; answered by them


class RequestStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    REPLACED = "replaced"  # a later hand-over request of the same CAF took its place


def _pending_sql(kinds: str) -> str:
    return f"status = 'pending' AND kind IN ({kinds})"


class CafRequest(SQLModel, table=True):
    """One request about a CAF, from who asked to who answers, and how it was answered."""

    __tablename__ = "caf_request"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('hand-over', 'join', 'invite')", name="caf_request_kind"),
        sa.CheckConstraint(
            "status IN ('pending', 'accepted', 'declined', 'replaced')", name="caf_request_status"
        ),
        # one pending hand-over per CAF; one pending ask or invitation per CAF and practitioner
        sa.Index(
            "caf_request_one_hand_over",
            "assessment_id",
            unique=True,
            sqlite_where=sa.text(_pending_sql("'hand-over'")),
            postgresql_where=sa.text(_pending_sql("'hand-over'")),
        ),
        sa.Index(
            "caf_request_one_tac_request",
            "assessment_id",
            "practitioner_id",
            unique=True,
            sqlite_where=sa.text(_pending_sql("'join', 'invite'")),
            postgresql_where=sa.text(_pending_sql("'join', 'invite'")),
        ),
    )
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    kind: str = Field(max_length=10)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    assessment_id: uuid.UUID = Field(foreign_key="assessment.id", index=True)
    # the practitioner the request is about: the new Lead Professional, the asker, the invited one
    practitioner_id: uuid.UUID = Field(foreign_key="practitioner.id", index=True)
    role: str | None = Field(default=None, max_length=80)  # the TAC role (join, invite)
    reason: str | None = Field(default=None, max_length=500)
    source: str = Field(default="app", max_length=20)  # app, pages, fhir, tac, panel
    requester_id: uuid.UUID | None = Field(default=None, foreign_key="practitioner.id", index=True)
    requested_by: str = Field(max_length=200)  # the actor's subject
    status: str = Field(default=RequestStatus.PENDING.value, max_length=10, index=True)
    created_at: datetime = utc_field(default_factory=utcnow)
    answered_at: datetime | None = utc_field(default=None)
    answered_by: str | None = Field(default=None, max_length=200)
    answer_reason: str | None = Field(default=None, max_length=500)


class JoinAsk(Input):
    """Ask a CAF's holder to let you join its Team Around the Child."""

    role: str = PField(min_length=1, max_length=80, description="Your role in the TAC, e.g. 'school nurse'")
    reason: str | None = PField(default=None, max_length=500, description="Why you want to join")


class TacInvite(Input):
    """Invite a practitioner to join a CAF's Team Around the Child."""

    practitioner_id: uuid.UUID
    role: str = PField(min_length=1, max_length=80, description="Their role in the TAC")
    reason: str | None = PField(
        default=None, max_length=500, description="Required when you do not hold the CAF (its holder is told)"
    )


class RequestAnswer(Input):
    """Accept or decline a request addressed to you."""

    reason: str | None = PField(default=None, max_length=500)


class RequestRead(Output):
    """A request as shown to who made it or who answers it (names only where the reader may see them)."""

    id: uuid.UUID
    kind: str
    status: str
    caf_id: uuid.UUID
    child_id: uuid.UUID
    practitioner: Contact | None = None  # the new Lead Professional, the asker, the invited one
    requester: Contact | None = None
    role: str | None = None
    reason: str | None = None
    created_at: datetime
    answered_at: datetime | None = None
    mine_to_answer: bool = False
