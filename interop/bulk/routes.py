"""The Bulk Data routes: kick-off at system, Patient and Group level; the status URL (poll, DELETE);
the NDJSON files; and Group (a locality's children) read and search.

Only the client that started an export sees its status and files: another client's id is answered
exactly as an unknown one (404).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from starlette.background import BackgroundTask

from directory import audit
from directory.models import BulkExport, Locality, utcnow
from directory.repository import localities
from interop import openapi as doc
from interop.api.context import Ctx, CtxDep, Items, etag, resource_id
from interop.api.searchset import whole_searchset
from interop.bulk import jobs
from interop.bulk.params import parse_kickoff
from interop.bulk.worker import ExportRun, file_path
from interop.mapping.group import group
from interop.outcome import FhirError, fhir_json, operation_outcome

NDJSON = "application/fhir+ndjson"


@dataclass(frozen=True)
class BulkRuntime:
    """What the bulk routes need from the app: the engine the workers use and the settings."""

    engine: Engine
    cfg: jobs.BulkConfig


def bulk_runtime(request: Request) -> BulkRuntime:
    """The bulk export's runtime, as install_fhir set it up."""
    return request.app.state.bulk  # type: ignore[no-any-return]


RuntimeDep = Annotated[BulkRuntime, Depends(bulk_runtime)]


def _scopes(ctx: Ctx) -> frozenset[str] | None:
    found = getattr(ctx.request.state, "scopes", None)
    return frozenset(found) if found is not None else None


def kick_off(
    ctx: Ctx, rt: RuntimeDep, items: list[tuple[str, str]], level: str, group_id: uuid.UUID | None
) -> Response:
    """Check the request, record the export (one running per client), answer 202 with the status URL;
    the worker starts once the row is committed."""
    asked = parse_kickoff(
        items, prefer=ctx.request.headers.get("prefer", ""), actor=ctx.actor, scopes=_scopes(ctx)
    )
    jobs.expire(ctx.session, rt.cfg)
    jobs.fail_interrupted(ctx.session, rt.cfg, client=ctx.actor.subject)
    row = BulkExport(
        client_id=ctx.actor.subject,
        running_client=ctx.actor.subject,
        actor=ctx.actor.model_dump_json(),
        scopes=" ".join(sorted(_scopes(ctx) or ())),
        level=level,
        group_id=group_id,
        types=",".join(asked.types),
        since=asked.since,
        request_url=str(ctx.request.url)[:2000],
    )
    try:
        with ctx.session.begin_nested():
            ctx.session.add(row)
    except IntegrityError:
        raise FhirError(
            429,
            "too-costly",
            "You already have an export running: wait for it to finish (poll its status URL) or cancel it.",
            headers={"Retry-After": str(rt.cfg.retry_after_seconds)},
        ) from None
    audit.append(
        ctx.session,
        actor=ctx.actor,
        action="bulk.export",
        target_type="bulk-export",
        target_id=row.id,
        detail={
            "level": level,
            "group": str(group_id) if group_id else None,
            "types": list(asked.types),
            "since": asked.since.isoformat() if asked.since else None,
        },
    )
    run = ExportRun(rt.engine, rt.cfg, row.id, ctx.fallback)
    return Response(
        status_code=202,
        headers={"Content-Location": f"{ctx.base}/$export-status/{row.id.hex}"},
        background=BackgroundTask(run.start),
    )


def _locality(ctx: Ctx, gid: str) -> Locality:
    found = ctx.session.get(Locality, resource_id(gid, "Group"))
    if found is None:
        raise FhirError(404, "not-found", f"No Group has the id '{gid}'.")
    return found


def manifest(ctx: Ctx, row: BulkExport) -> dict[str, Any]:
    """The completed export's manifest (Bulk Data IG v2)."""
    return {
        "transactionTime": row.transaction_time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "request": row.request_url,
        "requiresAccessToken": True,
        "output": [
            {
                "type": o["type"],
                "url": f"{ctx.base}/$export-file/{row.id.hex}/{o['file']}",
                "count": o["count"],
            }
            for o in jobs.outputs(row)
        ],
        "error": [],
    }


def _not_found(eid: str) -> FhirError:
    return FhirError(404, "not-found", f"No export has the id '{eid[:64]}' (or it has expired).")


