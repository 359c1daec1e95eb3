"""What every create and update shares: the outcome (`Written`), the checks before a write, and the
answer after it: the resource as this caller may see it (shielding applies to what comes back).

Each write is a use case of the domain (directory.service, directory.caf_path): the rules and the
audit events (and so the notifications) are the domain's. A write that changes a child forgets the
request's picture of that child (`ctx.pictures`), so what it answers is built afresh.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError

from auth.policy import FHIR_HISTORY_TYPES
from directory import caf_path
from directory.models import Assessment, utcnow
from interop import params as P
from interop.api.context import Ctx, etag
from interop.api.read import child_of
from interop.api.search import search_child_resources
from interop.outcome import FhirError, operation_outcome


@dataclass
class Written:
    """The outcome of a create or update: the resource as the caller may see it.

    `ref` names what was written when the body is not it (an informational OperationOutcome
    when the record's rules do not show the result to this caller).
    """

    status: int
    resource: dict[str, Any]
    ref: str | None = None
    # what the answer says besides the resource (an OperationOutcome of information issues): the
    # body with 'Prefer: return=OperationOutcome', a Bundle entry's response.outcome
    note: dict[str, Any] | None = None

    @property
    def reference(self) -> str:
        """'Type/id' of what was written."""
        return self.ref or f"{self.resource['resourceType']}/{self.resource['id']}"

    def headers(self, base: str) -> dict[str, str]:
        """Location (with the version for types that keep history) and ETag."""
        h = etag(self.resource) if self.ref is None else {}
        version = (self.resource.get("meta") or {}).get("versionId") if self.ref is None else None
        kind = self.reference.split("/")[0]
        history = f"/_history/{version}" if version and kind in FHIR_HISTORY_TYPES else ""
        h["Location"] = f"{base}/{self.reference}{history}"
        return h


def check_type(kind: str, body: dict[str, Any]) -> None:
    """Refuse a body of another resource type than the endpoint takes."""
    if body.get("resourceType") != kind:
        raise FhirError(
            400,
            "invalid",
            f"This endpoint takes a {kind}, not a {body.get('resourceType')}.",
            where="resourceType",
        )


def same_id(kind: str, rid: str, body: dict[str, Any]) -> None:
    """Refuse an update whose body carries no id, or another id than the URL's (R4: 400 either way)."""
    if body.get("id") is None:
        raise FhirError(
            400,
            "required",
            f"An update must carry the resource's id ({rid}), as in the URL.",
            where=f"{kind}.id",
        )
    if body.get("id") != rid:
        raise FhirError(400, "invalid", "The resource's id does not match the URL.", where=f"{kind}.id")


def same_patient(kind: str, given: uuid.UUID, held: uuid.UUID, where: str) -> None:
    """Refuse moving a resource to another child."""
    if given != held:
        raise FhirError(
            422, "business-rule", f"The patient of a {kind} cannot change; record a new one.", where=where
        )


def domain_input(model: type[Any], where: str, **fields: Any) -> Any:
    """A domain input model, its validation errors answered as 400 invalid."""
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ()))
        raise FhirError(400, "invalid", f"{field}: {first.get('msg', 'invalid')}", where=where) from None


def via(ctx: Ctx) -> str:
    """The reason recorded for a holder's change that gives none: which surface and client made it."""
    return f"recorded over FHIR by {ctx.actor.client_id or ctx.actor.subject}"[:500]


def visible(ctx: Ctx, kind: str, rid: str) -> tuple[uuid.UUID, dict[str, Any]]:
    """The child and the current resource, when this caller may see it (404 otherwise)."""
    child_id = child_of(ctx.session, kind, rid)
    res = ctx.pictures.of(child_id).get(kind, rid)
    if res is None:
        raise FhirError(404, "not-found", f"No {kind} has the id '{rid}', or it is not shown to you.")
    return child_id, res


def shown(ctx: Ctx, status: int, kind: str, rid: str, child_id: uuid.UUID) -> Written:
    """The written resource as the caller may see it, or a note that the record's rules hide it."""
    res = ctx.pictures.of(child_id).get(kind, rid)
    notes, ctx.notes[:] = list(ctx.notes), []
    note = informed(notes)
    if res is None:
        res = operation_outcome(
            "informational",
            f"Done: {kind}/{rid}. The record's rules (shielding) do not show it to you.",
            severity="information",
        )
        res["issue"] += (note or {}).get("issue", [])
        return Written(status, res, ref=f"{kind}/{rid}")
    return Written(status, res, note=note)


def informed(notes: list[str]) -> dict[str, Any] | None:
    """An OperationOutcome of information issues, one per note (None without notes)."""
    if not notes:
        return None
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational", "diagnostics": n} for n in notes],
    }


def conditional(ctx: Ctx, kind: str, if_none_exist: str | None) -> Written | None:
    """Conditional create: the one existing match (200), None when there is none, 412 when several."""
    if not if_none_exist:
        return None
    items = parse_qsl(if_none_exist.lstrip("?"), keep_blank_values=True)
    existing = search_child_resources(ctx, kind, P.parse(kind, items, lenient=False))
    if existing.total == 1:
        return Written(200, existing.matches[0])
    if existing.total > 1:
        raise FhirError(412, "duplicate", f"If-None-Exist matches more than one {kind}: be more specific.")
    return None


def hand_over(
    ctx: Ctx, caf: Assessment, to: uuid.UUID | None, reason: str | None, *, default: str | None = None
) -> bool:
    """Ask `to` to take the Lead Professional role when it is someone new (directory.caf_path); True
    when it changed hands at once (the caller named themselves). A request the named practitioner
    has to accept leaves the current Lead Professional in the resource, and the answer says so (an
    information issue: `shown`). A reason the domain does not take is answered at `author`."""
    try:
        outcome = caf_path.hand_over_if_new(
            ctx.session,
            actor=ctx.actor,
            caf=caf,
            to=to,
            reason=reason,
            default_reason=default or via(ctx),
            now=utcnow(),
        )
    except caf_path.CafInputInvalid as exc:
        raise FhirError(400, "invalid", exc.message, where="author") from None
    if outcome is not None and outcome.request is not None:
        ctx.notes.append(
            f"Lead Professional hand-over requested (request {outcome.request.id}): the practitioner named "
            "becomes Lead Professional when they accept it (GET /api/v1/requests); until then the current "
            "one stays, as this resource shows."
        )
    return outcome is not None and outcome.assignment is not None
