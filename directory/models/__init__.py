"""The directory's tables (SQLModel) and the pydantic shapes that go in and out of the domain, by
domain word; importing this package registers every table with SQLModel's metadata (Alembic's
autogenerate and `create_schema` see them all).

    vocabulary     roles, purposes, statuses; the clock
    base           UTC time columns, ids, the base classes of inputs and outputs
    actor          who is acting
    catalogue      localities, organisations, services, practitioners; a contact
    children       a child's record: names, identifiers, addresses, related people
    details        a change to a child's details; the versions of a record
    consent        consents
    involvements   involvements and their versions
    caf            the CAF, its Lead Professional, its Team Around the Child
    card           the involvement card
    audit          the audit log's tables
    outbox         changes to publish to the search index
    notifications  subscriptions, notifications, notices
    merge          merges of duplicate records and each value they moved
    lifecycle      archive, death, move away, purge; the sealed adoption link
    duplicates     the duplicates report, kept; pairs decided to be two children
    bulk           FHIR Bulk Data exports
"""

from __future__ import annotations

from directory.models.actor import Actor, LocalityReach
from directory.models.audit import AccessLogEntry, AuditEvent, AuditHead, AuditSubject
from directory.models.base import UTCDateTime
from directory.models.bulk import BulkExport
from directory.models.caf import (
    Assessment,
    CafClose,
    CafComplete,
    CafRead,
    CafSignal,
    CafStart,
    HandOver,
    HandOverRead,
    LeadProfessionalAssignment,
    LeadProfessionalRead,
    Tac,
    TacConvene,
    TacMember,
    TacMemberIn,
    TacMemberRead,
    TacRead,
    TacUpdate,
)
from directory.models.card import ChildCard, ShieldNotice
from directory.models.catalogue import (
    Contact,
    Locality,
    LocalityArea,
    LocalityRead,
    Organisation,
    Practitioner,
    PractitionerCreate,
    PractitionerRead,
    Service,
    ServiceLocality,
    ServiceRead,
)
from directory.models.children import (
    AddressIn,
    AddressRead,
    Child,
    ChildAddress,
    ChildCreate,
    ChildIdentifier,
    ChildName,
    ChildRef,
    DemographicsUpdate,
    IdentifierIn,
    IdentifierRead,
    NameIn,
    NameRead,
    RelatedPerson,
    RelatedPersonIn,
    RelatedPersonRead,
    ShieldClear,
    ShieldSet,
)
from directory.models.consent import Consent, ConsentCreate, ConsentRead, ConsentWithdraw
from directory.models.details import (
    ChildChange,
    ChildVersion,
    ChildVersionRead,
    ChildVersionRef,
    OfficialNameIn,
    OtherNameIn,
    RelatedPersonEnd,
    ResponsibilityChange,
)
from directory.models.involvements import (
    Involvement,
    InvolvementCreate,
    InvolvementEnd,
    InvolvementRead,
    InvolvementUpdate,
    InvolvementVersion,
)
from directory.models.merge import ChildMerge, MergeMove, MergeRead, MergeRequest, UnmergeRequest
from directory.models.notifications import Notice, NoticeRead, Notification, NotificationCursor, Subscription
from directory.models.outbox import Outbox
from directory.models.panel import FrontDoorNotice, PanelReferral, PanelSuggestion, StepUp
from directory.models.requests import (
    CafRequest,
    JoinAsk,
    RequestAnswer,
    RequestKind,
    RequestRead,
    RequestStatus,
    TacInvite,
)
from directory.models.reviews import MatchReview, ReviewStatus
from directory.models.vocabulary import (
    OPEN_CAF_STATUSES,
    CafOutcome,
    CafStatus,
    ConsentGiver,
    ConsentScope,
    InvolvementStatus,
    NameUse,
    OrganisationKind,
    Purpose,
    RecordStatus,
    Role,
    SensitiveCategory,
    ServiceTier,
    Sex,
    TacStatus,
    utcnow,
)

