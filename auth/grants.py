"""Access grants: find a subject's current grant (or say why there is none) and manage grants."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PField
from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from auth.config import SUPPORTED_SCOPES, AuthConfig
from auth.errors import AuthRefused, forbidden
from auth.models import AccessGrant, GrantStatus, SeenJti, SubjectKind
from directory import audit
from directory.db import Prepared, Readable
from directory.errors import InvalidInput, NotAllowed, NotFound
from directory.models import Actor, Practitioner, Role, utcnow

# How much a role may do; an admin may grant a role up to their own rank, never above it.
ROLE_RANK: dict[Role, int] = {
    Role.PRACTITIONER: 1,
    Role.LOCAL_DELIVERY_TEAM: 1,
    Role.AUDITOR: 1,
    Role.SYSTEM: 1,
    Role.DESIGNATED_PRACTITIONER: 2,
    Role.CHILD_PROTECTION: 2,
    Role.DIRECTORY_ADMIN: 3,
}

# The scopes a role is normally granted (the demo, the dev header and the admin UI default).
ROLE_SCOPES: dict[Role, tuple[str, ...]] = {
    Role.PRACTITIONER: ("directory.search", "directory.write"),
    Role.DESIGNATED_PRACTITIONER: ("directory.search", "directory.write", "audit.read"),
    Role.CHILD_PROTECTION: ("directory.search", "directory.write"),
    Role.LOCAL_DELIVERY_TEAM: ("directory.search", "directory.write"),
    Role.DIRECTORY_ADMIN: ("directory.search", "directory.write", "grants.admin", "audit.read"),
    Role.AUDITOR: ("audit.read", "directory.search"),
    Role.SYSTEM: ("system/Patient.rs", "system/EpisodeOfCare.rs", "directory.search"),
}

ASK_ADMIN = "Ask your directory administrator"


def _d(value: datetime | date) -> str:
    return value.strftime("%d %B %Y")


_WHOSE = (
    col(AccessGrant.subject) == bindparam("subject"),
    col(AccessGrant.subject_kind) == bindparam("kind"),
)
_LIVE = (  # the grants that let their subject in `now`...
    col(AccessGrant.status) == GrantStatus.ACTIVE.value,
    col(AccessGrant.valid_from) <= bindparam("now"),
    col(AccessGrant.valid_until) > bindparam("now"),
)
_LIVE_FIRST = (col(AccessGrant.valid_until).desc(), col(AccessGrant.updated_at).desc())  # ...the one
_MINE = select(AccessGrant).where(*_WHOSE)
_LIVE_GRANT = _MINE.where(*_LIVE).order_by(*_LIVE_FIRST).limit(1)
_LATEST_GRANT = _MINE.order_by(col(AccessGrant.updated_at).desc()).limit(1)


@dataclass(frozen=True)
class LiveGrant:
    """What a request needs of the caller's live grant (see `caller_facts`)."""

    id: uuid.UUID
    role: str
    authority: str
    organisation: str | None
    scopes: str
    localities: str
    training_completed_on: date | None
    vetting_checked_on: date | None

    def scope_set(self) -> set[str]:
        """The grant's scopes as a set."""
        return set(self.scopes.split())

    def locality_list(self) -> list[str]:
        """The locality codes the grant covers (empty: all of the authority)."""
        return list(json.loads(self.localities or "[]"))


@dataclass(frozen=True)
class CallerFacts:
    """A caller's live grant, whether their token was revoked, and the practitioner they are."""

    grant: LiveGrant
    revoked: bool
    practitioner_id: uuid.UUID | None


_G = AccessGrant.__table__  # type: ignore[attr-defined]
_PRACTITIONER = Practitioner.__table__  # type: ignore[attr-defined]
_REVOKED_TOKENS = SeenJti.__table__  # type: ignore[attr-defined]
_CALLER_FACTS = Prepared(
    sa.select(
        _G.c.id,
        _G.c.role,
        _G.c.authority,
        _G.c.organisation,
        _G.c.scopes,
        _G.c.localities,
        _G.c.training_completed_on,
        _G.c.vetting_checked_on,
        sa.exists().where(_REVOKED_TOKENS.c.key == bindparam("revoked_key")).label("revoked"),
        sa.select(_PRACTITIONER.c.id)
        .where(_PRACTITIONER.c.subject == bindparam("subject"))
        .scalar_subquery()
        .label("practitioner_id"),
    )
    .where(*_WHOSE, *_LIVE)  # the live grant exactly as _LIVE_GRANT picks it
    .order_by(*_LIVE_FIRST)
    .limit(1)
)


