"""EpisodeOfCare writes: record, change, end or confirm an involvement."""

from __future__ import annotations

from typing import Any

from directory import service
from directory.models import Involvement, InvolvementCreate, InvolvementEnd, Practitioner, Service
from interop import mapping as m
from interop import picture
from interop import repository as repo
from interop.api.context import Ctx, resource_id
from interop.api.writes.common import Written, conditional, same_id
from interop.outcome import FhirError, mapped


def episode(ctx: Ctx, inv: Involvement) -> dict[str, Any]:
    """An involvement as an EpisodeOfCare (its writer may see it: they just recorded or changed it)."""
    found = repo.service_with_org(ctx.session, inv.service_id)
    assert found is not None
    svc, org = found
    practitioner = ctx.session.get(Practitioner, inv.practitioner_id) if inv.practitioner_id else None
    return m.episode_of_care(picture.episode_row(inv, svc, org, practitioner))


def create_episode(ctx: Ctx, body: dict[str, Any], *, if_none_exist: str | None = None) -> Written:
    """Record an involvement from an EpisodeOfCare (conditionally, with If-None-Exist)."""
    ctx.need("EpisodeOfCare", "c")
    ep = mapped(m.episode_of_care_in, body)
    found = conditional(ctx, "EpisodeOfCare", if_none_exist)
    if found is not None:
        return found
    svc = ctx.session.get(Service, ep.service_id)
    if svc is None:
        raise FhirError(
            404,
            "not-found",
            "No HealthcareService has that id; search HealthcareService first.",
            where="EpisodeOfCare.extension",
        )
    practitioner = ctx.session.get(Practitioner, ep.practitioner_id) if ep.practitioner_id else None
    try:
        data = InvolvementCreate(
            service_id=ep.service_id,
            practitioner_id=ep.practitioner_id,
            role=ep.role or (practitioner.role if practitioner else svc.name)[:80],
            level_of_need=ep.level_of_need or svc.level_of_need,
            start_date=ep.start_date,
            sensitive=ep.sensitive,
            consent_id=ep.consent_id,
            source=(ep.source or f"fhir:{ctx.actor.client_id or ctx.actor.subject}")[:80],
        )
    except ValueError as exc:
        raise FhirError(400, "invalid", str(exc), where="EpisodeOfCare") from None
    inv = service.record_involvement(ctx.session, actor=ctx.actor, child_id=ep.child_id, data=data)
    if ep.status == "ended" and ep.end_date is not None:
        inv = service.end_involvement(
            ctx.session, actor=ctx.actor, involvement_id=inv.id, data=InvolvementEnd(end_date=ep.end_date)
        )
    ctx.pictures.forget(ep.child_id)
    return Written(201, episode(ctx, inv))


def _refuse_fixed_changes(ep: m.EpisodeIn, inv: Involvement) -> None:
    """Patient, service, start and sensitivity are the involvement: a change is a new one."""
    fixed = {
        "patient": (ep.child_id, inv.child_id),
        "service": (ep.service_id, inv.service_id),
        "period.start": (ep.start_date, inv.start_date),
        "sensitivity": (ep.sensitive, inv.sensitive),
    }
    changed = [k for k, (new, old) in fixed.items() if new != old]
    if changed:
        raise FhirError(
            422,
            "business-rule",
            f"These cannot change on an existing involvement: "
            f"{', '.join(changed)}. End it and record a new one.",
            where="EpisodeOfCare",
        )


def update_episode(ctx: Ctx, rid: str, body: dict[str, Any], *, expected: int | None) -> Written:
    """Change or end an involvement from an EpisodeOfCare; an unchanged one is confirmed as still current."""
    ctx.need("EpisodeOfCare", "u")
    inv = ctx.session.get(Involvement, resource_id(rid, "EpisodeOfCare"))
    if inv is None:
        raise FhirError(404, "not-found", f"No EpisodeOfCare has the id '{rid}'; create one with POST.")
    same_id("EpisodeOfCare", rid, body)
    ep = mapped(m.episode_of_care_in, body)
    if ctx.pictures.of(inv.child_id).get("EpisodeOfCare", rid) is None:
        raise FhirError(404, "not-found", f"No EpisodeOfCare has the id '{rid}', or it is not shown to you.")
    _refuse_fixed_changes(ep, inv)
    update = ep.update(role=inv.role, level_of_need=inv.level_of_need)
    unchanged = (
        update.practitioner_id == inv.practitioner_id
        and update.role == inv.role
        and update.level_of_need == inv.level_of_need
        and (update.end_date is None) == (inv.status == "active")
        and (inv.status == "active" or update.end_date == inv.end_date)
    )
    if unchanged:
        service.check_version("involvement", inv.version, expected)
        if inv.status == "active":
            inv = service.confirm_involvement(ctx.session, actor=ctx.actor, involvement_id=inv.id)
            ctx.pictures.forget(inv.child_id)
        return Written(200, episode(ctx, inv))
    inv = service.update_involvement(
        ctx.session, actor=ctx.actor, involvement_id=inv.id, data=update, expected_version=expected
    )
    ctx.pictures.forget(inv.child_id)
    return Written(200, episode(ctx, inv))
