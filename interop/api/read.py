"""Read one resource: a child's (audited as a read of the record), an audit event's, or the catalogue's."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session, select

from auth.deps import note_looks
from auth.policy import FHIR_CHILD_TYPES
from directory import audit, service
from directory.errors import NotAllowed
from directory.models import Assessment, AuditEvent, Consent, Involvement, RelatedPerson, Tac, utcnow
from directory.visibility import events_shown
from interop import mapping as m
from interop import picture
from interop.api.catalogue import read_catalogue_resource
from interop.api.context import Ctx, resource_id
from interop.outcome import FhirError


def child_of(session: Session, kind: str, rid: str) -> uuid.UUID:
    """The child a child-scoped resource belongs to (404 when there is none)."""
    row: Any = None
    if kind == "Patient":
        return resource_id(rid, kind)
    if kind == "EpisodeOfCare":
        row = session.get(Involvement, resource_id(rid, kind))
    elif kind == "Flag":
        prefix, _, hexid = rid.partition("-")
        if prefix == "lp":
            return resource_id(hexid, kind)
        row = session.get(Assessment, resource_id(hexid, kind)) if prefix == "caf" else None
    elif kind in ("CareTeam", "CarePlan"):  # a TAC, and its plan (the same id)
        row = session.get(Tac, resource_id(rid, kind))
    elif kind == "Consent":
        row = session.get(Consent, resource_id(rid, kind))
    elif kind == "RelatedPerson":
        row = session.get(RelatedPerson, resource_id(rid, kind))
    if row is None or getattr(row, "child_id", None) is None:
        raise FhirError(404, "not-found", f"No {kind} has the id '{rid}'.")
    return row.child_id  # type: ignore[no-any-return]


def read_child_resource(ctx: Ctx, kind: str, rid: str) -> dict[str, Any]:
    """One child-scoped resource, if this caller may see it; audited as a read of the child's record."""
    child_id = child_of(ctx.session, kind, rid)
    pic = picture.for_child(
        ctx.session, actor=ctx.actor, child_id=child_id, now=utcnow(), fallback=ctx.fallback, audited=True
    )
    # Reading lapses an overdue signal of intent (service.read_card): a picture kept from before
    # may no longer be what the record says.
    ctx.pictures.forget(child_id)
    note_looks(ctx.request, ctx.session, ctx.actor, [child_id])  # trawling detection, as a card read
    res = pic.get(kind, rid)
    if res is None:
        raise FhirError(404, "not-found", f"No {kind} has the id '{rid}', or it is not shown to you.")
    return res


def read_audit_event(ctx: Ctx, rid: str) -> dict[str, Any]:
    """One audit event, for auditors; reading it is itself audited."""
    if not rid.isdigit():
        raise FhirError(404, "not-found", f"No AuditEvent has the id '{rid}'.")
    seq = int(rid)
    shown = select(AuditEvent).where(AuditEvent.seq == seq, events_shown(ctx.session, ctx.actor.role))
    event = ctx.session.exec(shown).first() if seq < 2**63 else None
    if event is None:  # (an event about a sealed record is answered as one that never was)
        raise FhirError(404, "not-found", f"No AuditEvent has the id '{rid}'.")
    if ctx.actor.role not in service.ACCESS_LOG_READERS:
        raise NotAllowed(
            "Only auditors, directory admins and designated practitioners can read the audit log."
        )
    audit.append(ctx.session, actor=ctx.actor, action="audit.read", target_type="audit-event", target_id=rid)
    return m.audit_event(event)


def read_resource(ctx: Ctx, kind: str, rid: str) -> dict[str, Any]:
    """Read any supported resource."""
    if kind in FHIR_CHILD_TYPES:
        return read_child_resource(ctx, kind, rid)
    if kind == "AuditEvent":
        return read_audit_event(ctx, rid)
    return read_catalogue_resource(ctx, kind, rid)