def caller_facts(
    conn: Readable, *, subject: str, kind: SubjectKind, jti: str | None, now: datetime
) -> CallerFacts | None:
    """Everything a request checks about its caller, in one query: the live grant (as `current_grant`
    picks it), whether the token `jti` was revoked, and the practitioner with this sign-in subject.
    None when there is no live grant: `current_grant` then says why, for the refusal."""
    rows = _CALLER_FACTS.rows(
        conn,
        {"subject": subject, "kind": kind.value, "now": now, "revoked_key": f"revoked:{jti}" if jti else ""},
    )
    if not rows:
        return None
    *live, revoked, practitioner_id = rows[0]
    return CallerFacts(
        grant=LiveGrant(*live), revoked=bool(jti) and bool(revoked), practitioner_id=practitioner_id
    )


def current_grant(
    session: Session,
    *,
    subject: str,
    kind: SubjectKind,
    cfg: AuthConfig,
    now: datetime | None = None,
) -> AccessGrant:
    """The grant that lets this subject in now, or a 403 with a reason they can act on."""
    now = now or utcnow()
    # Every request asks this: the database picks the one live grant, and the statements are
    # built once (building and keying a statement cost more than running it).
    who = {"subject": subject, "kind": kind.value}
    grant = session.exec(_LIVE_GRANT, params={**who, "now": now}).first()
    if grant is None:
        latest = session.exec(_LATEST_GRANT, params=who).first()
        if latest is None:
            raise forbidden(
                "no-grant",
                f"You have no access grant for this directory. {ASK_ADMIN} for "
                "one; you will need your information-sharing training and vetting dates.",
            )
        raise _why_not(latest, now)
    if kind == SubjectKind.USER:
        check_checks(grant, cfg=cfg, today=now.date())
    return grant


def _why_not(grant: AccessGrant, now: datetime) -> AuthRefused:
    why = f" ({grant.status_reason})" if grant.status_reason else ""
    if grant.status == GrantStatus.REVOKED:
        return forbidden(
            "grant-revoked",
            f"Your access grant was revoked on {_d(grant.updated_at)}"
            f"{why}. {ASK_ADMIN} if you need access again.",
        )
    if grant.status == GrantStatus.SUSPENDED:
        return forbidden(
            "grant-suspended",
            f"Your access grant is suspended since "
            f"{_d(grant.updated_at)}{why}. {ASK_ADMIN} to lift the suspension.",
        )
    if grant.valid_from > now:
        return forbidden("grant-not-yet-valid", f"Your access grant starts on {_d(grant.valid_from)}.")
    return forbidden(
        "grant-expired",
        f"Your access grant expired on {_d(grant.valid_until)}. {ASK_ADMIN} to renew it.",
    )


def check_checks(grant: AccessGrant | LiveGrant, *, cfg: AuthConfig, today: date) -> None:
    """Refuse a person whose information-sharing training or vetting is missing or out of date."""
    if grant.training_completed_on is None:
        raise forbidden(
            "training-missing",
            "There is no record of your information-sharing "
            f"training. Complete it, then {ASK_ADMIN.lower()} to record the date.",
        )
    if grant.training_completed_on < today - timedelta(days=cfg.training_valid_days):
        raise forbidden(
            "training-expired",
            "Your information-sharing training "
            f"({_d(grant.training_completed_on)}) is older than "
            f"{cfg.training_valid_days} days. Refresh it, then {ASK_ADMIN.lower()} "
            "to record the new date.",
        )
    if grant.vetting_checked_on is None:
        raise forbidden(
            "vetting-missing",
            f"There is no record of your vetting (DBS) check. {ASK_ADMIN} to record it once it is done.",
        )
    if grant.vetting_checked_on < today - timedelta(days=cfg.vetting_valid_days):
        raise forbidden(
            "vetting-expired",
            f"Your vetting check ({_d(grant.vetting_checked_on)}) "
            f"is older than {cfg.vetting_valid_days} days. {ASK_ADMIN} to renew it.",
        )


