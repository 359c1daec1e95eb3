"""Auditor pages: search the audit log by child, user and date; chain verification; alerts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from childindex.web.alert_words import alert_views, triggers
from childindex.web.deps import Auditor, render, unit_of_work
from childindex.web.forms import FormErrors, date_field
from directory import audit
from directory import repository as repo

router = APIRouter(include_in_schema=False)
ALERTS = (
    "alert.trawling",
    "alert.shield-override",
    "alert.signin.locked",
    "alert.signin.many-sources",
    "auth.refresh.reused",
)


@router.get("/audit", name="web_audit")
def web_audit(request: Request, actor: Auditor) -> Response:
    """Search the audit log (by child id, user, dates, action); the search itself is audited."""
    q = dict(request.query_params)
    errors: dict[str, str] = {}
    child_id = None
    if q.get("child"):
        try:
            child_id = uuid.UUID(q["child"].strip())
        except ValueError:
            errors["child"] = (
                "Enter the record's id as shown on the record (a long code such as 1b4e28ba-...)"
            )
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
    searched = any(q.get(k) for k in ("child", "user", "action", "from-year", "to-year"))
    events = []
    notes: dict[int, str] = {}  # the reasons kept beside the chain (AuditNote), shown to auditors
    if searched and not errors:
        with unit_of_work(request) as db:
            events = list(
                repo.audit_events(
                    db,
                    child_id=child_id,
                    subject=(q.get("user") or "").strip() or None,
                    since=since,
                    until=until,
                    action_prefix=(q.get("action") or "").strip() or None,
                    role=actor.role,
                )
            )
            audit.append(
                db,
                actor=actor,
                action="audit.search",
                target_type="child" if child_id else None,
                target_id=child_id,
                detail={"user": q.get("user") or None, "returned": len(events)},
            )
            notes = repo.audit_notes(db, [e.seq for e in events])
    return render(
        request,
        "audit/search.html",
        actor=actor,
        values=q,
        errors=errors,
        events=events,
        searched=searched,
        notes=notes,
    )


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
