"""Auditor pages: search the audit log by the child's details (name and date of birth, or NHS number),
user and date; chain verification; alerts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from auth.deps import note_looks
from childindex.web.alert_words import alert_views, triggers
from childindex.web.audit_views import EventRow, event_rows
from childindex.web.deps import Auditor, check_csrf, csrf_refused, render, unit_of_work
from childindex.web.forms import FormData, FormErrors, date_field, text
from directory import audit
from directory import repository as repo
from directory.http.config import practice
from directory.http.lanes import in_search_lane
from directory.models import Actor, Purpose
from search.api import SearchCriteria, SearchHit, run_search

router = APIRouter(include_in_schema=False)
ALERTS = (
    "alert.trawling",
    "alert.shield-override",
    "alert.signin.locked",
    "alert.signin.many-sources",
    "auth.refresh.reused",
)


def _period(q: dict[str, Any], errors: dict[str, str]) -> tuple[datetime | None, datetime | None]:
    """The from and to days as a half-open UTC period (problems go into `errors`)."""
    since = until = None
    try:
        day = date_field(q, "from", "the first day")
        since = datetime.combine(day, time(0), tzinfo=UTC) if day else None
    except FormErrors as exc:
        errors.update(exc.errors)
    try:
        day = date_field(q, "to", "the last day")
        until = datetime.combine(day, time(0), tzinfo=UTC) + timedelta(days=1) if day else None
    except FormErrors as exc:
        errors.update(exc.errors)
    if since and until and until <= since:
        errors["to"] = "The last day must be the same as or after the first day"
    return since, until


def _events(
    request: Request,
    actor: Actor,
    *,
    child_id: uuid.UUID | None,
    user: str | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[EventRow]:
    """The matching events as rows (grouped, labelled, by name); the search itself is audited."""
    with unit_of_work(request) as db:
        events = list(
            repo.audit_events(
                db,
                child_id=child_id,
                subject=user,
                since=since,
                until=until,
                action_prefix=action,
                role=actor.role,
            )
        )
        audit.append(
            db,
            actor=actor,
            action="audit.search",
            target_type="child" if child_id else None,
            target_id=child_id,
            detail={"user": user, "returned": len(events)},
        )
        return event_rows(db, events, repo.audit_notes(db, [e.seq for e in events]))


def _page(request: Request, actor: Actor, status_code: int = 200, **context: Any) -> Response:
    context.setdefault("values", {})
    context.setdefault("errors", {})
    return render(request, "audit/search.html", actor=actor, status_code=status_code, **context)


@router.get("/audit", name="web_audit")
def web_audit(request: Request, actor: Auditor) -> Response:
    """The audit log search form; a link may still name a record by its id, a user or an action."""
    q = dict(request.query_params)
    errors: dict[str, str] = {}
    child_id = None
    if q.get("child"):
        try:
            child_id = uuid.UUID(q["child"].strip())
        except ValueError:
            errors["child"] = "That link does not name a record: search by the child's details instead"
    since, until = _period(q, errors)
    searched = any(q.get(k) for k in ("child", "user", "action", "from-year", "to-year"))
    if not searched or errors:
        return _page(request, actor, values=q, errors=errors)
    rows = _events(
        request,
        actor,
        child_id=child_id,
        user=(q.get("user") or "").strip() or None,
        action=(q.get("action") or "").strip() or None,
        since=since,
        until=until,
    )
    return _page(request, actor, values=q, rows=rows, searched=True)


def _child_criteria(form: dict[str, Any], errors: dict[str, str]) -> SearchCriteria | None:
    """The child's details as search criteria: an NHS number, or a name and date of birth."""
    nhs = "".join((text(form, "nhs_number") or "").split())
    given, family = text(form, "given"), text(form, "family")
    try:
        born = date_field(form, "dob", "the date of birth")
    except FormErrors as exc:
        errors.update(exc.errors)
        born = None
    if not (nhs or given or family or born or "dob" in errors):
        return None
    if nhs:
        if not (nhs.isdigit() and len(nhs) == 10):
            errors["nhs_number"] = "Enter the NHS number as 10 digits, such as 943 476 5919"
        return None if "nhs_number" in errors else SearchCriteria(nhs_number=nhs)
    if not family:
        errors["family"] = "Enter the child's family name, or their NHS number"
    if born is None and "dob" not in errors:
        errors["dob"] = "Enter the child's date of birth, or their NHS number"
    if errors:
        return None
    return SearchCriteria(given=given, family=family, birth_date=born)