# --------------------------------------------------------------------------- admin inputs/outputs


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class GrantCreate(_In):
    """A new access grant for a user or a client."""

    subject: str = PField(min_length=1, max_length=200)
    subject_kind: SubjectKind = SubjectKind.USER
    role: Role
    authority: str | None = PField(default=None, max_length=120)
    organisation: str | None = PField(default=None, max_length=200)
    localities: list[str] = PField(default_factory=list, max_length=50)
    scopes: list[str] | None = PField(default=None, description="Defaults to the role's usual scopes")
    training_completed_on: date | None = None
    vetting_checked_on: date | None = None
    valid_from: datetime | None = None
    valid_until: datetime
    reason: str = PField(min_length=1, max_length=500)

    @field_validator("scopes")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        unknown = sorted(set(v or []) - set(SUPPORTED_SCOPES))
        if unknown:
            raise ValueError(f"unknown scopes: {', '.join(unknown)}")
        return v


class GrantRenew(_In):
    """Extend a grant, recording fresh training or vetting dates if there are any."""

    valid_until: datetime
    training_completed_on: date | None = None
    vetting_checked_on: date | None = None
    reason: str = PField(min_length=1, max_length=500)


class GrantStatusChange(_In):
    """Suspend, revoke or reinstate a grant, with the reason."""

    reason: str = PField(min_length=1, max_length=500)


class GrantRead(BaseModel):
    """An access grant as admins see it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    subject: str
    subject_kind: str
    role: str
    authority: str
    organisation: str | None
    localities: list[str]
    scopes: list[str]
    training_completed_on: date | None
    vetting_checked_on: date | None
    valid_from: datetime
    valid_until: datetime
    status: str
    status_reason: str | None
    granted_by: str
    reason: str
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, grant: AccessGrant) -> GrantRead:
        """The read shape of a grant row."""
        data: dict[str, Any] = grant.model_dump()
        data["localities"] = grant.locality_list()
        data["scopes"] = sorted(grant.scope_set())
        return cls.model_validate(data)


# --------------------------------------------------------------------------- admin use cases


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _check_not_more_than_held(
    *,
    admin_grant: AccessGrant | LiveGrant | None,
    role: Role,
    scopes: set[str],
    authority: str,
    localities: list[str],
) -> None:
    if admin_grant is None:  # the operator's CLI: shell access to the database already
        return
    held_rank = ROLE_RANK[Role(admin_grant.role)]
    if ROLE_RANK[role] > held_rank:
        raise NotAllowed(
            f"You cannot grant the role {role.value}: it is above your own ({admin_grant.role})."
        )
    extra = sorted(scopes - admin_grant.scope_set())
    if extra:
        raise NotAllowed(f"You cannot grant scopes you do not hold yourself: {', '.join(extra)}.")
    if authority != admin_grant.authority:
        raise NotAllowed(f"You can only grant access to {admin_grant.authority}.")
    held_localities = admin_grant.locality_list()
    if held_localities and (not localities or set(localities) - set(held_localities)):
        raise NotAllowed(
            f"You can only grant access to the localities you cover: {', '.join(held_localities)}."
        )


def create_grant(
    session: Session,
    *,
    actor: Actor,
    admin_grant: AccessGrant | LiveGrant | None,
    data: GrantCreate,
    default_authority: str,
    now: datetime | None = None,
) -> AccessGrant:
    """Grant access; an admin cannot grant a role, scopes or places beyond their own. Audited."""
    now = now or utcnow()
    if data.subject == actor.subject and admin_grant is not None:
        raise NotAllowed("You cannot grant access to yourself; ask another administrator.")
    scopes = set(data.scopes if data.scopes is not None else ROLE_SCOPES[data.role])
    authority = data.authority or (admin_grant.authority if admin_grant else default_authority)
    _check_not_more_than_held(
        admin_grant=admin_grant,
        role=data.role,
        scopes=scopes,
        authority=authority,
        localities=data.localities,
    )
    valid_from = _aware(data.valid_from) if data.valid_from else now
    valid_until = _aware(data.valid_until)
    if valid_until <= valid_from:
        raise InvalidInput("valid_until must be after valid_from.")
    grant = AccessGrant(
        subject=data.subject,
        subject_kind=data.subject_kind.value,
        role=data.role.value,
        authority=authority,
        organisation=data.organisation,
        localities=json.dumps(data.localities),
        scopes=" ".join(sorted(scopes)),
        training_completed_on=data.training_completed_on,
        vetting_checked_on=data.vetting_checked_on,
        valid_from=valid_from,
        valid_until=valid_until,
        granted_by=actor.subject,
        reason=data.reason,
        created_at=now,
        updated_at=now,
    )
    session.add(grant)
    session.flush()
    _audit(
        session,
        actor,
        "grant.create",
        grant,
        {
            "role": grant.role,
            "scopes": grant.scopes,
            "subject": grant.subject,
            "reason": data.reason,
        },
    )
    return grant


def get_grant(session: Session, grant_id: uuid.UUID) -> AccessGrant:
    """One grant by id."""
    grant = session.get(AccessGrant, grant_id)
    if grant is None:
        raise NotFound("There is no access grant with that id.")
    return grant


def _may_manage(actor: Actor, admin_grant: AccessGrant | LiveGrant | None, grant: AccessGrant) -> None:
    if admin_grant is None:
        return
    if grant.subject == actor.subject:
        raise NotAllowed("You cannot change your own access grant; ask another administrator.")
    if grant.authority != admin_grant.authority:
        raise NotAllowed(f"You can only manage grants of {admin_grant.authority}.")
    if ROLE_RANK[Role(grant.role)] > ROLE_RANK[Role(admin_grant.role)]:
        raise NotAllowed("You cannot manage a grant above your own role.")


def renew_grant(
    session: Session,
    *,
    actor: Actor,
    admin_grant: AccessGrant | LiveGrant | None,
    grant_id: uuid.UUID,
    data: GrantRenew,
    now: datetime | None = None,
) -> AccessGrant:
    """Extend a grant (and record new training/vetting dates). Audited."""
    now = now or utcnow()
    grant = get_grant(session, grant_id)
    _may_manage(actor, admin_grant, grant)
    if grant.status == GrantStatus.REVOKED:
        raise NotAllowed("A revoked grant cannot be renewed; create a new grant instead.")
    until = _aware(data.valid_until)
    if until <= now:
        raise InvalidInput("The new end date must be in the future.")
    grant.valid_until = until
    if data.training_completed_on:
        grant.training_completed_on = data.training_completed_on
    if data.vetting_checked_on:
        grant.vetting_checked_on = data.vetting_checked_on
    _touch(grant, now)
    session.add(grant)
    session.flush()
    _audit(
        session,
        actor,
        "grant.renew",
        grant,
        {"valid_until": until.isoformat(), "reason": data.reason},
    )
    return grant


def set_status(
    session: Session,
    *,
    actor: Actor,
    admin_grant: AccessGrant | LiveGrant | None,
    grant_id: uuid.UUID,
    status: GrantStatus,
    reason: str,
    now: datetime | None = None,
) -> AccessGrant:
    """Suspend, revoke or reinstate a grant; takes effect on the subject's next request. Audited."""
    now = now or utcnow()
    grant = get_grant(session, grant_id)
    _may_manage(actor, admin_grant, grant)
    if grant.status == GrantStatus.REVOKED:
        raise NotAllowed("This grant is already revoked; revocation is final.")
    grant.status = status.value
    grant.status_reason = reason
    _touch(grant, now)
    session.add(grant)
    session.flush()
    action = {
        GrantStatus.SUSPENDED: "grant.suspend",
        GrantStatus.REVOKED: "grant.revoke",
        GrantStatus.ACTIVE: "grant.reinstate",
    }[status]
    _audit(session, actor, action, grant, {"reason": reason})
    return grant