__all__ = [
    "CafRequest",
    "JoinAsk",
    "RequestAnswer",
    "RequestKind",
    "RequestRead",
    "RequestStatus",
    "TacInvite",
    "BulkExport",
    "AccessLogEntry",
    "MatchReview",
    "ReviewStatus",
    "Actor",
    "AddressIn",
    "AddressRead",
    "Assessment",
    "AuditEvent",
    "AuditHead",
    "AuditSubject",
    "CafClose",
    "CafComplete",
    "CafOutcome",
    "CafRead",
    "CafSignal",
    "CafStart",
    "CafStatus",
    "Child",
    "ChildAddress",
    "ChildCard",
    "ChildChange",
    "ChildCreate",
    "ChildIdentifier",
    "ChildMerge",
    "ChildName",
    "ChildRef",
    "ChildVersion",
    "ChildVersionRead",
    "ChildVersionRef",
    "Consent",
    "ConsentCreate",
    "ConsentGiver",
    "ConsentRead",
    "ConsentScope",
    "ConsentWithdraw",
    "Contact",
    "DemographicsUpdate",
    "HandOver",
    "HandOverRead",
    "IdentifierIn",
    "IdentifierRead",
    "Involvement",
    "InvolvementCreate",
    "InvolvementEnd",
    "InvolvementRead",
    "InvolvementStatus",
    "InvolvementUpdate",
    "InvolvementVersion",
    "LeadProfessionalAssignment",
    "LeadProfessionalRead",
    "Locality",
    "LocalityArea",
    "LocalityRead",
    "LocalityReach",
    "MergeMove",
    "MergeRead",
    "MergeRequest",
    "NameIn",
    "NameRead",
    "NameUse",
    "Notice",
    "NoticeRead",
    "Notification",
    "OfficialNameIn",
    "OtherNameIn",
    "NotificationCursor",
    "OPEN_CAF_STATUSES",
    "Organisation",
    "OrganisationKind",
    "Outbox",
    "Practitioner",
    "PractitionerCreate",
    "PractitionerRead",
    "Purpose",
    "RecordStatus",
    "ResponsibilityChange",
    "RelatedPerson",
    "RelatedPersonEnd",
    "RelatedPersonIn",
    "RelatedPersonRead",
    "Role",
    "SensitiveCategory",
    "Service",
    "ServiceLocality",
    "ServiceRead",
    "ServiceTier",
    "Sex",
    "ShieldClear",
    "ShieldNotice",
    "ShieldSet",
    "Subscription",
    "Tac",
    "TacConvene",
    "TacMember",
    "TacMemberIn",
    "TacMemberRead",
    "TacRead",
    "TacStatus",
    "TacUpdate",
    "UTCDateTime",
    "UnmergeRequest",
    "utcnow",
]

# the life cycle of a record (issue #22 item 5) and the sealed adoption link (item 4)
from directory.models.lifecycle import (  # noqa: E402
    AdoptionCreate,
    AdoptionLink,
    AdoptionRead,
    ArchiveReason,
    AuditNote,
    ChildLifecycle,
    DeathRecord,
    DeathSource,
    LifecycleRead,
    MoveAway,
)

__all__ += [
    "AdoptionCreate",
    "AdoptionLink",
    "AdoptionRead",
    "ArchiveReason",
    "AuditNote",
    "ChildLifecycle",
    "DeathRecord",
    "DeathSource",
    "LifecycleRead",
    "MoveAway",
]

# the duplicates report, kept (issue #22 item 3)
from directory.models.duplicates import DuplicatePairRow, DuplicateRun, NotDuplicate  # noqa: E402

__all__ += ["DuplicatePairRow", "DuplicateRun", "NotDuplicate"]
__all__ += ["FrontDoorNotice", "PanelReferral", "PanelSuggestion", "StepUp"]

# the TAC's plan: actions and reviews (issue #18 item 6)
from directory.models.plan import (  # noqa: E402
    ActionChange,
    ActionCreate,
    ActionRead,
    ActionStatus,
    PlanArea,
    ReviewCreate,
    ReviewOutcome,
    ReviewRead,
    TacAction,
    TacReview,
)

__all__ += [
    "ActionChange",
    "ActionCreate",
    "ActionRead",
    "ActionStatus",
    "PlanArea",
    "ReviewCreate",
    "ReviewOutcome",
    "ReviewRead",
    "TacAction",
    "TacReview",
]
