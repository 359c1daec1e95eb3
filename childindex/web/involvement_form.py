"""Recording an involvement from the pages, defaulting to what the signed-in person most likely means.

The common case is "my service is working with this child, I am the practitioner, from today": the
form opens with the person's own service (their organisation's, when it has one), themselves and
today already chosen, so one click records it (GOV.UK question pages: prefill what you know). Anyone
else is one choice away, with role and organisation beside each name ("Willow Lewis, class teacher,
Cowley Primary" and "Willow Lewis, GP, Leys Surgery" are told apart).
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from fastapi import Request
from sqlalchemy.exc import NoResultFound
from sqlmodel import Session, col, select

from childindex.web.forms import build, collect, date_field, text
from directory import repository as repo
from directory import service
from directory.models import Actor, ChildCard, InvolvementCreate, Organisation, Practitioner, Service

OTHER = "other"
ME = "me"
NOBODY = "none"
LABELS = {
    "service_id": "the service",
    "role": "your role with the child",
    "level_of_need": "the level of need",
    "practitioner_id": "the practitioner",
    "consent_id": "the consent",
}
CHOSEN = ("service_id", "practitioner_id", "level_of_need", "consent_id")


def _me(db: Session, actor: Actor) -> tuple[Practitioner, Organisation] | None:
    if actor.practitioner_id is None:
        return None
    try:
        return repo.practitioner_contact(db, actor.practitioner_id)
    except NoResultFound:
        return None


def catalogue(db: Session, actor: Actor, card: ChildCard, request: Request) -> dict[str, Any]:
    """What the form offers: the person's own services first, everyone with role and organisation."""
    orgs = {o.id: o.name for o in db.exec(select(Organisation)).all()}
    services = list(repo.services(db))
    people = list(repo.practitioners(db))
    mine = _me(db, actor)
    own = [s for s in services if mine is not None and s.organisation_id == mine[1].id]
    return {
        "me": mine,
        "own_services": own,
        "service_options": [(s.id, f"{s.name}, {orgs.get(s.organisation_id, '')}") for s in services],
        "practitioner_options": [
            (p.id, f"{p.name}, {p.role}, {orgs.get(p.organisation_id, '')}")
            for p in people
            if mine is None or p.id != mine[0].id
        ],
        "service_levels": {str(s.id): s.level_of_need for s in services},
    }


def defaults(db: Session, actor: Actor, card: ChildCard, today: date) -> dict[str, Any]:
    """The answers most people give: my (first) own service at its level, me in my role, today."""
    values: dict[str, Any] = {"start-day": str(today.day), "start-month": str(today.month)}
    values["start-year"] = str(today.year)
    mine = _me(db, actor)
    if mine is None:
        values["practitioner"] = NOBODY
        return values
    person, org = mine
    values |= {"practitioner": ME, "role": person.role}
    own = db.exec(
        select(Service).where(Service.organisation_id == org.id).order_by(col(Service.name))
    ).first()
    if own is not None:
        values |= {"service_id": str(own.id), "level_of_need": str(own.level_of_need)}
    return values


def _chosen_service(form: dict[str, Any]) -> str | None:
    picked = text(form, "service_id")
    return text(form, "other_service_id") if picked == OTHER else picked


def _chosen_practitioner(actor: Actor, form: dict[str, Any], errors: dict[str, str]) -> str | None:
    who = text(form, "practitioner")
    if who is None:  # a form without the question (an older page, a script): the list's answer
        return text(form, "practitioner_id")
    if who == ME:
        if actor.practitioner_id is None:
            errors["practitioner"] = "Choose who is working with the child"
            return None
        return str(actor.practitioner_id)
    if who == OTHER:
        chosen = text(form, "practitioner_id")
        if chosen is None:
            errors["practitioner_id"] = "Choose the practitioner who is working with the child"
        return chosen
    if who != NOBODY:
        errors["practitioner"] = "Choose who is working with the child"
    return None


def record(db: Session, actor: Actor, child_id: uuid.UUID, form: dict[str, Any], request: Request) -> str:
    """Record it; every problem with the form is reported at once."""
    errors: dict[str, str] = {}
    start = collect(errors, date_field, form, "start", "the start date", required=True)
    service_id = _chosen_service(form)
    practitioner_id = _chosen_practitioner(actor, form, errors)
    data = build(
        InvolvementCreate,
        {
            "service_id": service_id,
            "practitioner_id": practitioner_id,
            "role": text(form, "role"),
            "level_of_need": text(form, "level_of_need"),
            "start_date": start if start is not None else date.today(),  # its problem is reported
            "consent_id": text(form, "consent_id"),
            "source": "web",
        },
        LABELS,
        chosen=CHOSEN,
        errors=errors,
        keys={
            "start_date": "start",
            "service_id": "other_service_id" if text(form, "service_id") == OTHER else "service_id",
        },
    )
    service.record_involvement(db, actor=actor, child_id=child_id, data=data)
    return "The involvement is recorded."