def list_grants(
    session: Session,
    *,
    subject: str | None = None,
    status: GrantStatus | None = None,
    role: Role | None = None,
    expiring_within_days: int | None = None,
    authority: str | None = None,
    now: datetime | None = None,
) -> list[AccessGrant]:
    """Grants, filtered; 'expiring within N days' lists active grants ending in that window."""
    now = now or utcnow()
    stmt = select(AccessGrant)
    if subject:
        stmt = stmt.where(AccessGrant.subject == subject)
    if status:
        stmt = stmt.where(AccessGrant.status == status.value)
    if role:
        stmt = stmt.where(AccessGrant.role == role.value)
    if authority:
        stmt = stmt.where(AccessGrant.authority == authority)
    if expiring_within_days is not None:
        stmt = stmt.where(
            AccessGrant.status == GrantStatus.ACTIVE.value,
            col(AccessGrant.valid_until) > now,
            col(AccessGrant.valid_until) <= now + timedelta(days=expiring_within_days),
        )
    return list(session.exec(stmt.order_by(col(AccessGrant.valid_until), col(AccessGrant.subject))).all())


def _touch(grant: AccessGrant, now: datetime) -> None:
    grant.updated_at = now
    grant.version += 1


def _audit(session: Session, actor: Actor, action: str, grant: AccessGrant, detail: dict[str, Any]) -> None:
    audit.append(
        session,
        actor=actor,
        action=action,
        target_type="grant",
        target_id=str(grant.id),
        detail=detail,
    )
