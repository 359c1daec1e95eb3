"""Patient `_history` and vread: every version of a child's record, from its snapshots
(directory.service.child_history), as this caller may see it.

What a version withholds from the caller (a shielded record's whereabouts, carers, earlier names and
identifiers: see directory/service/history.py) is not in its Patient: the address is left out, and
the names and identifiers are those the caller sees today. The GP practice is not in the history.
"""

from __future__ import annotations

import uuid
from typing import Any

from directory import service
from directory.models import AddressRead, ChildCard, ChildVersionRead, IdentifierRead, NameRead
from interop import mapping as m
from interop.api.context import Ctx, resource_id
from interop.api.history import history_entry, history_of
from interop.api.read import read_child_resource


def _card_at(card: ChildCard, version: ChildVersionRead) -> ChildCard:
    """The card as it stood at a version, with only what the caller may see of it."""
    d = version.details or {}
    update: dict[str, Any] = {
        "status": d.get("status", card.status),
        "sex": d.get("sex", card.sex),
        "date_of_birth": d.get("date_of_birth"),
        "expected_delivery_date": d.get("expected_delivery_date"),
        "shielded": bool(d.get("shielded", card.shielded)),
        "address": AddressRead.model_validate(d["address"]) if d.get("address") else None,
        "gp_practice": None,
        "age_years": None,
    }
    if "names" in d:
        update["names"] = [NameRead.model_validate(n) for n in d["names"]]
    if "identifiers" in d:
        update["identifiers"] = [IdentifierRead.model_validate(i) for i in d["identifiers"]]
    return ChildCard.model_validate({**card.model_dump(), **update})


def patient_history_entries(ctx: Ctx, rid: str, version: int | None = None) -> list[dict[str, Any]]:
    """The versions of a child's record (or one of them) as history entries, newest first; audited."""
    read_child_resource(ctx, "Patient", rid)  # the visibility rule (404) and the audited read
    child_id = resource_id(rid, "Patient")
    card = ctx.pictures.of(child_id).card
    _child, versions = service.child_history(ctx.session, actor=ctx.actor, child_id=child_id, version=version)
    return [_entry(ctx, child_id, card, v) for v in reversed(versions)]


def _entry(ctx: Ctx, child_id: uuid.UUID, card: ChildCard, v: ChildVersionRead) -> dict[str, Any]:
    res = m.patient(_card_at(card, v), m.PatientExtras(version=v.version, updated_at=v.at))
    return history_entry(ctx, res, child_id, version=v.version, at=v.at, created=v.version == 1)


def patient_history_bundle(ctx: Ctx, rid: str) -> dict[str, Any]:
    """Every version of a child's record, newest first, as a history Bundle."""
    return history_of(patient_history_entries(ctx, rid), self_url=f"{ctx.base}/Patient/{rid}/_history")
