"""Flag writes: signal a CAF, move it along its path (directory.caf_path), hand over the Lead
Professional. The path and its rules are the domain's; this module says them in FHIR's words."""

from __future__ import annotations

import uuid
from typing import Any

from directory import caf_path, service
from directory import repository as drepo
from directory.http.config import practice
from directory.models import Assessment, CafOutcome, CafSignal, utcnow
from interop import mapping as m
from interop import systems as S
from interop.api.context import Ctx, resource_id
from interop.api.writes.common import (
    Written,
    conditional,
    hand_over,
    same_id,
    same_patient,
    shown,
    via,
    visible,
)
from interop.outcome import FhirError, mapped

_SIGNAL_FIRST = (
    "A CAF begins with a signal of intent: create a Flag with code caf-signalled and author = "
    "the practitioner starting it, then move it on with PUT (caf-in-progress, caf-completed, "
    "caf-closed). The Lead Professional flag follows the CAF; change it with PUT."
)
_NOT_AT_RISK = (
    "A CAF is not the route when a child may be at risk of significant harm: follow your "
    "safeguarding procedures and refer to children's social care. To signal a CAF, confirm that "
    f"the child is not at risk with the extension {S.EXT_NO_SIGNIFICANT_HARM} (valueBoolean true)."
)
_NEEDS = {
    "consent": (
        "A CAF is started with consent: give the Consent (scope caf) of a parent/carer or "
        f"the competent young person in the extension {S.EXT_CAF_CONSENT}."
    ),
    "outcome": (
        f"Say how the CAF completed: the extension {S.EXT_CAF_OUTCOME} with one of "
        f"{', '.join(m.CAF_OUTCOMES)}."
    ),
}
"""What a step of the CAF's path needs, as a Flag gives it."""


def create_flag(ctx: Ctx, body: dict[str, Any], *, if_none_exist: str | None = None) -> Written:
    """Signal the intent to start a CAF (Flag caf-signalled); a second open CAF is refused (409)."""
    ctx.need("Flag", "c")
    f = mapped(m.flag_in, body)
    if f.kind != "caf" or f.caf_status != "signalled":
        raise FhirError(422, "business-rule", _SIGNAL_FIRST, where="Flag.code")
    if f.no_significant_harm is not True:
        raise FhirError(422, "business-rule", _NOT_AT_RISK, where="Flag.extension")
    found = conditional(ctx, "Flag", if_none_exist)
    if found is not None:
        return found
    # Flag.author: a connected system names its own organisation's practitioner; a person signals as
    # themselves (the domain refuses anyone else).
    caf = service.signal_caf(
        ctx.session,
        actor=ctx.actor,
        child_id=f.child_id,
        data=CafSignal(practitioner_id=f.practitioner_id, no_risk_of_significant_harm=True),
        signal_days=practice(ctx.request).signal_expiry_days,
        now=utcnow(),
    )
    ctx.pictures.forget(caf.child_id)
    return shown(ctx, 201, "Flag", f"caf-{caf.id.hex}", caf.child_id)


def update_flag(ctx: Ctx, rid: str, body: dict[str, Any], *, expected: int | None) -> Written:
    """Move a CAF on (start / complete / close / withdraw) or hand over the Lead Professional, from a Flag."""
    ctx.need("Flag", "u")
    same_id("Flag", rid, body)
    f = mapped(m.flag_in, body)
    child_id, _current = visible(ctx, "Flag", rid)
    same_patient("Flag", f.child_id, child_id, "Flag.subject")
    prefix, _, hexid = rid.partition("-")
    if (prefix == "lp") != (f.kind == "lead-professional"):
        raise FhirError(
            422,
            "business-rule",
            "A Flag cannot change between CAF status and Lead Professional.",
            where="Flag.code",
        )
    if prefix == "lp":
        changed = _update_lead(ctx, child_id, f, expected)
    else:
        caf = ctx.session.get(Assessment, resource_id(hexid, "Flag"))
        assert caf is not None  # visible() found it
        service.check_version("CAF", caf.version, expected)
        moved = _walk(ctx, caf, f)
        changed = hand_over(ctx, caf, f.practitioner_id, f.reason) or moved
    if changed:
        ctx.pictures.forget(child_id)
    return shown(ctx, 200, "Flag", rid, child_id)


def _update_lead(ctx: Ctx, child_id: uuid.UUID, f: m.FlagIn, expected: int | None) -> bool:
    """A Lead Professional flag: a new author is a hand-over; True when the role changed hands."""
    caf = drepo.open_caf(ctx.session, child_id)
    if caf is None:
        raise FhirError(409, "conflict", "This child has no open CAF, so no Lead Professional to hand over.")
    service.check_version("Lead Professional flag", caf.version, expected)
    if not f.active:
        raise FhirError(
            422,
            "business-rule",
            "There is always one Lead Professional while a CAF is open: hand the role over "
            "(change Flag.author), or close the CAF.",
            where="Flag.status",
        )
    return hand_over(ctx, caf, f.practitioner_id, f.reason)


def _walk(ctx: Ctx, caf: Assessment, f: m.FlagIn) -> bool:
    """Walk the CAF to the status the Flag asks for (directory.caf_path); True when it moved."""
    try:
        return caf_path.advance_caf(
            ctx.session,
            actor=ctx.actor,
            caf=caf,
            to=caf_path.destination(caf, f.caf_status, open_=f.active),
            reason=f.reason,
            default_reason=via(ctx),
            consent_id=f.consent_id,
            outcome=CafOutcome(f.outcome) if f.outcome is not None else None,
            now=utcnow(),
        )
    except caf_path.CafCannotMove as exc:
        message = exc.message
        if exc.data["move"] == "withdraw":
            status = exc.data["status"]
            message = f"Only a signalled CAF can be withdrawn; this one is {status}: close it (caf-closed)."
        raise FhirError(409, "conflict", message, where="Flag.code") from None
    except caf_path.CafStepNeeds as exc:
        raise FhirError(422, "business-rule", _NEEDS[exc.data["needs"]], where="Flag.extension") from None
    except caf_path.CafInputInvalid as exc:
        raise FhirError(400, "invalid", exc.message, where="Flag.extension") from None