@router.post("/audit", name="web_audit_search")
async def web_audit_search(request: Request, actor: Auditor, form: FormData) -> Response:
    """The log about a person or a child (found by the search engine, in the search lane:
    directory/http/lanes.py) over a period."""
    return await in_search_lane(_audit_search, request, actor, form)


def _audit_search(request: Request, actor: Actor, form: dict[str, Any]) -> Response:
    """Find the child through the directory (a search for the purpose of audit, itself audited), then
    the log about them; or the log of a user or a period. The details stay out of the address."""
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    values = {k: v for k, v in form.items() if k != "csrf_token"}
    errors: dict[str, str] = {}
    criteria = _child_criteria(form, errors)
    since, until = _period(form, errors)
    user = text(form, "user")
    if not errors and criteria is None and not (user or since or until):
        errors["family"] = "Enter the child's details, a user or the days to look at"
    if errors:
        return _page(request, actor, values=values, errors=errors, status_code=400)
    child_id = None
    if criteria is not None:
        hits = _find(request, actor, criteria)
        chosen = text(form, "chosen")
        picked = [h for h in hits if chosen and str(h.child_id) == chosen]
        if picked or len(hits) == 1:
            child = (picked or hits)[0]
            child_id = child.child_id
            values["child_name"] = child.name
        else:
            return _page(request, actor, values=values, hits=hits, chose=True)
    rows = _events(request, actor, child_id=child_id, user=user, action=None, since=since, until=until)
    return _page(request, actor, values=values, rows=rows, searched=True)


def _find(request: Request, actor: Actor, criteria: SearchCriteria) -> list[SearchHit]:
    """The children these details find, searched for the purpose of audit (audited as a search)."""
    acting = actor.model_copy(update={"purpose": Purpose.AUDIT})
    with unit_of_work(request) as db:
        result = run_search(
            db,
            actor=acting,
            criteria=criteria,
            matcher=request.app.state.search_engine,
            fallback_team=practice(request).fallback_team.name,
        )
        note_looks(request, db, acting, [hit.child_id for hit in result.hits])  # trawling counts these too
    return list(result.hits)


@router.get("/audit/verify", name="web_audit_verify")
def web_audit_verify(request: Request, actor: Auditor) -> Response:
    """Recompute the hash chain end to end and say whether it is intact. Audited."""
    with unit_of_work(request) as db:
        result = audit.verify(db)
    with unit_of_work(request) as db:
        audit.append(
            db,
            actor=actor,
            action="audit.verify",
            outcome="success" if result.ok else "alert",
            detail={"checked": result.checked, "ok": result.ok},
        )
    return render(request, "audit/verify.html", actor=actor, result=result)


@router.get("/audit/alerts", name="web_audit_alerts")
def web_audit_alerts(request: Request, actor: Auditor) -> Response:
    """Trawling alerts, shield overrides and refresh-token reuse, newest first."""
    with unit_of_work(request) as db:
        events = list(repo.audit_events(db, actions=ALERTS, role=actor.role))
        notes = repo.audit_notes(db, [e.seq for e in events])
        alerts = alert_views(db, events)
        audit.append(db, actor=actor, action="audit.alerts.read", detail={"returned": len(events)})
    return render(
        request,
        "audit/alerts.html",
        actor=actor,
        alerts=alerts,
        notes=notes,
        triggers=triggers(request.app.state.auth.cfg),
    )
