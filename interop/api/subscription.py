"""FHIR Subscription (rest-hook) for connected systems: create, read, search their own, delete.

A Subscription is a row of interop/notify.py's `subscription` table; the worker there delivers
(queued from the audit log, never inside a request, retried, then dead-lettered). Criteria are
limited to what it can deliver (mapping.SUBSCRIPTION_CRITERIA). Each client sees only its own.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response
from sqlmodel import col, select

from directory import audit
from directory.models import Subscription, utcnow
from interop import mapping as m
from interop import notify
from interop import openapi as doc
from interop.api.context import Body, Ctx, CtxDep, etag
from interop.api.searchset import whole_searchset
from interop.outcome import FhirError, fhir_json, mapped

SHIELD_EVENT = "shielded-record-viewed"
SHIELD_EVENT_SCOPE = "audit.read"
"""Being told that a shielded record was viewed is an audit function: it needs this scope too."""


def _owner(ctx: Ctx) -> str:
    return ctx.actor.client_id or ctx.actor.subject


def _own(ctx: Ctx, rid: str) -> Subscription:
    try:
        key = uuid.UUID(rid)
    except ValueError:
        key = None
    sub = ctx.session.get(Subscription, key) if key else None
    if sub is None or sub.owner != _owner(ctx) or sub.status != "active":
        raise FhirError(404, "not-found", f"You have no Subscription with the id '{rid}'.")
    return sub


def create_subscription(ctx: Ctx, body: dict[str, Any]) -> dict[str, Any]:
    """Register a rest-hook for CAF, Lead Professional or shielded-record events (audited)."""
    if body.get("resourceType") != "Subscription":
        raise FhirError(400, "invalid", "This endpoint takes a Subscription.", where="resourceType")
    want = mapped(m.subscription_in, body)
    scopes = getattr(ctx.request.state, "scopes", None)
    if SHIELD_EVENT in want.events and scopes is not None and SHIELD_EVENT_SCOPE not in scopes:
        raise FhirError(
            403,
            "forbidden",
            f"Being told when a shielded record is viewed is for auditors of access: it needs the scope "
            f"{SHIELD_EVENT_SCOPE} as well.",
            where="Subscription.criteria",
        )
    try:
        sub = notify.subscribe(
            ctx.session,
            owner=_owner(ctx),
            endpoint=want.endpoint,
            events=want.events,
            kind="rest-hook",
            secret=want.secret,
            reason=want.reason[:500],
            criteria=want.criteria[:500],
        )
    except ValueError as exc:
        raise FhirError(400, "invalid", f"{exc}.", where="Subscription.channel.endpoint") from None
    audit.append(
        ctx.session,
        actor=ctx.actor,
        action="subscription.create",
        target_type="subscription",
        target_id=sub.id,
        detail={"events": want.events},
    )
    return m.subscription(sub)


def delete_subscription(ctx: Ctx, rid: str) -> None:
    """Stop a subscription (kept, switched off, so its delivery history stays readable)."""
    sub = _own(ctx, rid)
    sub.status = "off"
    sub.updated_at = utcnow()
    ctx.session.add(sub)
    ctx.session.flush()
    audit.append(
        ctx.session,
        actor=ctx.actor,
        action="subscription.delete",
        target_type="subscription",
        target_id=sub.id,
    )


def add_subscription_routes(router: APIRouter) -> None:
    """POST/GET/DELETE /fhir/Subscription (policies fhir_*_Subscription in auth/policy.py)."""

    @router.post(
        "/Subscription",
        name="fhir_create_Subscription",
        status_code=201,
        openapi_extra=doc.operation("Subscription", status=201, description="The Subscription"),
    )
    def create(ctx: CtxDep, body: Body) -> Response:
        """Create a rest-hook Subscription (criteria limited to the events this server delivers)."""
        res = create_subscription(ctx, body)
        return fhir_json(res, 201, {"Location": f"{ctx.base}/Subscription/{res['id']}", **etag(res)})

    @router.get("/Subscription/{rid}", name="fhir_read_Subscription", openapi_extra=doc.read("Subscription"))
    def read(rid: str, ctx: CtxDep) -> Response:
        """Read one of your Subscriptions."""
        res = m.subscription(_own(ctx, rid))
        return fhir_json(res, 200, etag(res))

    @router.get(
        "/Subscription", name="fhir_search_Subscription", openapi_extra=doc.answers("A searchset Bundle")
    )
    def search(ctx: CtxDep) -> Response:
        """Your active Subscriptions (it takes no parameters: any is ignored, as R4 says, unless
        'Prefer: handling=strict', which refuses it)."""
        subs = ctx.session.exec(
            select(Subscription)
            .where(Subscription.owner == _owner(ctx), Subscription.status == "active")
            .order_by(col(Subscription.created_at))
        ).all()
        return fhir_json(
            whole_searchset(ctx, "Subscription", [m.subscription(s) for s in subs], "your Subscriptions")
        )

    @router.delete("/Subscription/{rid}", name="fhir_delete_Subscription", status_code=204)
    def delete(rid: str, ctx: CtxDep) -> Response:
        """Delete one of your Subscriptions: nothing more is queued for it."""
        delete_subscription(ctx, rid)
        return Response(status_code=204)
