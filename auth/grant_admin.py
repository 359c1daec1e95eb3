"""Managing access grants: grant, renew, suspend, reinstate, revoke, approve, list. Every change audited.

The one home of the rules every surface (the admin API, the admin pages, the operator's CLI)
goes through:

- *Reach*: an admin manages only grants they could have made: their authority, no role above
  their own, no scope they do not hold, and only within their localities (an admin limited to
  some localities manages only grants limited to those; a grant without localities covers the
  whole authority, so only a whole-authority admin manages it). The operator's CLI
  (`admin_grant=None`) already holds the database and is not limited this way.
- *Nobody changes their own access*, directly or through a client: not their own grant, and not
  (renew, reinstate, approve) the grant of a client they registered or answer for. Ending access
  (suspend, revoke) stays open to whoever answers for it.
- *Client grants* name the person responsible, who must hold a current grant with current
  training and vetting (and keep holding one: `caller_facts` checks it on every request), never
  carry an administrator's powers (`PERSONS_ONLY_*`), and start pending: a second administrator,
  not the one who made the grant, approves it before it works.
- *Dates and subjects* are validated for everyone, the CLI included (`auth.grant_rules`).
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PField
from sqlmodel import Session, col, select

from auth.errors import AuthRefused
from auth.grant_rules import GrantDay, GrantRules, GrantTime, Subject
from auth.grants import (
    PERSONS_ONLY_ROLES,
    PERSONS_ONLY_SCOPES,
    ROLE_RANK,
    ROLE_SCOPES,
    LiveGrant,
    current_grant,
)
from auth.models import AccessGrant, GrantStatus, OAuthClient, SubjectKind
from auth.scopes import unknown as unknown_scopes
from directory import audit
from directory.errors import Conflict, InvalidInput, NotAllowed, NotFound
from directory.models import Actor, Role, utcnow

AdminGrant = AccessGrant | LiveGrant | None  # None: the operator's CLI (or the development header)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class GrantCreate(_In):
    """A new access grant for a user or a client."""

    subject: Subject = PField(description="Username, e-mail address, upstream username or client id")
    subject_kind: SubjectKind = SubjectKind.USER
    role: Role
    authority: str | None = PField(default=None, max_length=120)
    organisation: str | None = PField(default=None, max_length=200)
    localities: list[str] = PField(default_factory=list, max_length=50)
    scopes: list[str] | None = PField(default=None, description="Defaults to the role's usual scopes")
    training_completed_on: GrantDay | None = None
    vetting_checked_on: GrantDay | None = None
    valid_from: GrantTime | None = None
    valid_until: GrantTime
    responsible: Subject | None = PField(
        default=None,
        description="For a system client: the person who answers for it (they need a current grant "
        "with current training and vetting)",
    )
    reason: str = PField(min_length=1, max_length=500)

    @field_validator("scopes")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        unknown = unknown_scopes(v or [])
        if unknown:
            raise ValueError(f"unknown scopes: {', '.join(unknown)}")
        return v


class GrantRenew(_In):
    """Extend a grant, recording fresh training or vetting dates if there are any."""

    valid_until: GrantTime
    training_completed_on: GrantDay | None = None
    vetting_checked_on: GrantDay | None = None
    responsible: Subject | None = PField(
        default=None,
        description="For a system client: a new person responsible (or the first, for an old grant)",
    )
    reason: str = PField(min_length=1, max_length=500)


class GrantStatusChange(_In):
    """Suspend, revoke, reinstate or approve a grant, with the reason."""

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
    responsible: str | None
    approved_by: str | None
    approved_at: datetime | None
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


# --------------------------------------------------------------------------- the rules


def _same(a: str | None, b: str | None) -> bool:
    """One subject written two ways (case) is still one person."""
    return a is not None and b is not None and a.casefold() == b.casefold()


def _within_reach(
    admin_grant: AdminGrant,
    *,
    role: Role,
    scopes: set[str],
    authority: str,
    localities: list[str],
    creating: bool,
) -> None:
    """Refuse a grant the admin could not have made: above their role, scopes, authority or localities."""
    if admin_grant is None:  # the operator's CLI: shell access to the database already
        return
    held_rank = ROLE_RANK[Role(admin_grant.role)]
    if ROLE_RANK[role] > held_rank:
        what = "grant the role" if creating else "manage a grant of the role"
        raise NotAllowed(f"You cannot {what} {role.value}: it is above your own ({admin_grant.role}).")
    extra = sorted(scopes - admin_grant.scope_set())
    if extra:
        raise NotAllowed(
            f"You cannot {'grant' if creating else 'manage a grant with'} scopes you do not hold "
            f"yourself: {', '.join(extra)}."
        )
    if authority != admin_grant.authority:
        raise NotAllowed(
            f"You can only {'grant access to' if creating else 'manage grants of'} {admin_grant.authority}."
        )
    held = admin_grant.locality_list()
    if held and (not localities or set(localities) - set(held)):
        if creating:
            raise NotAllowed(f"You can only grant access to the localities you cover: {', '.join(held)}.")
        raise NotAllowed(
            f"You cover {', '.join(held)} only, and this grant covers "
            f"{', '.join(localities) if localities else 'the whole authority'}: ask an administrator "
            "who covers all of it."
        )


def _may_manage(
    session: Session, actor: Actor, admin_grant: AdminGrant, grant: AccessGrant, *, widening: bool
) -> None:
    """Refuse a change to a grant beyond the admin's reach, to their own, or (widening) to a client's
    they registered or answer for."""
    if admin_grant is not None and _same(grant.subject, actor.subject):
        raise NotAllowed("You cannot change your own access grant; ask another administrator.")
    _within_reach(
        admin_grant,
        role=Role(grant.role),
        scopes=grant.scope_set(),
        authority=grant.authority,
        localities=grant.locality_list(),
        creating=False,
    )
    if not widening or grant.subject_kind != SubjectKind.CLIENT.value:
        return
    if _same(grant.responsible, actor.subject):
        raise NotAllowed(
            "You are the person responsible for this client, so another administrator renews, "
            "reinstates or approves its grant."
        )
    client = session.get(OAuthClient, grant.subject)
    if client is not None and _same(client.registered_by, actor.subject):
        raise NotAllowed(
            "You registered this client, so another administrator renews, reinstates or approves its grant."
        )


def _client_may_hold(role: Role, scopes: set[str]) -> None:
    if role in PERSONS_ONLY_ROLES or scopes & PERSONS_ONLY_SCOPES:
        raise NotAllowed(
            "A system client cannot administer access (the directory_admin role or the grants.admin "
            "scope): every change to who may look needs a person who answers for it."
        )


def _check_responsible(
    session: Session, subject: str, *, authority: str, rules: GrantRules, now: datetime
) -> None:
    """The person responsible for a client holds a current grant of their own, with current checks."""
    try:
        theirs = current_grant(session, subject=subject, kind=SubjectKind.USER, cfg=rules, now=now)
    except AuthRefused as exc:
        raise InvalidInput(
            f"{subject} holds no current grant as a person with current training and vetting "
            f"({exc.code.replace('-', ' ')}), so cannot be responsible for a system client.",
            field="responsible",
        ) from None
    if theirs.authority != authority:
        raise InvalidInput(
            f"{subject} holds a grant of {theirs.authority}, not {authority}: the person responsible "
            "for a client must work for the authority that grants it.",
            field="responsible",
        )


# --------------------------------------------------------------------------- use cases


def create_grant(
    session: Session,
    *,
    actor: Actor,
    admin_grant: AdminGrant,
    data: GrantCreate,
    default_authority: str,
    rules: GrantRules,
    now: datetime | None = None,
) -> AccessGrant:
    """Grant access (a client's grant starts pending); never beyond the admin's own. Audited."""
    now = now or utcnow()
    scopes, authority = _check_new_grant(
        session,
        actor=actor,
        admin_grant=admin_grant,
        data=data,
        default_authority=default_authority,
        rules=rules,
        now=now,
    )
    client = data.subject_kind == SubjectKind.CLIENT
    valid_from = data.valid_from or now
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
        valid_until=data.valid_until,
        status=(GrantStatus.PENDING if client else GrantStatus.ACTIVE).value,
        granted_by=actor.subject,
        reason=data.reason,
        responsible=data.responsible,
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
            "status": grant.status,
            "responsible": grant.responsible,
            "reason": data.reason,
        },
    )
    return grant


def _check_new_grant(
    session: Session,
    *,
    actor: Actor,
    admin_grant: AdminGrant,
    data: GrantCreate,
    default_authority: str,
    rules: GrantRules,
    now: datetime,
) -> tuple[set[str], str]:
    """The new grant's scopes and authority, once it is within the admin's reach, a client's grant
    names a current person responsible, and the checks' dates and the period are allowed."""
    if admin_grant is not None and _same(data.subject, actor.subject):
        raise NotAllowed("You cannot grant access to yourself; ask another administrator.")
    scopes = set(data.scopes if data.scopes is not None else ROLE_SCOPES[data.role])
    authority = data.authority or (admin_grant.authority if admin_grant else default_authority)
    _within_reach(
        admin_grant,
        role=data.role,
        scopes=scopes,
        authority=authority,
        localities=data.localities,
        creating=True,
    )
    if data.subject_kind == SubjectKind.CLIENT:
        _client_may_hold(data.role, scopes)
        if data.responsible is None:
            raise InvalidInput(
                "A grant for a system client names the person responsible for it (responsible).",
                field="responsible",
            )
        _check_responsible(session, data.responsible, authority=authority, rules=rules, now=now)
    elif data.responsible is not None:
        raise InvalidInput("Only a system client's grant names a person responsible.", field="responsible")
    rules.check_checks_dates(
        training=data.training_completed_on, vetting=data.vetting_checked_on, today=now.date()
    )
    rules.check_period(valid_from=data.valid_from or now, valid_until=data.valid_until, now=now)
    return scopes, authority


def get_grant(session: Session, grant_id: uuid.UUID) -> AccessGrant:
    """One grant by id."""
    grant = session.get(AccessGrant, grant_id)
    if grant is None:
        raise NotFound("There is no access grant with that id.")
    return grant


def renew_grant(
    session: Session,
    *,
    actor: Actor,
    admin_grant: AdminGrant,
    grant_id: uuid.UUID,
    data: GrantRenew,
    rules: GrantRules,
    now: datetime | None = None,
) -> AccessGrant:
    """Extend a grant; record new training/vetting dates or a client's new responsible person. Audited."""
    now = now or utcnow()
    grant = get_grant(session, grant_id)
    _may_manage(session, actor, admin_grant, grant, widening=True)
    if grant.status == GrantStatus.REVOKED:
        raise NotAllowed("A revoked grant cannot be renewed; create a new grant instead.")
    if data.valid_until <= now:
        raise InvalidInput("The new end date must be in the future.", field="valid_until")
    rules.check_checks_dates(
        training=data.training_completed_on, vetting=data.vetting_checked_on, today=now.date()
    )
    rules.check_period(valid_from=grant.valid_from, valid_until=data.valid_until, now=now)
    if grant.subject_kind == SubjectKind.CLIENT.value:
        responsible = data.responsible or grant.responsible
        if responsible is None:
            raise InvalidInput(
                "Name the person responsible for this client (responsible) to renew its grant.",
                field="responsible",
            )
        if _same(responsible, actor.subject) and admin_grant is not None:
            raise NotAllowed("You cannot make yourself responsible for a client whose grant you renew.")
        _check_responsible(session, responsible, authority=grant.authority, rules=rules, now=now)
        grant.responsible = responsible
    elif data.responsible is not None:
        raise InvalidInput("Only a system client's grant names a person responsible.", field="responsible")
    grant.valid_until = data.valid_until
    if data.training_completed_on:
        grant.training_completed_on = data.training_completed_on
    if data.vetting_checked_on:
        grant.vetting_checked_on = data.vetting_checked_on
    _touch(grant, now)
    session.add(grant)
    session.flush()
    detail: dict[str, Any] = {"valid_until": data.valid_until.isoformat(), "reason": data.reason}
    if data.responsible:
        detail["responsible"] = data.responsible
    _audit(session, actor, "grant.renew", grant, detail)
    return grant


def set_status(
    session: Session,
    *,
    actor: Actor,
    admin_grant: AdminGrant,
    grant_id: uuid.UUID,
    status: GrantStatus,
    reason: str,
    rules: GrantRules,
    now: datetime | None = None,
) -> AccessGrant:
    """Suspend, revoke or reinstate a grant; takes effect on the subject's next request. Audited."""
    now = now or utcnow()
    if status == GrantStatus.PENDING:
        raise InvalidInput("A grant cannot be put back to pending.")
    grant = get_grant(session, grant_id)
    _may_manage(session, actor, admin_grant, grant, widening=status == GrantStatus.ACTIVE)
    if grant.status == GrantStatus.REVOKED:
        raise NotAllowed("This grant is already revoked; revocation is final.")
    if grant.status == GrantStatus.PENDING and status != GrantStatus.REVOKED:
        raise Conflict(
            "This grant waits for a second administrator's approval: approve it, "
            "or revoke it to turn it down."
        )
    if status == GrantStatus.ACTIVE and grant.responsible is not None:
        _check_responsible(session, grant.responsible, authority=grant.authority, rules=rules, now=now)
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


def approve_grant(
    session: Session,
    *,
    actor: Actor,
    admin_grant: AdminGrant,
    grant_id: uuid.UUID,
    reason: str,
    rules: GrantRules,
    now: datetime | None = None,
) -> AccessGrant:
    """A second administrator approves a pending (client) grant, which then works. Audited."""
    now = now or utcnow()
    grant = get_grant(session, grant_id)
    if grant.status != GrantStatus.PENDING:
        raise Conflict(f"Only a grant waiting for approval can be approved; this one is {grant.status}.")
    _may_manage(session, actor, admin_grant, grant, widening=True)
    if _same(grant.granted_by, actor.subject):
        raise NotAllowed("You made this grant, so a second administrator approves it.")
    if grant.responsible is not None:
        _check_responsible(session, grant.responsible, authority=grant.authority, rules=rules, now=now)
    grant.status = GrantStatus.ACTIVE.value
    grant.status_reason = None
    grant.approved_by = actor.subject
    grant.approved_at = now
    _touch(grant, now)
    session.add(grant)
    session.flush()
    _audit(session, actor, "grant.approve", grant, {"reason": reason, "granted_by": grant.granted_by})
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
