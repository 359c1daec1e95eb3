"""The pages of requests about a CAF (issue #18): "Your requests" (those addressed to you, with
Accept and Decline, and those you made), the card's pending hand-over and its "Ask to join" button.
The rules are the domain's (directory/service/requests.py)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from childindex.web.deps import (
    Practice,
    Writer,
    check_csrf,
    csrf_refused,
    flash,
    refused,
    render,
    unit_of_work,
)
from childindex.web.forms import FormData, text
from directory import repository as repo
from directory import service
from directory.errors import DomainError, InvalidInput, NotAllowed, NotFound
from directory.models import Actor, Assessment, ChildCard, JoinAsk, Practitioner, RequestAnswer, utcnow

router = APIRouter(include_in_schema=False)

KINDS = {
    "hand-over": "Take on the Lead Professional role",
    "join": "Asks to join the Team Around the Child",
    "invite": "Join the Team Around the Child",
}


def requests_on_card(request: Request, actor: Actor, card: ChildCard) -> dict[str, Any]:
    """What the card shows of requests: the pending hand-over (as this reader may see it), and whether
    they may ask to join the TAC (or already did)."""
    out: dict[str, Any] = {"hand_over_pending": None, "tac_join": None}
    with unit_of_work(request) as db:
        caf = repo.open_caf(db, card.id)
        if caf is None:
            return out
        pending = service.pending_hand_over(db, caf.id)
        if pending is not None:
            out["hand_over_pending"] = service.request_read(db, actor, pending)
        if service.may_ask_to_join(db, actor, caf) and actor.practitioner_id is not None:
            asked = service.pending_tac_request(db, caf.id, actor.practitioner_id)
            me = repo.get(db, Practitioner, actor.practitioner_id)
            out["tac_join"] = {
                "caf_id": caf.id,
                "asked": service.request_read(db, actor, asked) if asked is not None else None,
                "role": me.role if me is not None else "",
            }
    return out


@router.get("/requests", name="web_requests")
def web_requests(request: Request, actor: Practice) -> Response:
    """Requests addressed to you (Accept, Decline) and those you made, newest first."""
    try:
        with unit_of_work(request) as db:
            mine = service.my_requests(db, actor=actor)
    except NotAllowed as exc:
        return render(request, "message.html", actor=actor, title="No requests", message=exc.message)
    to_answer = [r for r in mine if r.mine_to_answer]
    others = [r for r in mine if not r.mine_to_answer]
    return render(request, "requests/list.html", actor=actor, to_answer=to_answer, others=others, kinds=KINDS)


def _answer(
    request: Request, actor: Actor, request_id: uuid.UUID, form: dict[str, Any], accept: bool
) -> Response:
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    try:
        with unit_of_work(request) as db:
            done = service.answer_request(
                db,
                actor=actor,
                request_id=request_id,
                accept=accept,
                data=RequestAnswer(reason=text(form, "reason") or None),
                now=utcnow(),
            )
    except DomainError as exc:
        status = 404 if isinstance(exc, NotFound) else 403 if isinstance(exc, NotAllowed) else 409
        return refused(request, actor, exc, status)
    if not accept:
        flash(request, "You declined the request. Whoever asked is told.")
    elif done.kind == "hand-over":
        flash(request, "You are now the Lead Professional.")
    elif done.kind == "join":
        flash(request, "They are now a member of the Team Around the Child.")
    else:
        flash(request, "You are now a member of the Team Around the Child.")
    return RedirectResponse("/requests", status_code=303)


@router.post("/requests/{request_id}/accept", name="web_request_accept")
def web_request_accept(request_id: uuid.UUID, request: Request, actor: Writer, form: FormData) -> Response:
    """Accept a request addressed to you."""
    return _answer(request, actor, request_id, form, True)


@router.post("/requests/{request_id}/decline", name="web_request_decline")
def web_request_decline(request_id: uuid.UUID, request: Request, actor: Writer, form: FormData) -> Response:
    """Decline a request addressed to you."""
    return _answer(request, actor, request_id, form, False)


@router.post("/children/{child_id}/tac-join", name="web_tac_join")
def web_tac_join(child_id: uuid.UUID, request: Request, actor: Writer, form: FormData) -> Response:
    """Ask the CAF's holder to let you join its Team Around the Child (one action from the card)."""
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    try:
        caf_id = uuid.UUID(text(form, "caf_id") or "")
    except ValueError:
        return refused(request, actor, NotFound("This form does not name a CAF; go back to the record."), 404)
    try:
        with unit_of_work(request) as db:
            caf = repo.get(db, Assessment, caf_id)
            if caf is None or caf.child_id != child_id:
                raise NotFound("That CAF is not this child's; go back to the record and start again.")
            role = text(form, "role") or ""
            if not role:
                raise InvalidInput("Say what your role in the Team Around the Child would be.")
            data = JoinAsk(role=role[:80], reason=(text(form, "reason") or None))
            service.ask_to_join(db, actor=actor, caf_id=caf_id, data=data, now=utcnow(), source="pages")
    except DomainError as exc:
        status = 404 if isinstance(exc, NotFound) else 403 if isinstance(exc, NotAllowed) else 409
        return refused(request, actor, exc, status)
    flash(request, "You asked to join the Team Around the Child. You are told when the CAF's holder answers.")
    return RedirectResponse(f"/children/{child_id}", status_code=303)
