"""The resource server's FastAPI side: who is calling, with which grant, allowed by which policy.

`actor_resolver` is installed as `app.state.actor_resolver`; `directory.http.deps.current_actor`
calls it for every protected route. It validates the bearer token, loads the subject's current
access grant, applies the route's policy (scopes, roles, rate limit) and the purpose of use (one
the role may give: auth/purposes.py), and audits every refusal (outcome "denied") in a
transaction of its own. The children each read shows count towards trawling detection
(`note_looks`, `ActorResolver.alooked`), shared by all processes (auth/ratelimit.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy import bindparam
from sqlmodel import Session, select

from auth.actors import audit_actor
from auth.errors import AuthRefused, unauthenticated
from auth.grants import PERSONS_ONLY_SCOPES, ROLE_SCOPES, LiveGrant, caller_facts, check_checks, current_grant
from auth.models import AccessGrant, SeenJti, SubjectKind
from auth.policy import Policy, check_policy, declared_policy
from auth.policy import RequireScope as RequireScope  # where the routes' callers import it from
from auth.purposes import check_purpose
from auth.ratelimit import TrawlAlert
from auth.state import AuthState as AuthState
from auth.state import auth_state as auth_state
from auth.tokens import TokenInfo
from directory import audit
from directory.db import driver_reader, read_only
from directory.http.deps import (
    DEV_ACTOR_HEADER,
    PURPOSE_HEADER,
    current_actor,
    parse_dev_actor,
    parse_purpose,
)
from directory.http.lanes import upstream_lane
from directory.models import Actor, Practitioner, Role, utcnow

SHIELD_OVERRIDE_HEADER = "X-Shield-Override-Reason"


# Route objects are not hashable: keyed by id, each kept alive by its entry so the id stays its own.
_POLICY_OF: dict[int, tuple[Any, Policy | str | None]] = {}


def _route_policy(request: Request) -> Policy | str | None:
    """The matched route's policy, found once per route (its dependencies do not change)."""
    route = request.scope.get("route")
    if route is None:
        return None
    known = _POLICY_OF.get(id(route))
    if known is None:
        known = _POLICY_OF[id(route)] = (route, declared_policy(route))
    return known[1]


def _refusal_actor(
    request: Request, subject: str, grant: AccessGrant | LiveGrant | None, client_id: str | None
) -> Actor:
    purpose = None
    try:
        purpose = parse_purpose(request.headers.get(PURPOSE_HEADER))
    except Exception:  # an unknown purpose is itself refused later; keep auditing the refusal
        purpose = None
    # A refused caller may have no role from Role; the audit records "none".
    return audit_actor(
        subject,
        client_id=client_id,
        role=Role(grant.role) if grant is not None else None,
        purpose=purpose,
        request_id=getattr(request.state, "request_id", None),
    )


def _audit_refusal(
    request: Request,
    state: AuthState,
    exc: AuthRefused,
    *,
    subject: str,
    grant: AccessGrant | LiveGrant | None,
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


def _practitioner_id(info: TokenInfo, by_subject: Callable[[], uuid.UUID | None]) -> uuid.UUID | None:
    # Only our own tokens carry one (from the local account); any other caller is found by subject.
    if info.practitioner_id is not None:
        return info.practitioner_id
    if info.subject_kind != SubjectKind.USER:
        return None
    return by_subject()


def _grant_of(
    state: AuthState, info: TokenInfo, caller: _Caller
) -> tuple[AccessGrant | LiveGrant, uuid.UUID | None]:
    """The caller's live grant and practitioner id, or the refusal that says why not.

    Every request asks this, so it is one query (`caller_facts`), which also says whether access
    ended since the token was issued: the account or the token's client switched off, the sign-in
    ended, a client's responsible person's access lapsed. Only a caller it finds no live grant for,
    or whose token was revoked, is looked at again, to be told why.
    """
    now = utcnow()
    client_id = info.client_id if info.local else None  # an external token's azp is not our client
    with driver_reader(state.engine) as conn:
        facts = caller_facts(
            conn,
            subject=info.subject,
            kind=info.subject_kind,
            jti=info.jti,
            now=now,
            client_id=client_id,
            sid=info.sid,
            validity=state.cfg,
        )
    if facts is not None and not facts.revoked:
        caller.grant = facts.grant
        ended = facts.ended(kind=info.subject_kind, client_id=client_id)
        if ended is not None:
            raise ended
        if info.subject_kind == SubjectKind.USER:
            check_checks(facts.grant, cfg=state.cfg, today=now.date())
        return facts.grant, _practitioner_id(info, lambda: facts.practitioner_id)
    with read_only(state.engine) as session:
        if info.jti and session.exec(_REVOKED, params={"key": f"revoked:{info.jti}"}).first():
            raise unauthenticated("token-revoked", "This access token was revoked; sign in again.")
        caller.grant = grant = current_grant(
            session, subject=info.subject, kind=info.subject_kind, cfg=state.cfg
        )
        return grant, _practitioner_id(
            info, lambda: session.exec(_PRACTITIONER_OF, params={"subject": info.subject}).first()
        )


def check_caller(state: AuthState, info: TokenInfo) -> AccessGrant | LiveGrant:
    """The grant a request with this (validated) token would act under, or the AuthRefused it would get."""
    grant, _ = _grant_of(state, info, _Caller())
    return grant


@dataclass
class _Caller:
    """What is known of the caller so far: a refusal is audited with it."""

    subject: str = "anonymous"
    grant: AccessGrant | LiveGrant | None = None
    client_id: str | None = None
    alert: TrawlAlert | None = None  # to append once the actor is known


def _resolve(request: Request, state: AuthState, caller: _Caller) -> Actor:
    """Bearer token -> current grant -> route policy -> Actor. Reads only: writing is the caller's."""
    token = _bearer(request)
    if token is None:
        return _dev_or_refuse(request, state, caller)
    info = state.validator.validate(token)
    caller.subject, caller.client_id = info.subject, info.client_id
    grant, practitioner_id = _grant_of(state, info, caller)
    role = Role(grant.role)
    scopes = frozenset(info.scopes & grant.scope_set())
    if info.subject_kind == SubjectKind.CLIENT:
        scopes -= PERSONS_ONLY_SCOPES  # even from a client grant made before the rule
    policy = _route_policy(request)
    # Who is signed in, for an error page's navigation only (even when refused just below).
    request.state.signed_in_as = Actor(subject=info.subject, role=role, practitioner_id=practitioner_id)
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
        localities=tuple(grant.locality_list()),
        locality_reach=state.cfg.grant_localities,
    )
    check_purpose(role, actor.purpose)
    request.state.scopes = scopes
    request.state.grant = grant
    _rate_limit(request, state, policy, actor, caller)
    return actor


