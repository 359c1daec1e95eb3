"""Patient update (PUT): a connected system changes a child's details. The Patient is read by the one
Patient parser (interop.mapping.patient) into the domain's ChildChange, and the change is the
domain's use case (service.change_child): its access rule, versions and audit event."""

from __future__ import annotations

from datetime import date
from typing import Any

from directory import service
from directory.models import Child, ChildChange
from interop import mapping as m
from interop.api.context import Ctx
from interop.api.read import child_of
from interop.api.writes.common import Written, domain_input, same_id, shown, visible
from interop.outcome import FhirError, mapped


def update_patient(ctx: Ctx, rid: str, body: dict[str, Any], *, expected: int | None) -> Written:
    """Change a child's details from a Patient; If-Match is the version read (meta.versionId in the
    body is ignored, as R4 says)."""
    ctx.need("Patient", "u")
    same_id("Patient", rid, body)
    child_id = child_of(ctx.session, "Patient", rid)
    visible(ctx, "Patient", rid)  # 404 for what the caller may not see
    child = ctx.session.get(Child, child_id)
    if child is None:
        raise FhirError(404, "not-found", f"No Patient has the id '{rid}'.")
    unborn = child.date_of_birth is None
    fields = mapped(lambda b: m.patient_change(b, unborn=unborn), body)
    change: ChildChange = domain_input(ChildChange, "Patient", **fields)
    changed = service.change_child(
        ctx.session,
        actor=ctx.actor,
        child_id=child_id,
        change=change,
        today=date.today(),
        source="fhir",
        expected_version=expected,
    )
    if changed:
        ctx.pictures.forget(child_id)
    return shown(ctx, 200, "Patient", rid, child_id)
