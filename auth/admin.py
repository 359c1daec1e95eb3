"""The grants admin API under /api/v1/grants: list, grant, renew, suspend, reinstate, revoke."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from sqlmodel import Session

from auth import grants as svc
from auth.deps import RequireScope
from auth.grants import GrantCreate, GrantRead, GrantRenew, GrantStatusChange, LiveGrant
from auth.models import AccessGrant, GrantStatus
from auth.policy import ADMINS
from directory.api.deps import SessionDep, UnitOfWorkRoute
from directory.models import Actor, Role

router = APIRouter(prefix="/api/v1/grants", tags=["grants"], route_class=UnitOfWorkRoute)
GrantsAdmin = Annotated[Actor, Depends(RequireScope("grants.admin", roles=ADMINS))]


def _admin_grant(request: Request) -> AccessGrant | LiveGrant | None:
    """The admin's own grant (None for the development header, which has no grant row)."""
    return getattr(request.state, "grant", None)


def _authority(request: Request) -> str:
    return str(request.app.state.settings.authority_name)


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
def create_grant(data: GrantCreate, request: Request, session: SessionDep, actor: GrantsAdmin) -> GrantRead:
    """Grant access; you cannot grant a role, scopes or localities beyond your own."""
    grant = svc.create_grant(
        session,
        actor=actor,
        admin_grant=_admin_grant(request),
        data=data,
        default_authority=_authority(request),
    )
    return GrantRead.of(grant)


@router.post("/{grant_id}/renew", response_model=GrantRead)
def renew_grant(
    grant_id: uuid.UUID, data: GrantRenew, request: Request, session: SessionDep, actor: GrantsAdmin
) -> GrantRead:
    """Extend a grant and record fresh training or vetting dates."""
    return GrantRead.of(
        svc.renew_grant(session, actor=actor, admin_grant=_admin_grant(request), grant_id=grant_id, data=data)
    )


def _set_status(
    request: Request,
    session: Session,
    actor: Actor,
    grant_id: uuid.UUID,
    to: GrantStatus,
    data: GrantStatusChange,
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
        )
    )


@router.post("/{grant_id}/suspend", response_model=GrantRead)
def suspend_grant(
    grant_id: uuid.UUID,
    data: GrantStatusChange,
    request: Request,
    session: SessionDep,
    actor: GrantsAdmin,
) -> GrantRead:
    """Suspend a grant; the subject is refused from their next request."""
    return _set_status(request, session, actor, grant_id, GrantStatus.SUSPENDED, data)


@router.post("/{grant_id}/reinstate", response_model=GrantRead)
def reinstate_grant(
    grant_id: uuid.UUID,
    data: GrantStatusChange,
    request: Request,
    session: SessionDep,
    actor: GrantsAdmin,
) -> GrantRead:
    """Lift a suspension."""
    return _set_status(request, session, actor, grant_id, GrantStatus.ACTIVE, data)


@router.post("/{grant_id}/revoke", response_model=GrantRead)
def revoke_grant(
    grant_id: uuid.UUID,
    data: GrantStatusChange,
    request: Request,
    session: SessionDep,
    actor: GrantsAdmin,
) -> GrantRead:
    """Revoke a grant for good."""
    return _set_status(request, session, actor, grant_id, GrantStatus.REVOKED, data)