def status(ctx: Ctx, rt: BulkRuntime, eid: str) -> Response:
    """202 with X-Progress while running; 200 with the manifest when done; 500 when it failed."""
    row = jobs.own_export(ctx.session, rt.cfg, eid, ctx.actor.subject)
    if row is None or (row.expires_at is not None and row.expires_at < utcnow()):
        raise _not_found(eid)
    if row.status == "in-progress":
        progress = f"{row.children_done} of {row.children_total or '?'} children"
        return Response(
            status_code=202, headers={"X-Progress": progress, "Retry-After": str(rt.cfg.retry_after_seconds)}
        )
    if row.status == "failed":
        return fhir_json(operation_outcome("exception", row.error or "The export failed."), 500)
    headers = {}
    if row.expires_at is not None:
        headers["Expires"] = row.expires_at.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    return Response(json.dumps(manifest(ctx, row)), 200, headers, media_type="application/json")


def add_bulk_routes(router: APIRouter) -> None:
    """The export routes (before the type routes, which would take '$export' for an id)."""

    @router.get("/$export", name="fhir_export_system", openapi_extra=doc.answers("202 and a status URL"))
    def export_system(ctx: CtxDep, rt: RuntimeDep, items: Items) -> Response:
        """Export every child you may read (Bulk Data IG: send 'Prefer: respond-async')."""
        return kick_off(ctx, rt, items, "system", None)

    @router.get(
        "/Patient/$export", name="fhir_export_Patient", openapi_extra=doc.answers("202 and a status URL")
    )
    def export_patients(ctx: CtxDep, rt: RuntimeDep, items: Items) -> Response:
        """Export every Patient you may read and their resources."""
        return kick_off(ctx, rt, items, "patient", None)

    @router.get(
        "/Group/{gid}/$export", name="fhir_export_Group", openapi_extra=doc.answers("202 and a status URL")
    )
    def export_group(gid: str, ctx: CtxDep, rt: RuntimeDep, items: Items) -> Response:
        """Export the children of a Group (a locality) and their resources."""
        return kick_off(ctx, rt, items, "group", _locality(ctx, gid).id)

    _add_status_routes(router)
    _add_group_routes(router)


def _add_status_routes(router: APIRouter) -> None:
    @router.get("/$export-status/{eid}", name="fhir_export_status", openapi_extra=doc.answers("The manifest"))
    def export_status(eid: str, ctx: CtxDep, rt: RuntimeDep) -> Response:
        """An export's status: 202 while it runs, 200 with the manifest when done."""
        return status(ctx, rt, eid)

    @router.delete("/$export-status/{eid}", name="fhir_export_cancel", openapi_extra=doc.answers("202"))
    def export_cancel(eid: str, ctx: CtxDep, rt: RuntimeDep) -> Response:
        """Cancel an export (or drop a finished one) and delete its files."""
        row = jobs.own_export(ctx.session, rt.cfg, eid, ctx.actor.subject)
        if row is None:
            raise _not_found(eid)
        jobs.cancel(ctx.session, rt.cfg, row)
        audit.append(
            ctx.session,
            actor=ctx.actor,
            action="bulk.export.cancel",
            target_type="bulk-export",
            target_id=row.id,
        )
        return Response(status_code=202)

    @router.get("/$export-file/{eid}/{name}", name="fhir_export_file", openapi_extra=doc.answers("NDJSON"))
    def export_file(eid: str, name: str, ctx: CtxDep, rt: RuntimeDep) -> Response:
        """One file of a completed export, streamed from disk."""
        row = jobs.own_export(ctx.session, rt.cfg, eid, ctx.actor.subject)
        if row is None or row.status != "complete" or (row.expires_at and row.expires_at < utcnow()):
            raise _not_found(eid)
        path = file_path(rt.cfg, row.id, name, jobs.outputs(row))
        if path is None or not path.is_file():
            raise FhirError(404, "not-found", f"Export '{eid[:64]}' has no file '{name[:64]}'.")
        return FileResponse(path, media_type=NDJSON)


def _add_group_routes(router: APIRouter) -> None:
    @router.get("/Group/{gid}", name="fhir_read_Group", openapi_extra=doc.read("Group"))
    def read_group(gid: str, ctx: CtxDep) -> Response:
        """Read a Group: a locality's children (members are not listed: export them)."""
        res = group(_locality(ctx, gid))
        return fhir_json(res, 200, etag(res))

    @router.get("/Group", name="fhir_search_Group", openapi_extra=doc.answers("A searchset Bundle"))
    def search_groups(ctx: CtxDep) -> Response:
        """Every Group (one per locality): parameters are ignored (and reported), unless 'Prefer:
        handling=strict', which refuses them."""
        found = [group(loc) for loc in localities(ctx.session)]
        return fhir_json(whole_searchset(ctx, "Group", found, "Groups"))
