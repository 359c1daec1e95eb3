"""The resource server's FastAPI side: who is calling, with which grant, allowed by which policy.

`actor_resolver` is installed as `app.state.actor_resolver`; `directory.api.deps.current_actor`
calls it for every protected route. It validates the bearer token, loads the subject's current
access grant, applies the route's policy (scopes, roles, rate limit) and the purpose of use,
and audits every refusal (outcome "denied") in a transaction of its own.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import bindparam
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from auth.config import AuthConfig
from auth.errors import AuthRefused, forbidden, unauthenticated
from auth.grants import ROLE_SCOPES, current_grant
from auth.keys import KeyStore
from auth.models import AccessGrant, SeenJti, SubjectKind
from auth.pages import PlainPages, SignInPages
from auth.policy import PUBLIC, Policy, declared_policy
from auth.ratelimit import SubjectLimiter, TrawlAlert
from auth.tokens import TokenInfo, TokenValidator
from directory import audit
from directory.api.deps import (
    DEV_ACTOR_HEADER,
    PURPOSE_HEADER,
    current_actor,
    parse_dev_actor,
    parse_purpose,
)
from directory.db import read_only
from directory.models import Actor, Practitioner, Role

SHIELD_OVERRIDE_HEADER = "X-Shield-Override-Reason"


class _Unknown(enum.StrEnum):
    """The role recorded for a refused caller who holds no usable grant."""

    NONE = "none"


@dataclass
class AuthState:
    """What the resource and authorization servers share, kept on app.state.auth."""

    cfg: AuthConfig
    engine: Engine
    keys: KeyStore
    validator: TokenValidator
    limiter: SubjectLimiter
    pages: SignInPages = field(default_factory=PlainPages)  # the app may install its own layout


def auth_state(request: Request) -> AuthState:
    """The AuthState wired by create_app."""
    return request.app.state.auth  # type: ignore[no-any-return]


def _route_policy(request: Request) -> Policy | str | None:
    route = request.scope.get("route")
    return declared_policy(route) if route is not None else None


def _refusal_actor(request: Request, subject: str, grant: AccessGrant | None, client_id: str | None) -> Actor:
    purpose = None
    try:
        purpose = parse_purpose(request.headers.get(PURPOSE_HEADER))
    except Exception:  # an unknown purpose is itself refused later; keep auditing the refusal
        purpose = None
    role: Any = Role(grant.role) if grant is not None else _Unknown.NONE
    # model_construct: a refused caller may have no role from Role; the audit records "none".
    return Actor.model_construct(
        subject=subject[:200],
        role=role,
        organisation=None,
        display_name=None,
        client_id=client_id,
        purpose=purpose,
        request_id=getattr(request.state, "request_id", None),
        practitioner_id=None,
        shield_override_reason=None,
    )


def _audit_refusal(
    request: Request,
    state: AuthState,
    exc: AuthRefused,
    *,
    subject: str,
    grant: AccessGrant | None,
    client_id: str | None,
) -> None:
    route = request.scope.get("route")
    target_type, target_id = None, None
    if "child_id" in request.path_params:
        target_type, target_id = "child", str(request.path_params["child_id"])
    try:
        uuid.UUID(str(target_id)) if target_id else None
    except ValueError:
        target_type, target_id = None, None
    audit.append_alone(
        state.engine,
        actor=_refusal_actor(request, subject, grant, client_id),
        action=f"auth.refused.{getattr(route, 'name', 'request')}"[:60],
        outcome="denied",
        target_type=target_type,
        target_id=target_id,
        detail={"code": exc.code, "status": exc.status, "method": request.method},
    )


def _bearer(request: Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated("invalid-token", "Send the access token as 'Authorization: Bearer ...'.")
    return token.strip()


# Asked on every request: built once, since building and keying a statement costs more than running it.
_PRACTITIONER_OF = select(Practitioner.id).where(Practitioner.subject == bindparam("subject"))
_REVOKED = select(SeenJti.key).where(SeenJti.key == bindparam("key"))


def _practitioner_id(session: Session, info: TokenInfo) -> uuid.UUID | None:
    claimed = info.claims.get("practitioner_id")
    if claimed:
        try:
            return uuid.UUID(str(claimed))
        except ValueError:
            return None
    if info.subject_kind != SubjectKind.USER:
        return None
    return session.exec(_PRACTITIONER_OF, params={"subject": info.subject}).first()


def check_policy(policy: Policy | str | None, *, role: Role, scopes: frozenset[str] | None) -> None:
    """Refuse (403) unless the role and, for token callers, one of the scopes fit the policy."""
    if policy == PUBLIC:
        return
    if policy is None or isinstance(policy, str):
        raise forbidden("no-policy", "This route has no access policy, so it is closed to everyone.")
    if role not in policy.roles:
        raise forbidden(
            "role-not-allowed",
            f"Your role ({role.value}) may not do this; it needs "
            f"one of: {', '.join(sorted(r.value for r in policy.roles))}.",
        )
    if scopes is not None and not (scopes & policy.scopes):
        named = policy.scopes_to_name(system=role == Role.SYSTEM)
        raise forbidden(
            "insufficient-scope",
            f"Your access token lacks the scope this needs: {' or '.join(named)}"
            f"{' (or a wider one granting the same)' if policy.hint else ''}. Ask for it when you "
            "request a token, or ask your administrator to add it to your grant.",
        )


def actor_resolver(request: Request) -> Actor:
    """Who is calling: bearer token -> current grant -> route policy -> Actor (refusals audited)."""
    state = auth_state(request)
    subject, grant, client_id = "anonymous", None, None
    try:
        token = _bearer(request)
        if token is None:
            return _dev_or_refuse(request, state)
        info = state.validator.validate(token)
        subject, client_id = info.subject, info.client_id
        with read_only(state.engine) as session:
            if info.jti and session.exec(_REVOKED, params={"key": f"revoked:{info.jti}"}).first():
                raise unauthenticated("token-revoked", "This access token was revoked; sign in again.")
            grant = current_grant(session, subject=info.subject, kind=info.subject_kind, cfg=state.cfg)
            practitioner_id = _practitioner_id(session, info)
        role = Role(grant.role)
        scopes = frozenset(info.scopes & grant.scope_set())
        policy = _route_policy(request)
        check_policy(policy, role=role, scopes=scopes)
        actor = Actor(
            subject=info.subject,
            role=role,
            organisation=grant.organisation or grant.authority,
            display_name=info.claims.get("name"),
            client_id=info.client_id,
            purpose=parse_purpose(request.headers.get(PURPOSE_HEADER)),
            request_id=getattr(request.state, "request_id", None),
            practitioner_id=practitioner_id,
            shield_override_reason=request.headers.get(SHIELD_OVERRIDE_HEADER) or None,
        )
        request.state.scopes = scopes
        request.state.grant = grant
        _rate_limit(request, state, policy, actor)
        return actor
    except AuthRefused as exc:
        _audit_refusal(request, state, exc, subject=subject, grant=grant, client_id=client_id)
        raise


def _dev_or_refuse(request: Request, state: AuthState) -> Actor:
    header = request.headers.get(DEV_ACTOR_HEADER)
    if header is None:
        raise unauthenticated(
            "no-token",
            "Sign in first: send an access token "
            "('Authorization: Bearer ...'); see /.well-known/oauth-authorization-server.",
        )
    if state.cfg.environment != "development":
        raise unauthenticated(
            "dev-header-refused",
            f"The {DEV_ACTOR_HEADER} header is refused outside development mode; send an access token.",
        )
    actor = parse_dev_actor(
        header, request.headers.get(PURPOSE_HEADER), getattr(request.state, "request_id", None)
    )
    # The development header stands in for a grant with the role's usual scopes.
    policy = _route_policy(request)
    check_policy(policy, role=actor.role, scopes=frozenset(ROLE_SCOPES[actor.role]))
    request.state.scopes = frozenset(ROLE_SCOPES[actor.role])
    _rate_limit(request, state, policy, actor)
    return actor


def _rate_limit(request: Request, state: AuthState, policy: Policy | str | None, actor: Actor) -> None:
    if not isinstance(policy, Policy) or not policy.rate_limited:
        return
    child = request.path_params.get("child_id")
    alert = state.limiter.hit(actor.subject, str(child) if child is not None else None)
    if alert is not None:
        _audit_trawl(state, actor, alert)


def note_looks(request: Request, session: Session, actor: Actor, child_ids: Iterable[uuid.UUID]) -> None:
    """Count the children a request showed (FHIR reads, searches, $match) towards trawling detection.

    The alert is appended on the request's own session: the request already holds the database
    for its audit append, so a second connection would only wait for it.
    """
    ids = [str(c) for c in child_ids]
    alert = auth_state(request).limiter.look(actor.subject, ids) if ids else None
    if alert is not None:
        audit.append(
            session, actor=actor, action="alert.trawling", outcome="alert", detail=_trawl_detail(alert)
        )


def _trawl_detail(alert: TrawlAlert) -> dict[str, int]:
    return {
        "distinct_children": alert.distinct_children,
        "looks": alert.looks,
        "window_seconds": alert.window_seconds,
    }


def _audit_trawl(state: AuthState, actor: Actor, alert: TrawlAlert) -> None:
    audit.append_alone(
        state.engine,
        actor=actor,
        action="alert.trawling",
        outcome="alert",
        detail=_trawl_detail(alert),
    )


CurrentActor = Annotated[Actor, Depends(current_actor)]


class RequireScope:
    """A dependency that declares and enforces a route's scopes (any of) and roles."""

    def __init__(
        self,
        *scopes: str,
        roles: frozenset[Role] | set[Role] | None = None,
        rate_limited: bool = False,
    ) -> None:
        self.policy = Policy(
            frozenset(scopes),
            frozenset(roles) if roles else frozenset(Role),
            rate_limited=rate_limited,
        )

    def __call__(self, request: Request, actor: CurrentActor) -> Actor:
        """Return the actor once the resolver has applied this policy (checked again here)."""
        check_policy(self.policy, role=actor.role, scopes=getattr(request.state, "scopes", None))
        return actor

    def __repr__(self) -> str:
        return f"RequireScope({', '.join(sorted(self.policy.scopes))})"
