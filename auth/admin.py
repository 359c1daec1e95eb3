"""The grants admin API under /api/v1/grants: list, grant, renew, suspend, reinstate, revoke, approve."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from sqlmodel import Session

from auth import grant_admin as svc
from auth.deps import RequireScope, auth_state
from auth.grant_admin import GrantCreate, GrantRead, GrantRenew, GrantStatusChange
from auth.grant_rules import GrantRules
from auth.grants import LiveGrant
from auth.models import AccessGrant, GrantStatus
from auth.policy import ADMINS
from directory.http.config import practice
from directory.http.deps import SessionDep, UnitOfWorkRoute
from directory.models import Actor, Role

router = APIRouter(prefix="/api/v1/grants", tags=["grants"], route_class=UnitOfWorkRoute)
GrantsAdmin = Annotated[Actor, Depends(RequireScope("grants.admin", roles=ADMINS))]


def grant_rules(request: Request) -> GrantRules:
    """The configured limits on grants (maximum length, training and vetting validity)."""
    return GrantRules.of(auth_state(request).cfg)


Rules = Annotated[GrantRules, Depends(grant_rules)]


def _admin_grant(request: Request) -> AccessGrant | LiveGrant | None:
    """The admin's own grant (None for the development header, which has no grant row)."""
    return getattr(request.state, "grant", None)


def _authority(request: Request) -> str:
    return practice(request).authority_name


@router.get("", response_model=list[GrantRead])
def list_grants(
    request: Request,
    session: SessionDep,
    actor: GrantsAdmin,
    subject: str | None = None,
    status_: Annotated[GrantStatus | None, Query(alias="status")] = None,
    role: Role | None = None,
    expiring_within_days: Annotated[int | None, Query(ge=0, le=3650)] = None,
) -> list[GrantRead]:
    """Grants of your authority, filtered by subject, status, role or 'expiring within N days'."""
    own = _admin_grant(request)
    rows = svc.list_grants(
        session,
        subject=subject,
        status=status_,
        role=role,
        expiring_within_days=expiring_within_days,
        authority=own.authority if own else None,
    )
    return [GrantRead.of(g) for g in rows]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=GrantRead)
def create_grant(
    data: GrantCreate, request: Request, session: SessionDep, actor: GrantsAdmin, rules: Rules
) -> GrantRead:
    """Grant access; you cannot grant a role, scopes or localities beyond your own. A system client's
    grant names the person responsible for it and waits for a second administrator's approval."""
    grant = svc.create_grant(
        session,
        actor=actor,
        admin_grant=_admin_grant(request),
        data=data,
        default_authority=_authority(request),
        rules=rules,
    )
    return GrantRead.of(grant)


@router.post("/{grant_id}/renew", response_model=GrantRead)
def renew_grant(
    grant_id: uuid.UUID,
    data: GrantRenew,
    request: Request,
    session: SessionDep,
    actor: GrantsAdmin,
    rules: Rules,
) -> GrantRead:
    """Extend a grant (at most CHILDINDEX_GRANT_MAX_DAYS ahead) and record fresh training or vetting dates."""
    return GrantRead.of(
        svc.renew_grant(
            session,
            actor=actor,
            admin_grant=_admin_grant(request),
            grant_id=grant_id,
            data=data,
            rules=rules,
        )
    )


def _set_status(
    request: Request,
    session: Session,
    actor: Actor,
    grant_id: uuid.UUID,
    to: GrantStatus,
    data: GrantStatusChange,
    rules: GrantRules,
) -> GrantRead:
    """The three status routes stay apart (each its own policy and documentation); this is their work."""
    return GrantRead.of(
        svc.set_status(
            session,
            actor=actor,
            admin_grant=_admin_grant(request),
            grant_id=grant_id,
            status=to,
            reason=data.reason,
            rules=rules,
        )
    )


@router.post("/{grant_id}/suspend", response_model=GrantRead)
def suspend_grant(
    grant_id: uuid.UUID,
    data: GrantStatusChange,
    request: Request,
    session: SessionDep,
    actor: GrantsAdmin,
    rules: Rules,
) -> GrantRead:
    """Suspend a grant; the subject is refused from their next request."""
    return _set_status(request, session, actor, grant_id, GrantStatus.SUSPENDED, data, rules)


@router.post("/{grant_id}/reinstate", response_model=GrantRead)
def reinstate_grant(
    grant_id: uuid.UUID,
    data: GrantStatusChange,
    request: Request,
    session: SessionDep,
    actor: GrantsAdmin,
    rules: Rules,
) -> GrantRead:
    """Lift a suspension."""
    return _set_status(request, session, actor, grant_id, GrantStatus.ACTIVE, data, rules)


@router.post("/{grant_id}/revoke", response_model=GrantRead)
def revoke_grant(
    grant_id: uuid.UUID,
    data: GrantStatusChange,
    request: Request,
    session: SessionDep,
    actor: GrantsAdmin,
    rules: Rules,
) -> GrantRead:
    """Revoke a grant for good."""
    return _set_status(request, session, actor, grant_id, GrantStatus.REVOKED, data, rules)


@router.post("/{grant_id}/approve", response_model=GrantRead)
def approve_grant(
    grant_id: uuid.UUID,
    data: GrantStatusChange,
    request: Request,
    session: SessionDep,
    actor: GrantsAdmin,
    rules: Rules,
) -> GrantRead:
    """Approve a pending (system client) grant: a second administrator, not the one who made it."""
    return GrantRead.of(
        svc.approve_grant(
            session,
            actor=actor,
            admin_grant=_admin_grant(request),
            grant_id=grant_id,
            reason=data.reason,
            rules=rules,
        )
    )
