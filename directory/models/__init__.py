"""SQLModel tables of the directory and the pydantic shapes that go in and out of the domain."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, EmailStr, field_validator
from pydantic import Field as PField
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from directory.bounds import bounded
from directory.sealed import Sealed

# --------------------------------------------------------------------------- vocabulary


class Role(enum.StrEnum):
    """What a signed-in subject may do, from their access grant."""

    PRACTITIONER = "practitioner"
    DESIGNATED_PRACTITIONER = "designated_practitioner"  # may see shielded details
    CHILD_PROTECTION = "child_protection"  # may override a shield for one viewing
    LOCAL_DELIVERY_TEAM = "local_delivery_team"
    DIRECTORY_ADMIN = "directory_admin"
    AUDITOR = "auditor"
    SYSTEM = "system"


class Purpose(enum.StrEnum):
    """Why a record is looked at; required for reads and searches and kept in the audit."""

    CONSIDERING_CAF = "considering-caf"
    DIRECT_CARE = "direct-care"
    CAF_COORDINATION = "caf-coordination"
    SAFEGUARDING_CONCERN = "safeguarding-concern"
    ADMINISTRATION = "administration"
    AUDIT = "audit"


class RecordStatus(enum.StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"
    MERGED = "merged"


class Sex(enum.StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class NameUse(enum.StrEnum):
    OFFICIAL = "official"
    USUAL = "usual"  # a known-as name
    PREVIOUS = "previous"
    ALIAS = "alias"


class ServiceTier(enum.StrEnum):
    CORE = "core"  # levels 1-2, the local delivery team
    ALIGNED = "aligned"  # universal / targeted by agreement
    SPECIALIST = "specialist"  # levels 3-4, statutory or referral access


class OrganisationKind(enum.StrEnum):
    SCHOOL = "school"
    EARLY_YEARS = "early_years"
    GP_PRACTICE = "gp_practice"
    NHS_TRUST = "nhs_trust"
    LOCAL_AUTHORITY = "local_authority"
    POLICE = "police"
    VOLUNTARY = "voluntary"
    OTHER = "other"


class InvolvementStatus(enum.StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class CafStatus(enum.StrEnum):
    SIGNALLED = "signalled"  # a service has said it is about to start one
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"  # completed, not closed: the plan / TAC is running
    CLOSED = "closed"
    EXPIRED = "expired"  # a signal that was never started
    WITHDRAWN = "withdrawn"  # a signal withdrawn before it started


OPEN_CAF_STATUSES = (CafStatus.SIGNALLED, CafStatus.IN_PROGRESS, CafStatus.COMPLETED)


class CafOutcome(enum.StrEnum):
    NO_FURTHER_ACTION = "no_further_action"
    NEEDS_MET_IN_SERVICE = "needs_met_in_service"
    MULTI_AGENCY_RESPONSE = "multi_agency_response"
    STEPPED_UP_TO_SOCIAL_CARE = "stepped_up_to_social_care"


class TacStatus(enum.StrEnum):
    FORMING = "forming"
    CONVENED = "convened"
    CLOSED = "closed"


class ConsentGiver(enum.StrEnum):
    PARENT_CARER = "parent_carer"
    YOUNG_PERSON = "young_person"  # a young person judged competent to consent


class SensitiveCategory(enum.StrEnum):
    SEXUAL_HEALTH = "sexual_health"
    SUBSTANCE_MISUSE = "substance_misuse"
    MENTAL_HEALTH = "mental_health"


class ConsentScope(enum.StrEnum):
    """What a consent covers."""

    CAF = "caf"  # an early help assessment and the sharing it needs
    INFORMATION_SHARING = "information_sharing"
    SENSITIVE_SEXUAL_HEALTH = "sensitive:sexual_health"
    SENSITIVE_SUBSTANCE_MISUSE = "sensitive:substance_misuse"
    SENSITIVE_MENTAL_HEALTH = "sensitive:mental_health"
    SENSITIVE_ALL = "sensitive:all"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


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


def _id() -> uuid.UUID:
    return uuid.uuid4()


def _ts(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


def _open_caf_sql() -> str:
    return "status IN ('signalled', 'in_progress', 'completed')"


# --------------------------------------------------------------------------- catalogue


class Locality(SQLModel, table=True):
    """A local delivery area with its core team: whom to ask about a shielded child."""

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=120)
    authority: str = Field(max_length=120)
    team_name: str = Field(max_length=160)
    team_phone: str | None = Field(default=None, max_length=40)
    team_email: str | None = Field(default=None, max_length=254)


class LocalityArea(SQLModel, table=True):
    """A postcode district ("OX4") or sector ("OX4 1") that belongs to a locality."""

    __tablename__ = "locality_area"
    area: str = Field(primary_key=True, max_length=8)
    locality_id: uuid.UUID = Field(foreign_key="locality.id", index=True)


class Organisation(SQLModel, table=True):
    """A school, GP practice, trust, council team or voluntary body."""

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=32)
    urn: str | None = Field(default=None, max_length=12, unique=True)  # school URN
    ods_code: str | None = Field(default=None, max_length=12, unique=True)  # NHS ODS code
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=254)
    postcode: str | None = Field(default=None, max_length=8)
    locality_id: uuid.UUID | None = Field(default=None, foreign_key="locality.id")


class Service(SQLModel, table=True):
    """A service in the catalogue: what it offers, at which level of need, where."""

    __table_args__ = (
        sa.CheckConstraint("level_of_need BETWEEN 1 AND 4", name="service_level_1_4"),
        sa.CheckConstraint("tier IN ('core', 'aligned', 'specialist')", name="service_tier"),
    )
    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    name: str = Field(max_length=200)
    service_type: str = Field(max_length=48, index=True)
    organisation_id: uuid.UUID = Field(foreign_key="organisation.id")
    level_of_need: int
    tier: str = Field(max_length=12)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=254)
    sensitive: bool = False
    sensitive_category: str | None = Field(default=None, max_length=32)


class ServiceLocality(SQLModel, table=True):
    """Which localities a service covers."""

    __tablename__ = "service_locality"
    service_id: uuid.UUID = Field(foreign_key="service.id", primary_key=True)
    locality_id: uuid.UUID = Field(foreign_key="locality.id", primary_key=True)


class Practitioner(SQLModel, table=True):
    """A named practitioner: the person to call."""

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
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


# --------------------------------------------------------------------------- the child


class Child(SQLModel, table=True):
    """A child or unborn child known to the directory."""

    __table_args__ = (
        sa.CheckConstraint(
            "date_of_birth IS NOT NULL OR expected_delivery_date IS NOT NULL",
            name="child_born_or_expected",
        ),
        sa.CheckConstraint("status IN ('active', 'archived', 'merged')", name="child_status"),
        sa.CheckConstraint("status <> 'merged' OR merged_into_id IS NOT NULL", name="child_merged_into"),
        sa.CheckConstraint(
            "NOT shielded OR (shielded_reason IS NOT NULL AND shielded_by IS NOT NULL)",
            name="child_shield_reason",
        ),
    )
    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
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
    shielded_at: datetime | None = _ts(default=None)
    archived_reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)
    version: int = 1


class ChildName(SQLModel, table=True):
    """A name a child has or had; previous names and aliases stay searchable."""

    __tablename__ = "child_name"
    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
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
    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    system: str = Field(max_length=64)
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
    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
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
    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    child_id: uuid.UUID | None = Field(default=None, foreign_key="child.id", index=True)
    name: str = Field(max_length=160)
    relationship: str = Field(max_length=40)  # mother, father, carer, foster carer, ...
    parental_responsibility: bool = False
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=254)
    address: str | None = Field(default=None, max_length=300)


class Consent(SQLModel, table=True):
    """A consent given by a parent/carer or a competent young person, until withdrawn."""

    __table_args__ = (
        sa.CheckConstraint("given_by_kind IN ('parent_carer', 'young_person')", name="consent_giver_kind"),
    )
    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    scope: str = Field(max_length=40)
    given_by_kind: str = Field(max_length=16)
    given_by_name: str = Field(max_length=160)
    related_person_id: uuid.UUID | None = Field(default=None, foreign_key="related_person.id")
    given_at: datetime = _ts()
    withdrawn_at: datetime | None = _ts(default=None)
    withdrawn_reason: str | None = Field(default=None, max_length=500)
    recorded_by: str = Field(max_length=200)


class Involvement(SQLModel, table=True):
    """A service (and maybe a named practitioner) working with a child."""

    __table_args__ = (
        sa.CheckConstraint("NOT sensitive OR consent_id IS NOT NULL", name="sensitive_has_consent"),
        sa.CheckConstraint("level_of_need BETWEEN 1 AND 4", name="involvement_level_1_4"),
        sa.CheckConstraint("status IN ('active', 'ended')", name="involvement_status"),
        sa.CheckConstraint("status <> 'ended' OR end_date IS NOT NULL", name="ended_involvement_has_end"),
        # Whether a practitioner works in a sensitive service (named on a sensitive involvement of
        # any child) is asked per card and per search hit with a CAF: one seek here. (On the
        # practitioner alone, a health visitor's thousands of involvements were read one by one:
        # 0.4 ms more per page of hits at 1,000,000 children.)
        sa.Index("ix_involvement_practitioner_sensitive", "practitioner_id", "sensitive"),
    )
    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    service_id: uuid.UUID = Field(foreign_key="service.id", index=True)
    practitioner_id: uuid.UUID | None = Field(default=None, foreign_key="practitioner.id")
    role: str = Field(max_length=80)
    level_of_need: int
    start_date: date
    end_date: date | None = None
    status: str = Field(default=InvolvementStatus.ACTIVE.value, max_length=8)
    sensitive: bool = False
    consent_id: uuid.UUID | None = Field(default=None, foreign_key="consent.id")
    source: str = Field(default="app", max_length=80)
    last_confirmed_at: datetime = _ts(default_factory=utcnow)
    recorded_by: str = Field(max_length=200)
    version: int = 1


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
    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    status: str = Field(max_length=12)
    initiator_id: uuid.UUID = Field(foreign_key="practitioner.id")
    lead_practitioner_id: uuid.UUID | None = Field(default=None, foreign_key="practitioner.id")
    consent_id: uuid.UUID | None = Field(default=None, foreign_key="consent.id")
    signalled_at: datetime = _ts(default_factory=utcnow)
    signal_expires_at: datetime | None = _ts(default=None)
    started_at: datetime | None = _ts(default=None)
    completed_at: datetime | None = _ts(default=None)
    closed_at: datetime | None = _ts(default=None)
    outcome: str | None = Field(default=None, max_length=40)
    closed_reason: str | None = Field(default=None, max_length=500)
    version: int = 1


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
    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    assessment_id: uuid.UUID = Field(foreign_key="assessment.id", index=True)
    practitioner_id: uuid.UUID = Field(foreign_key="practitioner.id")
    from_practitioner_id: uuid.UUID | None = Field(default=None, foreign_key="practitioner.id")
    reason: str = Field(max_length=500)
    assigned_by: str = Field(max_length=200)
    started_at: datetime = _ts(default_factory=utcnow)
    ended_at: datetime | None = _ts(default=None)


class Tac(SQLModel, table=True):
    """A Team Around the Child: practitioners and the family with a plan and review dates."""

    __table_args__ = (sa.CheckConstraint("status IN ('forming', 'convened', 'closed')", name="tac_status"),)
    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    child_id: uuid.UUID = Field(foreign_key="child.id", index=True)
    assessment_id: uuid.UUID = Field(foreign_key="assessment.id", unique=True)
    status: str = Field(default=TacStatus.FORMING.value, max_length=10)
    family_participating: bool = True
    convened_at: datetime | None = _ts(default=None)
    next_review_date: date | None = None
    closed_at: datetime | None = _ts(default=None)
    version: int = 1


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
    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    tac_id: uuid.UUID = Field(foreign_key="tac.id", index=True)
    practitioner_id: uuid.UUID = Field(foreign_key="practitioner.id")
    role: str = Field(max_length=80)
    joined_at: datetime = _ts(default_factory=utcnow)
    left_at: datetime | None = _ts(default=None)


# --------------------------------------------------------------------------- audit and outbox


class AuditEvent(SQLModel, table=True):
    """One entry of the append-only, hash-chained audit log."""

    __tablename__ = "audit_event"
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = _ts(index=True)
    request_id: str | None = Field(default=None, max_length=64)
    actor_subject: str = Field(max_length=200, index=True)
    actor_role: str = Field(max_length=40)
    actor_organisation: str | None = Field(default=None, max_length=200)
    client_id: str | None = Field(default=None, max_length=200)
    purpose: str | None = Field(default=None, max_length=40)
    action: str = Field(max_length=60, index=True)
    target_type: str | None = Field(default=None, max_length=40)
    target_id: str | None = Field(default=None, max_length=64, index=True)
    outcome: str = Field(max_length=20)
    detail: str | None = None  # canonical JSON: never names or other child data
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)  # HMAC-SHA256 with key_id; plain SHA-256 before the chain was keyed
    key_id: str | None = Field(default=None, max_length=16)  # the audit key (None: written before keying)


class AuditSubject(SQLModel, table=True):
    """Links an audit event to each child it concerned (a search can return several)."""

    __tablename__ = "audit_subject"
    seq: int = Field(foreign_key="audit_event.seq", primary_key=True)
    child_id: uuid.UUID = Field(primary_key=True, index=True)


class AuditHead(SQLModel, table=True):
    """The last event of the chain: the lock appends take and the anchor verify checks."""

    __tablename__ = "audit_head"
    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(max_length=64)


class Outbox(SQLModel, table=True):
    """A change to publish (e.g. to the search index), written in the same transaction."""

    id: int | None = Field(default=None, primary_key=True)
    topic: str = Field(max_length=40)
    entity_id: str = Field(max_length=64)
    created_at: datetime = _ts(default_factory=utcnow)
    processed_at: datetime | None = _ts(default=None, index=True)


class InvolvementVersion(SQLModel, table=True):
    """An involvement as it stood at one version: its history, written with each change."""

    __tablename__ = "involvement_version"
    involvement_id: uuid.UUID = Field(foreign_key="involvement.id", primary_key=True)
    version: int = Field(primary_key=True)
    child_id: uuid.UUID = Field(index=True)
    change: str = Field(max_length=20)  # record | update | end
    snapshot: str  # canonical JSON of the involvement's columns
    recorded_at: datetime = _ts(default_factory=utcnow)
    recorded_by: str = Field(max_length=200)


# --------------------------------------------------------------------------- notifications


class Subscription(SQLModel, table=True):
    """Who wants to be told about CAF, Lead Professional and shielded-record events, and where."""

    __table_args__ = (
        sa.CheckConstraint("kind IN ('webhook', 'rest-hook')", name="subscription_kind"),
        sa.CheckConstraint("status IN ('active', 'off')", name="subscription_status"),
    )
    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    owner: str = Field(max_length=200)  # the client or subject that registered it
    endpoint: str = Field(max_length=500)
    kind: str = Field(default="webhook", max_length=10)
    events: str = Field(max_length=300)  # space-separated event codes
    # keys the HMAC signature; sealed at rest (directory/sealed.py)
    secret: str | None = Field(default=None, max_length=200, sa_type=Sealed("subscription.secret"))
    status: str = Field(default="active", max_length=8)
    created_at: datetime = _ts(default_factory=utcnow)
    # as a FHIR Subscription was registered (None for subscriptions configured in code)
    reason: str | None = Field(default=None, max_length=500)
    criteria: str | None = Field(default=None, max_length=500)


class Notification(SQLModel, table=True):
    """One event for one subscriber: delivered by a worker with retries, then dead-lettered."""

    __table_args__ = (sa.UniqueConstraint("subscription_id", "audit_seq", name="notification_once"),)
    id: int | None = Field(default=None, primary_key=True)
    subscription_id: uuid.UUID = Field(foreign_key="subscription.id", index=True)
    audit_seq: int
    event: str = Field(max_length=40)
    child_id: uuid.UUID | None = None
    payload: str  # JSON, never names or other child data
    status: str = Field(default="pending", max_length=10, index=True)  # pending | delivered | dead
    attempts: int = 0
    next_attempt_at: datetime = _ts(default_factory=utcnow)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = _ts(default_factory=utcnow)
    delivered_at: datetime | None = _ts(default=None)


class Notice(SQLModel, table=True):
    """A message to one practitioner: a change someone else made to a CAF they hold.

    Read by its practitioner on their notices page or `GET /api/v1/notices`; it names the child by id
    only and carries the reason given, never the child's details.
    """

    id: uuid.UUID = Field(default_factory=_id, primary_key=True)
    practitioner_id: uuid.UUID = Field(foreign_key="practitioner.id", index=True)
    child_id: uuid.UUID = Field(foreign_key="child.id")
    caf_id: uuid.UUID | None = Field(default=None, foreign_key="assessment.id")
    action: str = Field(max_length=60)  # the audit action of the change, e.g. caf.close
    message: str = Field(max_length=500)
    reason: str | None = Field(default=None, max_length=500)
    by_subject: str = Field(max_length=200)
    by_name: str | None = Field(default=None, max_length=200)
    by_role: str = Field(max_length=40)
    by_organisation: str | None = Field(default=None, max_length=200)
    created_at: datetime = _ts(default_factory=utcnow)
    read_at: datetime | None = _ts(default=None)


class NotificationCursor(SQLModel, table=True):
    """How far the notifier has read the audit log (one row)."""

    __tablename__ = "notification_cursor"
    id: int = Field(default=1, primary_key=True)
    audit_seq: int = 0


# --------------------------------------------------------------------------- who is acting


class Actor(BaseModel):
    """Who is acting, for what purpose, in which request: passed to every use case."""

    model_config = ConfigDict(frozen=True)

    subject: str
    role: Role
    organisation: str | None = None
    display_name: str | None = None
    client_id: str | None = None
    purpose: Purpose | None = None
    request_id: str | None = None
    practitioner_id: uuid.UUID | None = None
    shield_override_reason: str | None = None  # a child-protection override for one viewing
    localities: tuple[str, ...] = ()  # locality codes the grant covers; empty: the whole authority


# --------------------------------------------------------------------------- inputs

_Text = PField(min_length=1, max_length=200)


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*")
    @classmethod
    def _dates_in_bounds(cls, value: Any) -> Any:
        return bounded(value)  # every date or date-time field of every input, one rule (directory.bounds)


class NameIn(_Input):
    given: str = PField(min_length=1, max_length=100)
    family: str = PField(min_length=1, max_length=100)
    middle: str | None = PField(default=None, max_length=100)
    use: NameUse = NameUse.OFFICIAL
    until: date | None = None


class IdentifierIn(_Input):
    system: str = PField(min_length=2, max_length=64, examples=["nhs", "upn", "local:mosaic"])
    value: str = PField(min_length=1, max_length=64)


class AddressIn(_Input):
    line1: str = PField(min_length=1, max_length=200)
    line2: str | None = PField(default=None, max_length=200)
    town: str | None = PField(default=None, max_length=100)
    postcode: str = PField(min_length=5, max_length=8)
    since: date | None = None


class RelatedPersonIn(_Input):
    name: str = PField(min_length=1, max_length=160)
    relationship: str = PField(min_length=1, max_length=40, examples=["mother", "carer"])
    parental_responsibility: bool = False
    phone: str | None = PField(default=None, max_length=40)
    email: EmailStr | None = None
    address: str | None = PField(default=None, max_length=300)


class ChildCreate(_Input):
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


class InvolvementCreate(_Input):
    """Record that a service is working with a child."""

    service_id: uuid.UUID
    practitioner_id: uuid.UUID | None = None
    role: str = PField(min_length=1, max_length=80, examples=["health visitor"])
    level_of_need: int = PField(ge=1, le=4)
    start_date: date
    sensitive: bool = False
    consent_id: uuid.UUID | None = None
    source: str = PField(default="app", max_length=80)


class InvolvementUpdate(_Input):
    """Change an involvement: who is working with the child, in what role, at what level, or end it."""

    practitioner_id: uuid.UUID | None = None
    role: str = PField(min_length=1, max_length=80)
    level_of_need: int = PField(ge=1, le=4)
    end_date: date | None = None


class PractitionerCreate(_Input):
    """A practitioner and the contact point to reach them."""

    name: str = PField(min_length=1, max_length=160)
    role: str = PField(min_length=1, max_length=80, examples=["health visitor"])
    organisation_id: uuid.UUID
    phone: str | None = PField(default=None, max_length=40)
    email: str | None = PField(default=None, max_length=254)
    active: bool = True


class InvolvementEnd(_Input):
    end_date: date
    reason: str | None = PField(default=None, max_length=500)


class ConsentCreate(_Input):
    """A consent as given by a parent/carer or a competent young person."""

    scope: ConsentScope
    given_by_kind: ConsentGiver
    given_by_name: str = PField(min_length=1, max_length=160)
    related_person_id: uuid.UUID | None = None
    given_at: datetime | None = None
    young_person_competent: bool | None = PField(
        default=None, description="Required true when a young person gives consent themselves"
    )


class ConsentWithdraw(_Input):
    reason: str = PField(min_length=1, max_length=500)


_CHANGE_REASON = PField(
    default=None,
    max_length=500,
    description="Why you are making this change: required when you do not hold the CAF (its holder "
    "is told, with this reason)",
)


class CafSignal(_Input):
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


class CafStart(_Input):
    consent_id: uuid.UUID
    reason: str | None = _CHANGE_REASON


class CafComplete(_Input):
    outcome: CafOutcome
    reason: str | None = _CHANGE_REASON


class CafClose(_Input):
    reason: str = PField(min_length=1, max_length=500)


class HandOver(_Input):
    """Hand the Lead Professional role to another practitioner."""

    to_practitioner_id: uuid.UUID
    reason: str = PField(min_length=1, max_length=500)


class TacMemberIn(_Input):
    practitioner_id: uuid.UUID
    role: str = PField(min_length=1, max_length=80)


class TacUpdate(_Input):
    """Create or change a TAC: members to add or remove, next review date."""

    add_members: list[TacMemberIn] = PField(default_factory=list, max_length=30)
    remove_practitioner_ids: list[uuid.UUID] = PField(default_factory=list, max_length=30)
    next_review_date: date | None = None
    family_participating: bool | None = None
    reason: str | None = _CHANGE_REASON


class TacConvene(_Input):
    next_review_date: date
    reason: str | None = _CHANGE_REASON


class DemographicsUpdate(_Input):
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


class MergeInto(_Input):
    """The record a duplicate is merged into."""

    into_id: uuid.UUID


class ShieldSet(_Input):
    reason: str = PField(min_length=1, max_length=500)

    @field_validator("reason")
    @classmethod
    def _no_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("give the reason the record is shielded")
        return v


class ShieldClear(_Input):
    """Why a shield is lifted (kept in the audit event of the change)."""

    reason: str = PField(min_length=1, max_length=500)

    @field_validator("reason")
    @classmethod
    def _no_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("give the reason the shield is lifted")
        return v


# --------------------------------------------------------------------------- outputs


class _Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Contact(_Output):
    """Whom to call and how."""

    name: str
    role: str | None = None
    organisation: str | None = None
    phone: str | None = None
    email: str | None = None


class NameRead(_Output):
    given: str
    middle: str | None = None
    family: str
    use: str
    until: date | None = None


class IdentifierRead(_Output):
    system: str
    value: str


class AddressRead(_Output):
    line1: str
    line2: str | None = None
    town: str | None = None
    postcode: str
    since: date | None = None


class RelatedPersonRead(_Output):
    id: uuid.UUID
    name: str
    relationship: str
    parental_responsibility: bool
    phone: str | None = None
    email: str | None = None


class InvolvementRead(_Output):
    id: uuid.UUID
    service_id: uuid.UUID
    service_name: str
    service_type: str
    tier: str
    role: str
    level_of_need: int
    start_date: date
    end_date: date | None = None
    status: str
    sensitive: bool
    source: str
    last_confirmed_at: datetime
    contact: Contact
    version: int


class CafRead(_Output):
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


class LeadProfessionalRead(_Output):
    practitioner_id: uuid.UUID
    contact: Contact
    since: datetime
    reason: str


class HandOverRead(_Output):
    from_practitioner: str | None
    to_practitioner: str
    at: datetime
    reason: str
    by: str


class TacMemberRead(_Output):
    practitioner_id: uuid.UUID
    role: str
    contact: Contact


class TacRead(_Output):
    id: uuid.UUID
    status: str
    family_participating: bool
    convened_at: datetime | None = None
    next_review_date: date | None = None
    members: list[TacMemberRead]


class ConsentRead(_Output):
    id: uuid.UUID
    scope: str
    given_by_kind: str
    given_by_name: str
    given_at: datetime
    withdrawn_at: datetime | None = None
    withdrawn_reason: str | None = None
    current: bool


class ShieldNotice(_Output):
    """What a user not entitled to a shielded record is told instead of its details."""

    message: str
    ask: Contact


class ChildCard(_Output):
    """The practitioner's view of a child: who is involved, CAF, Lead Professional, TAC."""

    id: uuid.UUID
    status: str
    names: list[NameRead]
    date_of_birth: date | None
    expected_delivery_date: date | None
    age_years: int | None
    sex: str
    identifiers: list[IdentifierRead]
    shielded: bool
    shield_notice: ShieldNotice | None = None
    address: AddressRead | None = None
    locality: str | None = None
    school: Contact | None = None
    gp_practice: Contact | None = None
    related_people: list[RelatedPersonRead] = []
    involvements: list[InvolvementRead] = []
    caf: CafRead | None = None
    lead_professional: LeadProfessionalRead | None = None
    lead_professional_history: list[HandOverRead] = []
    tac: TacRead | None = None
    consents: list[ConsentRead] = []
    highest_level_of_need: int | None = None
    merged_into_id: uuid.UUID | None = None


class ChildRef(_Output):
    """A created or changed child."""

    id: uuid.UUID
    status: str
    version: int


class AccessLogEntry(_Output):
    """One audited access to a child record."""

    seq: int
    at: datetime
    actor_subject: str
    actor_role: str
    actor_organisation: str | None
    purpose: str | None
    action: str
    outcome: str


class ServiceRead(_Output):
    id: uuid.UUID
    name: str
    service_type: str
    organisation_id: uuid.UUID
    level_of_need: int
    tier: str
    phone: str | None
    email: str | None
    sensitive: bool


class PractitionerRead(_Output):
    id: uuid.UUID
    name: str
    role: str
    organisation_id: uuid.UUID
    phone: str | None
    email: str | None


class LocalityRead(_Output):
    id: uuid.UUID
    code: str
    name: str
    team_name: str
    team_phone: str | None
    team_email: str | None


class NoticeRead(_Output):
    """A notice to the signed-in practitioner about a CAF they hold."""

    id: uuid.UUID
    child_id: uuid.UUID
    caf_id: uuid.UUID | None
    action: str
    message: str
    reason: str | None
    by_name: str | None
    by_role: str
    by_organisation: str | None
    created_at: datetime
    read_at: datetime | None
