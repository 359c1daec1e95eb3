"""Directory admin pages: access grants (list, filter, grant, renew, suspend, revoke) and system clients."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from auth import grant_admin as grants_svc
from auth import registry
from auth.admin import Rules
from auth.config import SUPPORTED_SCOPES
from auth.grant_admin import GrantCreate, GrantRead, GrantRenew
from auth.grant_rules import GrantRules
from auth.grants import ROLE_SCOPES
from auth.models import GrantStatus, SubjectKind
from auth.users import find_user
from childindex.web.alert_words import role_words, scope_words
from childindex.web.deps import GrantsAdmin, check_csrf, flash, render, unit_of_work
from childindex.web.forms import FormData, FormErrors, build, collect, date_field, many, text
from childindex.web.new_user import check_grant_dates, end_of
from directory.errors import DomainError, NotFound
from directory.http.config import practice
from directory.models import Actor, Role

router = APIRouter(include_in_schema=False)
ROLES = [(r.value, role_words(r.value)) for r in Role]
SCOPES = [(s, scope_words(s)) for s in SUPPORTED_SCOPES]  # the grant form says what each lets them do
STATUSES = [(s.value, s.value) for s in GrantStatus]


def _expired_form(request: Request, actor: Actor) -> Response:
    return render(
        request,
        "message.html",
        actor=actor,
        title="This form has expired",
        message="Go back, reload the page and try again.",
        status_code=400,
    )


@router.get("/admin/grants", name="web_grants")
def web_grants(request: Request, actor: GrantsAdmin) -> Response:
    """Grants of your authority, filtered by subject, status, role, or expiring within N days."""
    q = request.query_params
    filters = {k: q.get(k, "").strip() for k in ("subject", "status", "role", "expiring")}
    errors: dict[str, str] = {}
    expiring = None
    if filters["expiring"]:
        if not filters["expiring"].isdigit() or int(filters["expiring"]) > 3650:
            errors["expiring"] = "Enter a number of days, such as 30"
        else:
            expiring = int(filters["expiring"])
    own = getattr(request.state, "grant", None)
    with unit_of_work(request) as db:
        rows = grants_svc.list_grants(
            db,
            subject=filters["subject"] or None,
            status=GrantStatus(filters["status"])
            if filters["status"] in GrantStatus._value2member_map_
            else None,
            role=Role(filters["role"]) if filters["role"] in Role._value2member_map_ else None,
            expiring_within_days=expiring,
            authority=own.authority if own else None,
        )
    return render(
        request,
        "admin/grants.html",
        actor=actor,
        grants=[GrantRead.of(g) for g in rows],
        filters=filters,
        errors=errors,
        roles=ROLES,
        role_names=dict(ROLES),
        statuses=STATUSES,
    )


@router.get("/admin/grants/new", name="web_grant_new_form")
def web_grant_new_form(request: Request, actor: GrantsAdmin) -> Response:
    """The form to grant someone (or a system) access."""
    values = {k: request.query_params.get(k, "") for k in ("subject", "subject_kind")}
    return render(
        request,
        "admin/grant_new.html",
        actor=actor,
        values=values,
        errors={},
        roles=ROLES,
        scopes=SCOPES,
        role_scopes=ROLE_SCOPES,
    )


_GRANT_LABELS = {
    "subject": "the username or client id",
    "role": "the role",
    "reason": "the reason",
    "responsible": "the person responsible",
    "valid_until": "the end date",
    "training_completed_on": "the training date",
    "vetting_checked_on": "the vetting date",
}


def _grant_of(form: dict[str, Any], rules: GrantRules, today: date) -> GrantCreate:
    """The grant a form asks for (FormErrors names every field that is missing or wrong, at once)."""
    errors: dict[str, str] = {}
    until = collect(errors, date_field, form, "until", "the end date", required=True)
    training = collect(errors, date_field, form, "training", "the training date")
    vetting = collect(errors, date_field, form, "vetting", "the vetting date")
    check_grant_dates(errors, rules, today, training=training, vetting=vetting)
    return build(
        GrantCreate,
        {
            "subject": text(form, "subject"),
            "subject_kind": text(form, "subject_kind") or "user",
            "role": text(form, "role"),
            "organisation": text(form, "organisation"),
            "localities": [x.strip() for x in (text(form, "localities") or "").split(",") if x.strip()],
            "scopes": many(form, "scopes") or None,
            "training_completed_on": training,
            "vetting_checked_on": vetting,
            "valid_until": end_of(until) if until else None,
            "responsible": text(form, "responsible"),
            "reason": text(form, "reason"),
        },
        _GRANT_LABELS,
        errors=errors,
        keys={"training_completed_on": "training", "vetting_checked_on": "vetting", "valid_until": "until"},
    )


def _no_such_account(request: Request, db: Any, data: GrantCreate) -> bool:
    """A person's grant names a local account that does not exist (and no upstream provider signs
    people in under other names), so whoever it is for could never sign in with it."""
    if data.subject_kind != SubjectKind.USER or request.app.state.auth.cfg.upstream_issuer:
        return False
    return find_user(db, data.subject) is None


def _grant_form_again(
    request: Request,
    actor: Actor,
    values: dict[str, Any],
    errors: dict[str, str],
    status_code: int,
    new_user: bool = False,
) -> Response:
    return render(
        request,
        "admin/grant_new.html",
        actor=actor,
        values=values,
        errors=errors,
        roles=ROLES,
        scopes=SCOPES,
        role_scopes=ROLE_SCOPES,
        status_code=status_code,
        new_user=new_user,
    )


@router.post("/admin/grants/new", name="web_grant_new")
def web_grant_new(request: Request, actor: GrantsAdmin, form: FormData, rules: Rules) -> Response:
    """Grant access (never beyond your own role, scopes or localities). Audited."""
    if not check_csrf(request, form):
        return _expired_form(request, actor)
    values = {k: v for k, v in form.items() if k != "csrf_token"}
    try:
        data = _grant_of(form, rules, date.today())
        with unit_of_work(request) as db:
            if _no_such_account(request, db, data):
                problem = f"There is no account named {data.subject}: add them as a new user first"
                return _grant_form_again(request, actor, values, {"subject": problem}, 409, new_user=True)
            grant = grants_svc.create_grant(
                db,
                actor=actor,
                admin_grant=getattr(request.state, "grant", None),
                data=data,
                default_authority=practice(request).authority_name,
                rules=rules,
            )
    except FormErrors as exc:
        return _grant_form_again(request, actor, values, exc.errors, 400)
    except DomainError as exc:
        field = _FORM_FIELDS.get(str(exc.data.get("field")), "subject")
        return _grant_form_again(request, actor, values, {field: exc.message}, 409)
    if grant.status == GrantStatus.PENDING:
        flash(
            request,
            f"The grant for {grant.subject} is made and waiting for a second administrator to approve it.",
        )
    else:
        flash(request, f"Access granted to {grant.subject} until {grant.valid_until:%-d %B %Y}.")
    return RedirectResponse(f"/admin/grants/{grant.id}", status_code=303)


def _grant_page(
    request: Request,
    actor: Actor,
    grant_id: uuid.UUID,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    with unit_of_work(request) as db:
        grant = GrantRead.of(grants_svc.get_grant(db, grant_id))
    return render(
        request,
        "admin/grant.html",
        actor=actor,
        grant=grant,
        errors=errors or {},
        values=values or {},
        status_code=status_code,
    )


@router.get("/admin/grants/{grant_id}", name="web_grant")
def web_grant(grant_id: uuid.UUID, request: Request, actor: GrantsAdmin) -> Response:
    """One grant, with the forms to renew, suspend, reinstate or revoke it."""
    try:
        return _grant_page(request, actor, grant_id)
    except NotFound as exc:
        return render(
            request, "message.html", actor=actor, title="Not found", message=exc.message, status_code=404
        )


_FORM_FIELDS = {  # a domain error's field -> the form field it is shown beside
    "subject": "subject",
    "responsible": "responsible",
    "valid_until": "until",
    "valid_from": "until",
    "training_completed_on": "training",
    "vetting_checked_on": "vetting",
}
_DONE = {
    "renew": "The grant is renewed.",
    "suspend": "The grant is suspended.",
    "reinstate": "The grant is reinstated.",
    "revoke": "The grant is revoked.",
    "approve": "The grant is approved: it works from now on.",
}
_STATUS_OF = {
    "suspend": GrantStatus.SUSPENDED,
    "reinstate": GrantStatus.ACTIVE,
    "revoke": GrantStatus.REVOKED,
}


def _renewal(form: dict[str, Any], reason: str) -> GrantRenew:
    errors: dict[str, str] = {}
    until = collect(errors, date_field, form, "until", "the new end date", required=True)
    training = collect(errors, date_field, form, "training", "the training date")
    vetting = collect(errors, date_field, form, "vetting", "the vetting date")
    return build(
        GrantRenew,
        {
            "valid_until": end_of(until) if until else None,
            "training_completed_on": training,
            "vetting_checked_on": vetting,
            "responsible": text(form, "responsible"),
            "reason": reason,
        },
        {
            "valid_until": "the new end date",
            "training_completed_on": "the training date",
            "vetting_checked_on": "the vetting date",
            "responsible": "the person responsible",
        },
        errors=errors,
        keys={"training_completed_on": "training", "vetting_checked_on": "vetting", "valid_until": "until"},
    )


@router.post("/admin/grants/{grant_id}/{change}", name="web_grant_change")
def web_grant_change(
    grant_id: uuid.UUID, change: str, request: Request, actor: GrantsAdmin, form: FormData, rules: Rules
) -> Response:
    """Renew, suspend, reinstate, revoke or approve a grant, with the reason. Audited."""
    if not check_csrf(request, form):
        return _expired_form(request, actor)
    admin_grant = getattr(request.state, "grant", None)
    values = {k: v for k, v in form.items() if k != "csrf_token"}
    try:
        if change not in _DONE:
            raise NotFound("There is no such change.")
        reason = text(form, f"{change}-reason")
        if not reason:
            raise FormErrors({f"{change}-reason": "Enter the reason"})
        with unit_of_work(request) as db:
            if change == "renew":
                data = _renewal(form, reason)
                grants_svc.renew_grant(
                    db, actor=actor, admin_grant=admin_grant, grant_id=grant_id, data=data, rules=rules
                )
            elif change == "approve":
                grants_svc.approve_grant(
                    db, actor=actor, admin_grant=admin_grant, grant_id=grant_id, reason=reason, rules=rules
                )
            else:
                grants_svc.set_status(
                    db,
                    actor=actor,
                    admin_grant=admin_grant,
                    grant_id=grant_id,
                    status=_STATUS_OF[change],
                    reason=reason,
                    rules=rules,
                )
    except FormErrors as exc:
        errors = {_FORM_FIELDS.get(k, k): v for k, v in exc.errors.items()}
        return _grant_page(request, actor, grant_id, errors=errors, values=values, status_code=400)
    except DomainError as exc:
        field = str(exc.data.get("field"))
        where = _FORM_FIELDS[field] if change == "renew" and field in _FORM_FIELDS else f"{change}-reason"
        return _grant_page(
            request, actor, grant_id, errors={where: exc.message}, values=values, status_code=409
        )
    flash(request, _DONE[change])
    return RedirectResponse(f"/admin/grants/{grant_id}", status_code=303)


# --------------------------------------------------------------------------- system clients


@router.get("/admin/clients", name="web_clients")
def web_clients(request: Request, actor: GrantsAdmin) -> Response:
    """Registered OAuth clients: systems (client credentials) and apps."""
    with unit_of_work(request) as db:
        clients = registry.list_clients(db)
    return render(request, "admin/clients.html", actor=actor, clients=clients)


@router.get("/admin/clients/new", name="web_client_new_form")
def web_client_new_form(request: Request, actor: GrantsAdmin) -> Response:
    """The form to register a system client with its keys (JWKS URL or JWKS) and scopes."""
    return render(
        request, "admin/client_new.html", actor=actor, values={}, errors={}, scopes=SUPPORTED_SCOPES
    )


@router.post("/admin/clients/new", name="web_client_new")
def web_client_new(request: Request, actor: GrantsAdmin, form: FormData) -> Response:
    """Register a system client. Audited. A secret client's secret is shown once."""
    if not check_csrf(request, form):
        return _expired_form(request, actor)
    values = {k: v for k, v in form.items() if k != "csrf_token"}
    try:
        data = build(
            registry.ClientRegister,
            {
                "client_id": text(form, "client_id"),
                "name": text(form, "name"),
                "auth_method": text(form, "auth_method") or "private_key_jwt",
                "jwks_url": text(form, "jwks_url"),
                "jwks": text(form, "jwks"),
                "scopes": many(form, "scopes"),
            },
            {"client_id": "the client id", "name": "the name", "scopes": "at least one scope"},
        )
        with unit_of_work(request) as db:
            client, secret = registry.register_client(db, actor=actor, data=data)
    except FormErrors as exc:
        return render(
            request,
            "admin/client_new.html",
            actor=actor,
            values=values,
            errors=exc.errors,
            scopes=SUPPORTED_SCOPES,
            status_code=400,
        )
    except DomainError as exc:
        field = str(exc.data.get("field") or "client_id")
        return render(
            request,
            "admin/client_new.html",
            actor=actor,
            values=values,
            errors={field: exc.message},
            scopes=SUPPORTED_SCOPES,
            status_code=409,
        )
    return render(request, "admin/client_registered.html", actor=actor, client=client, secret=secret)


@router.post("/admin/clients/{client_id}/active", name="web_client_active")
def web_client_active(client_id: str, request: Request, actor: GrantsAdmin, form: FormData) -> Response:
    """Switch a client off (its tokens stop working at the next request for one) or back on. Audited."""
    if not check_csrf(request, form):
        return _expired_form(request, actor)
    try:
        with unit_of_work(request) as db:
            client = registry.update_client(
                db, actor=actor, client_id=client_id, active=text(form, "active") == "yes"
            )
    except DomainError as exc:
        return render(
            request, "message.html", actor=actor, title=exc.title, message=exc.message, status_code=404
        )
    flash(request, f"{client.client_id} is {'active' if client.active else 'switched off'}.")
    return RedirectResponse("/admin/clients", status_code=303)
