"""Consent writes: record a consent, or withdraw it; nothing else about a consent changes."""

from __future__ import annotations

from typing import Any

from directory import service
from directory.models import Consent, ConsentCreate, ConsentWithdraw
from interop import mapping as m
from interop.api.context import Ctx, resource_id
from interop.api.writes.common import (
    Written,
    conditional,
    domain_input,
    same_id,
    same_patient,
    shown,
    via,
    visible,
)
from interop.outcome import FhirError, mapped


def create_consent(ctx: Ctx, body: dict[str, Any], *, if_none_exist: str | None = None) -> Written:
    """Record a consent given by a parent/carer or a competent young person."""
    ctx.need("Consent", "c")
    c = mapped(m.consent_in, body)
    if not c.active:
        raise FhirError(
            422,
            "business-rule",
            "Record a consent as given (status active); withdraw it later with PUT (status inactive).",
            where="Consent.status",
        )
    found = conditional(ctx, "Consent", if_none_exist)
    if found is not None:
        return found
    data = domain_input(ConsentCreate, "Consent", **c.create_fields())
    consent = service.record_consent(ctx.session, actor=ctx.actor, child_id=c.child_id, data=data)
    ctx.pictures.forget(consent.child_id)
    return shown(ctx, 201, "Consent", str(consent.id), consent.child_id)


def _refuse_changes(c: m.ConsentIn, row: Consent) -> None:
    """A consent is what was given: a change is a new one."""
    changed = [
        name
        for name, new, old in (
            ("scope", c.scope, row.scope),
            ("who gave it", c.given_by_kind, row.given_by_kind),
            ("their name", c.given_by_name, row.given_by_name),
        )
        if new is not None and new != old
    ]
    if changed:
        raise FhirError(
            422,
            "business-rule",
            f"A consent cannot change ({', '.join(changed)}): withdraw it (status inactive) "
            "and record a new one.",
            where="Consent",
        )


def update_consent(ctx: Ctx, rid: str, body: dict[str, Any], *, expected: int | None) -> Written:
    """Withdraw a consent (status inactive); nothing else about a consent changes."""
    ctx.need("Consent", "u")
    same_id("Consent", rid, body)
    if expected is not None:
        raise FhirError(
            400,
            "not-supported",
            "Consent is not versioned here: send the update without If-Match.",
            where="If-Match",
        )
    c = mapped(m.consent_in, body)
    child_id, current = visible(ctx, "Consent", rid)
    same_patient("Consent", c.child_id, child_id, "Consent.patient")
    row = ctx.session.get(Consent, resource_id(rid, "Consent"))
    assert row is not None
    _refuse_changes(c, row)
    if c.active:
        if row.withdrawn_at is not None:
            raise FhirError(
                409,
                "conflict",
                "A withdrawn consent cannot be given again: record a new consent.",
                where="Consent.status",
            )
        return Written(200, current)
    if row.withdrawn_at is None:
        service.withdraw_consent(
            ctx.session,
            actor=ctx.actor,
            consent_id=row.id,
            data=domain_input(ConsentWithdraw, "Consent.extension", reason=c.withdrawn_reason or via(ctx)),
        )
        ctx.pictures.forget(child_id)
    return shown(ctx, 200, "Consent", rid, child_id)
