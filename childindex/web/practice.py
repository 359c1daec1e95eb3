"""The practitioner's pages: find a child and read the involvement card (acting on it: card_actions.py).

Every page calls the same use cases as the JSON API (directory.service, search.api.run_search) in the
same kind of transaction; nothing about cards, shields or CAF rules is decided here.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from auth.deps import RequireScope
from auth.policy import PRACTICE
from auth.purposes import allowed_purposes, check_purpose
from childindex.web.deps import (
    CardReader,
    CardVisitor,
    LogReader,
    check_csrf,
    csrf_refused,
    flash,
    refused,
    render,
    unit_of_work,
    web_session,
)
from childindex.web.forms import FormData, text
from childindex.web.merge_pages import merges_on_card
from childindex.web.plan_card import plan_on_card
from childindex.web.record_pages import card_extras, read_only
from childindex.web.requests_pages import requests_on_card
from directory import service
from directory.errors import DomainError, InvalidInput, NotFound
from directory.http.config import practice
from directory.models import (
    OPEN_CAF_STATUSES,
    Actor,
    ChildCard,
    Purpose,
    Role,
    utcnow,
)
from directory.service import ACCESS_LOG_READERS, SHIELD_SETTERS
from directory.service.common import load_child

router = APIRouter(include_in_schema=False)
WRITERS = PRACTICE - {Role.SYSTEM}  # the people who may record and change children from the pages
SHIELD_ROLES = frozenset(SHIELD_SETTERS)  # designated practitioner, child protection, directory admin

PURPOSES = [
    (Purpose.CONSIDERING_CAF, "I am considering an early help assessment (CAF)"),
    (Purpose.DIRECT_CARE, "I am working with the child or family now"),
    (Purpose.CAF_COORDINATION, "I am co-ordinating a CAF or Team Around the Child"),
    (Purpose.SAFEGUARDING_CONCERN, "I have a safeguarding concern"),
    (Purpose.ADMINISTRATION, "Directory administration"),
    (Purpose.AUDIT, "Reviewing the use of the directory (audit)"),
]

PURPOSE_HELP = {
    Purpose.CONSIDERING_CAF: (
        "You think the child may need early help and want to know who is involved first."
    ),
    Purpose.DIRECT_CARE: "You or your service are working with the child or their family at the moment.",
    Purpose.CAF_COORDINATION: "You hold, lead or sit on this child's CAF or Team Around the Child.",
    Purpose.SAFEGUARDING_CONCERN: "You are worried about the child's safety: follow your safeguarding "
    "procedures as well.",
    Purpose.ADMINISTRATION: "You are putting a record right: a merge, a feed row, a correction.",
    Purpose.AUDIT: "You are checking how the directory has been used.",
}
"""One line of help under each reason for looking (the search form and the card's question)."""


def printed_now() -> datetime:
    """Now, in the authority's local time, for a printed card's footer."""
    try:
        return datetime.now(ZoneInfo("Europe/London"))
    except ZoneInfoNotFoundError:  # no time zone data on this host: UTC, and say so by the offset
        return datetime.now(UTC)


def purposes_for(role: Role) -> list[tuple[Purpose, str]]:
    """The purposes this role may give (auth/purposes.py), as the pages offer them."""
    allowed = set(allowed_purposes(role))
    return [(p, label) for p, label in PURPOSES if p in allowed]


def chosen_purpose(actor: Actor, code: str | None) -> Purpose | None:
    """The purpose picked on a form: None when it is none of ours; 403 when the role may not give it."""
    if code not in {p.value for p, _ in PURPOSES}:
        return None
    purpose = Purpose(code)
    check_purpose(actor.role, purpose)
    return purpose


# The search form and its results: childindex/web/search_pages.py.


# --------------------------------------------------------------------------- the card


def _read_card(request: Request, actor: Actor, child_id: uuid.UUID) -> tuple[ChildCard, service.YourPart]:
    with unit_of_work(request) as db:
        card = service.read_card(
            db, actor=actor, child_id=child_id, now=utcnow(), fallback_team=practice(request).fallback_team
        )
        return card, service.your_part(db, actor=actor, child_id=child_id)


def _merged_into(request: Request, actor: Actor, child_id: uuid.UUID) -> uuid.UUID | None:
    """The record kept, when this one was merged into it (the read is audited as sent on)."""
    with unit_of_work(request) as db:
        kept = service.resolve_merged(db, child_id)
        if kept is not None:
            service.audit_merged_read(db, actor=actor, child_id=child_id, kept_id=kept)
        return kept


def _show_card(request: Request, actor: Actor, child_id: uuid.UUID) -> Response:
    if actor.purpose is None:
        offered = purposes_for(actor.role)
        then = _then(request.query_params.get("then"))  # the form that asked (card_actions.py)
        return render(
            request,
            "purpose.html",
            actor=actor,
            child_id=child_id,
            purposes=offered,
            purpose_help=PURPOSE_HELP,
            errors={},
            then=then,
        )
    try:
        moved = _merged_into(request, actor, child_id)
        if moved is not None:
            flash(request, "The record you asked for was merged into this one.")
            return RedirectResponse(f"/children/{moved}", status_code=303)
        card, part = _read_card(request, actor, child_id)
    except NotFound as exc:
        return refused(request, actor, exc, 404)
    open_caf = card.caf is not None and card.caf.status in {s.value for s in OPEN_CAF_STATUSES}
    fixed = read_only(card)  # an archived or sealed record: read only, no actions
    return render(
        request,
        "card.html",
        actor=actor,
        card=card,
        open_caf=open_caf,
        part=part,
        may_write=not fixed
        and actor.role
        in {
            Role.PRACTITIONER,
            Role.DESIGNATED_PRACTITIONER,
            Role.CHILD_PROTECTION,
            Role.LOCAL_DELIVERY_TEAM,
            Role.DIRECTORY_ADMIN,
        },
        may_see_log=actor.role in ACCESS_LOG_READERS,
        may_shield=actor.role in SHIELD_ROLES and card.status == "active",
        may_override=not fixed and actor.role == Role.CHILD_PROTECTION and card.shield_notice is not None,
        purpose_label=dict(PURPOSES).get(actor.purpose, actor.purpose),
        printed_at=printed_now(),  # the print's date and time (app.mjs sets it again when printing)
        merges=None if fixed else merges_on_card(request, actor, card),
        **card_extras(request, actor, card),
        **requests_on_card(request, actor, card),
        **plan_on_card(request, actor, card),  # the TAC's plan (childindex/web/plan_pages.py)
    )


@router.get("/children/{child_id}", name="web_card")
def web_card(child_id: uuid.UUID, request: Request, actor: CardReader) -> Response:
    """The involvement card (audited). Asks the purpose of use first if none was given."""
    return _show_card(request, actor, child_id)


@router.post("/children/{child_id}/purpose", name="web_card_purpose")
def web_card_purpose(child_id: uuid.UUID, request: Request, actor: CardVisitor, form: FormData) -> Response:
    """Record why you are looking, then show the card."""
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    code = text(form, "purpose")
    if chosen_purpose(actor, code) is None:
        return render(
            request,
            "purpose.html",
            actor=actor,
            child_id=child_id,
            purposes=purposes_for(actor.role),
            purpose_help=PURPOSE_HELP,
            errors={"purpose": "Select why you are looking at this record"},
            then=_then(text(form, "then")),
            status_code=400,
        )
    session = web_session(request)
    assert session is not None
    session.purpose = code
    then = _then(text(form, "then"))
    return RedirectResponse(f"/children/{child_id}" + (f"/{then}" if then else ""), status_code=303)


_ACTION_SLUG = re.compile(r"[a-z][a-z-]{0,39}")


def _then(slug: str | None) -> str | None:
    """The action form to go on to once the purpose is given: a slug under this child, nothing else."""
    return slug if slug and _ACTION_SLUG.fullmatch(slug) else None


ShieldOverrider = Annotated[
    Actor, Depends(RequireScope("directory.search", roles={Role.CHILD_PROTECTION}, rate_limited=True))
]


@router.post("/children/{child_id}/override", name="web_card_override")
def web_card_override(
    child_id: uuid.UUID, request: Request, actor: ShieldOverrider, form: FormData
) -> Response:
    """Child protection: see a shielded record once, with a reason (audited and alerted)."""
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    reason = text(form, "reason")
    if not reason:
        return refused(
            request, actor, InvalidInput("Give the reason you need to see the shielded details."), 400
        )
    return _show_card(request, actor.model_copy(update={"shield_override_reason": reason[:500]}), child_id)


@router.get("/children/{child_id}/access-log", name="web_access_log")
def web_access_log(child_id: uuid.UUID, request: Request, actor: LogReader) -> Response:
    """Who has looked at this record (auditors, directory admins, designated practitioners). Audited."""
    try:
        with unit_of_work(request) as db:
            entries = service.access_log(db, actor=actor, child_id=child_id)
            child = load_child(db, child_id)
            shielded_view = child.shielded and service.may_see_shielded(child, actor)  # the banner
    except DomainError as exc:
        return refused(request, actor, exc, 404 if isinstance(exc, NotFound) else 403)
    return render(
        request,
        "access_log.html",
        actor=actor,
        child_id=child_id,
        entries=entries,
        shielded_view=shielded_view,
    )