def _refused(request: Request, state: AuthState, caller: _Caller, exc: AuthRefused) -> None:
    _audit_refusal(
        request, state, exc, subject=caller.subject, grant=caller.grant, client_id=caller.client_id
    )


class ActorResolver:
    """Who is calling, installed as `app.state.actor_resolver` (refusals and alerts audited).

    `resolve` is for sync callers (the pages). `aresolve` is `current_actor`'s: it reads on the
    event loop, since a few indexed lookups cost less than handing the request to a worker thread
    and back (measured on the search path), and hands only a write (a refusal or an alert) to one.
    """

    def resolve(self, request: Request) -> Actor:
        """Resolve and audit in the calling thread."""
        state, caller = auth_state(request), _Caller()
        try:
            actor = _resolve(request, state, caller)
        except AuthRefused as exc:
            _refused(request, state, caller, exc)
            raise
        if caller.alert is not None:
            _audit_trawl(state, actor, caller.alert)
        return actor

    async def aresolve(self, request: Request) -> Actor:
        """Resolve on the event loop; audit a refusal or an alert in a worker thread. A token of the
        external issuer whose keys must be fetched first (its first use after a start, a new key id)
        is resolved in the upstream lane instead (directory/http/lanes.py): the fetch waits on the
        identity provider, up to 5 s, and on the loop it held up every request of the process."""
        state, caller = auth_state(request), _Caller()
        token = _bearer(request)
        try:
            if token is not None and state.validator.would_fetch(token):
                # (the lane's limiter, not in_upstream_lane: that ends the request's unit of work,
                # which a dependency must leave to the route)
                resolving = partial(_resolve, request, state, caller)
                actor = await anyio.to_thread.run_sync(resolving, limiter=upstream_lane())
            else:
                actor = _resolve(request, state, caller)
        except AuthRefused as exc:
            await anyio.to_thread.run_sync(_refused, request, state, caller, exc)
            raise
        if caller.alert is not None:
            await anyio.to_thread.run_sync(_audit_trawl, state, actor, caller.alert)
        return actor

    async def alooked(self, request: Request, actor: Actor, child_ids: Iterable[uuid.UUID]) -> None:
        """Count the children a read showed (an app API search) towards trawling detection, on the
        event loop (a short write to the counters); an alert goes to the audit's group commit."""
        state = auth_state(request)
        alert = state.limiter.look(actor.subject, child_ids)
        if alert is not None:
            await asyncio.wrap_future(
                audit.submit(
                    state.engine,
                    actor=actor,
                    action="alert.trawling",
                    outcome="alert",
                    detail=_trawl_detail(alert),
                )
            )


actor_resolver = ActorResolver()


def _dev_or_refuse(request: Request, state: AuthState, caller: _Caller) -> Actor:
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
    check_purpose(actor.role, actor.purpose)
    request.state.scopes = frozenset(ROLE_SCOPES[actor.role])
    _rate_limit(request, state, policy, actor, caller)
    return actor


def _rate_limit(
    request: Request, state: AuthState, policy: Policy | str | None, actor: Actor, caller: _Caller
) -> None:
    if not isinstance(policy, Policy) or not policy.rate_limited:
        return
    caller.alert = state.limiter.hit(actor.subject, request.path_params.get("child_id"))


def count_read(request: Request, actor: Actor) -> None:
    """Count one read towards the caller's rate limit where the route's policy cannot say so (a
    read inside a FHIR Bundle, the pages' duplicate check before recording a child); 429 when over."""
    auth_state(request).limiter.hit(actor.subject)


def note_looks(request: Request, session: Session, actor: Actor, child_ids: Iterable[uuid.UUID]) -> None:
    """Count the children a request showed (FHIR reads, searches, $match; the pages' search)
    towards trawling detection.

    The alert joins the request's own transaction when it has one (on SQLite it may hold the write
    lock, so a second connection would only wait for it), else the audit's group commit.
    """
    alert = auth_state(request).limiter.look(actor.subject, child_ids)
    if alert is not None:
        audit.record(
            session, actor=actor, action="alert.trawling", outcome="alert", detail=_trawl_detail(alert)
        )


def _trawl_detail(alert: TrawlAlert) -> dict[str, int | str]:
    return {
        "distinct_children": alert.distinct_children,
        "looks": alert.looks,
        "window_seconds": alert.window_seconds,
        "rule": alert.rule,
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
