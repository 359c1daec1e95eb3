"""Type-level `_history` of the child's resources: `GET /fhir/Patient/_history?_since=&_count=`, and the
same for EpisodeOfCare, Flag, CareTeam, Consent and RelatedPerson: what changed at or after `_since`,
newest first (a page holds `_count` changed rows: a CAF's change shows its two Flags, a record's its
RelatedPersons, so a page may hold a few more entries).

Listing every child whose record changed is a read of children in bulk, not a search by criteria,
so it has the Bulk Data export's rule (auth.policy.may_export: a system client granted
`directory.export` and the type's read scope) and the export's view of each child: exactly what a
read of it would show the caller (the shield, sensitive services, sealed and archived records left
out). Entries the caller may not see are left out of the page, never shown as a gap that says
something is there. Each page is audited as one `history.read` event concerning every child it
shows, as a search is.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Response
from sqlmodel import col, select

from auth.policy import may_export
from directory import audit
from directory.errors import NotAllowed, NotFound
from directory.models import Child
from directory.reach import reach_condition
from directory.visibility import readable_statuses
from interop import openapi as doc
from interop import sync
from interop.api.context import Ctx, CtxDep, Items, require_purpose
from interop.api.sync_history import history_bundle, history_entry
from interop.outcome import fhir_json


def _listable(ctx: Ctx) -> dict[str, sa.ColumnElement[bool]]:
    """Per type, the rows the caller's role may read at all (a record's status: never a sealed or an
    archived one to a system)."""
    statuses = list(readable_statuses(ctx.actor.role))
    own: sa.ColumnElement[bool] = col(Child.status).in_(statuses)
    within = reach_condition(ctx.actor)  # the grant's localities, where they restrict reads
    if within is not None:
        own = sa.and_(own, within)
    readable = select(Child.id).where(own)
    out: dict[str, sa.ColumnElement[bool]] = {}
    for kind, table in sync.CHILD_TABLES.items():
        out[kind] = own if table is Child else col(table.child_id).in_(readable)
    return out


def _shown(ctx: Ctx, kind: str, rid: uuid.UUID) -> tuple[uuid.UUID | None, list[dict[str, Any]]]:
    """The child a changed row belongs to, and the resources of `kind` it makes (as the caller's read
    of the child shows them: none when they are hidden from this caller)."""
    table = sync.CHILD_TABLES[kind]
    if table is Child:
        child_id: uuid.UUID | None = rid
    else:
        row = ctx.session.get(table, rid)
        child_id = row.child_id if row is not None else None
    if child_id is None:
        return None, []
    try:
        pic = ctx.pictures.of(child_id)
    except NotFound:
        return child_id, []
    if kind == "RelatedPerson":  # the record's parents and carers change with it
        return child_id, pic.of(kind)
    if kind == "Flag":  # a CAF's status, and the Lead Professional in place, change with the CAF
        ids = (f"caf-{rid.hex}", f"lp-{child_id.hex}")
        caf = pic.get("Flag", ids[0])
        return child_id, [f for f in (caf, pic.get("Flag", ids[1]) if caf else None) if f is not None]
    found = pic.get(kind, str(rid))
    return child_id, [found] if found is not None else []


def _entries(ctx: Ctx, page: list[sync.Cursor]) -> list[dict[str, Any]]:
    """The page's changes as the caller may see them (a picture of each child, as a read shows it)."""
    entries: list[dict[str, Any]] = []
    shown: dict[uuid.UUID, None] = {}
    for _at, kind, rid in page:
        child_id, resources = _shown(ctx, kind, rid)
        for res in resources:  # none for a sensitive involvement, or what a shield hides
            created = res.get("meta", {}).get("versionId") == "1"
            entries.append(history_entry(ctx, kind, res["id"], res, created=created))
        if resources and child_id is not None:
            shown[child_id] = None
    if shown:
        audit.append(
            ctx.session,
            actor=ctx.actor,
            action="history.read",
            target_type="history",
            detail={"entries": len(entries), "types": sorted({k for _a, k, _r in page})},
            children=list(shown),
        )
    return entries


def child_history(ctx: Ctx, kind: str, items: list[tuple[str, str]]) -> dict[str, Any]:
    """A history Bundle of the `kind` resources changed at or after `_since`, for bulk readers."""
    require_purpose(ctx.actor)
    scopes = getattr(ctx.request.state, "scopes", None)
    if not may_export(ctx.actor, None if scopes is None else frozenset(scopes), kind):
        raise NotAllowed(
            f"The history of every {kind} is a read in bulk: it needs a system client granted "
            f"directory.export and the {kind} read scope (as the Bulk Data export does)."
        )
    return history_bundle(
        ctx, (kind,), items, f"{kind}/_history", lambda page: _entries(ctx, page), where=_listable(ctx)
    )


def _type_history(kind: str) -> Any:
    def type_history(ctx: CtxDep, items: Items) -> Response:
        return fhir_json(child_history(ctx, kind, items))

    type_history.__doc__ = (
        f"Every {kind} changed at or after _since (an instant), newest first, in pages of _count: "
        "for system clients granted directory.export (a read in bulk, audited per child)."
    )
    return type_history


def add_child_history_routes(router: APIRouter) -> None:
    """`/Patient/_history` and `/EpisodeOfCare/_history` (before the read routes, as the catalogue's)."""
    for kind in sync.CHILD_TABLES:
        router.add_api_route(
            f"/{kind}/_history",
            _type_history(kind),
            methods=["GET"],
            name=f"fhir_history_type_{kind}",
            openapi_extra=doc.answers("A history Bundle"),
        )
