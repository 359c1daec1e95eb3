"""The grants admin API under /api/v1/grants (list, grant, renew, suspend, reinstate, revoke, approve) and
the connected systems admin API under /api/v1/clients (list, register, read, rotate, disable)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from sqlmodel import Session

from auth import grant_admin as svc
from auth import onboarding as clients_svc
from auth import registry
from auth.deps import RequireScope, auth_state
from auth.grant_admin import GrantCreate, GrantRead, GrantRenew, GrantStatusChange
from auth.grant_rules import GrantRules
from auth.grants import LiveGrant
from auth.models import AccessGrant, GrantStatus
from auth.onboarding import ClientDisable, ClientOnboard, ClientRead, ClientRegistered, ClientRotate
from auth.policy import ADMINS
from directory.http.config import practice
from directory.http.deps import CurrentActor, SessionDep, UnitOfWorkRoute
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


# --------------------------------------------------------------------------- connected systems
# /api/v1/clients: list, register (client and grant in one step), read, rotate keys or secret,
# switch off. Directory administrators with grants.admin (auth/policy.py ROUTE_POLICIES); the work is
# auth/onboarding.py's (the same as `childindex clients ...`), every change audited.

clients_router = APIRouter(prefix="/api/v1/clients", tags=["clients"], route_class=UnitOfWorkRoute)


class ClientRotated(ClientRead):
    """A client after rotation; a secret client's new secret appears here once."""

    secret: str | None = None


@clients_router.get("", name="list_clients", response_model=list[ClientRead])
def list_clients(session: SessionDep, actor: CurrentActor) -> list[ClientRead]:
    """Every registered client with its grants (status, organisation, contact, scopes, end date)."""
    return [
        ClientRead.of(c, clients_svc.client_grants(session, c.client_id))
        for c in registry.list_clients(session)
    ]


@clients_router.post(
    "", name="register_client", status_code=status.HTTP_201_CREATED, response_model=ClientRegistered
)
def register_client(
    data: ClientOnboard, request: Request, session: SessionDep, actor: CurrentActor, rules: Rules
) -> ClientRegistered:
    """Register a connected system and its access grant in one step. A secret client's secret is in
    this answer only. The grant waits for a second administrator's approval (POST
    /api/v1/grants/{id}/approve); 409 when the client id is taken, 422 naming an unknown scope or
    what is wrong with the keys."""
    return clients_svc.onboard(
        session,
        actor=actor,
        admin_grant=_admin_grant(request),
        data=data,
        default_authority=_authority(request),
        rules=rules,
    )


@clients_router.get("/{client_id}", name="read_client", response_model=ClientRead)
def read_client(client_id: str, session: SessionDep, actor: CurrentActor) -> ClientRead:
    """One client and its grants."""
    return ClientRead.of(
        registry.get_client(session, client_id), clients_svc.client_grants(session, client_id)
    )


@clients_router.post("/{client_id}/rotate", name="rotate_client", response_model=ClientRotated)
def rotate_client(
    client_id: str, data: ClientRotate, session: SessionDep, actor: CurrentActor
) -> ClientRotated:
    """Replace the keys (give jwks or jwks_url) or, for a secret client, the secret (returned once).
    Tokens already issued keep working until they expire (minutes)."""
    client, secret = clients_svc.rotate(session, actor=actor, client_id=client_id, data=data)
    view = ClientRead.of(client, clients_svc.client_grants(session, client_id)).model_dump()
    return ClientRotated(**view, secret=secret)


@clients_router.post("/{client_id}/disable", name="disable_client", response_model=ClientRead)
def disable_client(
    client_id: str, data: ClientDisable, session: SessionDep, actor: CurrentActor
) -> ClientRead:
    """Switch a client off at once: no new tokens, and its tokens already issued are refused at
    their next use."""
    client = clients_svc.disable(session, actor=actor, client_id=client_id, data=data)
    return ClientRead.of(client, clients_svc.client_grants(session, client_id))
