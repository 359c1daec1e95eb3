"""EpisodeOfCare `_history` and vread: every version of an involvement, from its snapshots."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from directory import repository as drepo
from directory.models import Involvement, InvolvementVersion, Organisation, Practitioner, Service
from interop import mapping as m
from interop import picture
from interop import repository as repo
from interop.api.context import Ctx, resource_id
from interop.api.read import read_child_resource


def visible_involvement(ctx: Ctx, rid: str) -> Involvement:
    """An involvement the caller may see (its reading audited as a read of the child's record)."""
    read_child_resource(ctx, "EpisodeOfCare", rid)  # the visibility rule and the audited read
    inv = ctx.session.get(Involvement, resource_id(rid, "EpisodeOfCare"))
    assert inv is not None
    return inv


def history_entries(ctx: Ctx, inv: Involvement, version: int | None = None) -> list[dict[str, Any]]:
    """The history entries of an involvement, newest first (only `version`, when given)."""
    found = repo.service_with_org(ctx.session, inv.service_id)
    assert found is not None
    svc, org = found
    entries = [
        _snapshot_entry(ctx, inv, snap, svc, org)
        for snap in drepo.involvement_history(ctx.session, inv.id)
        if version is None or snap.version == version
    ]
    if not entries and version in (None, inv.version):
        # rows loaded in bulk (the seed, an import) have no history yet: their current state is version n
        res = m.episode_of_care(
            picture.episode_row(
                inv,
                svc,
                org,
                ctx.session.get(Practitioner, inv.practitioner_id) if inv.practitioner_id else None,
            )
        )
        entries.append(
            {
                "fullUrl": f"{ctx.base}/EpisodeOfCare/{inv.id}",
                "resource": res,
                "request": {"method": "PUT", "url": f"EpisodeOfCare/{inv.id}"},
                "response": {"status": "200", "etag": f'W/"{inv.version}"'},
            }
        )
    return entries


def _snapshot_entry(
    ctx: Ctx, inv: Involvement, snap: InvolvementVersion, svc: Service, org: Organisation
) -> dict[str, Any]:
    """One version of an involvement, as the change that made it."""
    data = json.loads(snap.snapshot)
    row = Involvement.model_validate(
        {**data, "id": inv.id, "version": snap.version, "recorded_by": snap.recorded_by}
    )
    practitioner = ctx.session.get(Practitioner, row.practitioner_id) if row.practitioner_id else None
    res = m.episode_of_care(picture.episode_row(row, svc, org, practitioner))
    res["meta"]["lastUpdated"] = snap.recorded_at.isoformat()
    return history_entry(
        ctx, res, inv.id, version=snap.version, at=snap.recorded_at, created=snap.change == "record"
    )


def history_entry(
    ctx: Ctx, resource: dict[str, Any], rid: uuid.UUID, *, version: int, at: datetime, created: bool
) -> dict[str, Any]:
    """One version of a resource in a history Bundle, as the create or update that made it."""
    kind = resource["resourceType"]
    return {
        "fullUrl": f"{ctx.base}/{kind}/{rid}",
        "resource": resource,
        "request": {"method": "POST" if created else "PUT", "url": kind if created else f"{kind}/{rid}"},
        "response": {
            "status": "201" if created else "200",
            "etag": f'W/"{version}"',
            "lastModified": at.isoformat(),
        },
    }


def history_bundle(ctx: Ctx, rid: str) -> dict[str, Any]:
    """Every version of an involvement, newest first, as a history Bundle."""
    entries = history_entries(ctx, visible_involvement(ctx, rid))
    return history_of(entries, self_url=f"{ctx.base}/EpisodeOfCare/{rid}/_history")


def history_of(entries: list[dict[str, Any]], *, self_url: str) -> dict[str, Any]:
    """A history Bundle of these entries (newest first), with its `self` link."""
    return {
        "resourceType": "Bundle",
        "id": uuid.uuid4().hex,
        "type": "history",
        "total": len(entries),
        "link": [{"relation": "self", "url": self_url}],
        "entry": entries,
    }
