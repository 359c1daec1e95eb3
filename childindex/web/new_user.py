"""The "new user" journey for directory admins: the sign-in account, the enrolment link, the link to
a practitioner record and the access grant, checked on one page of answers and written in one
transaction (or not at all).

Nothing here is a second copy of a rule: the account is made by auth.users, the practitioner by
directory.service.practitioners, the grant by auth.grant_admin (reach, dates, period); what this
module adds is asking for all of it in plain words, checking everything in one round, and the
enrolment link (childindex/web/enrol_pages.py).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from auth import grant_admin as grants_svc
from auth.admin import Rules
from auth.grant_admin import GrantCreate
from auth.grant_rules import GrantRules, check_subject
from auth.models import LocalUser, SubjectKind
from auth.users import create_user, find_user
from childindex.web.deps import GrantsAdmin, check_csrf, csrf_refused, render, unit_of_work
from childindex.web.enrol_pages import enrolment_link, send_enrolment_email
from childindex.web.forms import FormData, FormErrors, collect, date_field, many, text
from directory import audit
from directory.errors import DomainError, InvalidInput
from directory.http.config import practice
from directory.models import (
    Actor,
    Locality,
    Organisation,
    Practitioner,
    PractitionerCreate,
    Role,
    utcnow,
)
from directory.service.practitioners import register_practitioner

router = APIRouter(include_in_schema=False)

# What each role may do, in the words the form and the check-answers page use (never the role code).
ROLE_WORDS: dict[Role, tuple[str, str]] = {
    Role.PRACTITIONER: (
        "Practitioner",
        "Finds a child, sees who else is working with them, records their own involvement and signals a CAF.",
    ),
    Role.DESIGNATED_PRACTITIONER: (
        "Designated practitioner",
        "As a practitioner, and also sees where a shielded child lives and how to reach the family.",
    ),
    Role.CHILD_PROTECTION: (
        "Child protection practitioner",
        "As a practitioner, and may look past a shield for one viewing, giving the reason.",
    ),
    Role.LOCAL_DELIVERY_TEAM: (
        "Local delivery team",
        "Works their locality's list: CAFs, Teams Around the Child and Lead Professionals.",
    ),
    Role.DATA_MANAGER: (
        "Data manager",
        "Keeps records right: merges duplicates, reviews held feed rows, answers subject access requests.",
    ),
    Role.ADOPTION_OFFICER: (
        "Adoption officer",
        "Seals a record on adoption: the only role that sees a sealed record.",
    ),
    Role.AUDITOR: ("Auditor", "Reads who looked at what, and the alerts. Does not change records."),
    Role.DIRECTORY_ADMIN: (
        "Directory administrator",
        "Gives and ends people's access, registers connected systems and keeps the catalogue.",
    ),
}
LINKS = [
    ("existing", "Link them to a practitioner record that is already in the directory"),
    ("new", "Add a practitioner record for them"),
    ("none", "No practitioner record: they do not work with children (for example an auditor)"),
]


@dataclass
class Answers:
    """What the admin asked for, checked (ids and the words to show them by)."""

    name: str
    username: str
    email: str | None
    link: str
    role: Role
    reason: str
    training: date
    vetting: date
    until: date
    practitioner_id: uuid.UUID | None = None
    practitioner_label: str | None = None
    new_practitioner: PractitionerCreate | None = None
    organisation: str | None = None
    localities: list[str] = field(default_factory=list)
    locality_names: list[str] = field(default_factory=list)


def _values(form: dict[str, Any]) -> dict[str, Any]:
    """The form's values to show again (never the CSRF token)."""
    return {k: v for k, v in form.items() if k not in ("csrf_token", "change")}


def _practitioner_options(db: Session) -> list[tuple[str, str]]:
    """Active practitioners with no sign-in yet, as "Name, role - organisation" (names can repeat)."""
    linked = select(LocalUser.practitioner_id).where(col(LocalUser.practitioner_id).is_not(None))
    rows = db.exec(
        select(Practitioner, Organisation)
        .join(Organisation, col(Organisation.id) == col(Practitioner.organisation_id))
        .where(col(Practitioner.active).is_(True), col(Practitioner.subject).is_(None))
        .where(col(Practitioner.id).not_in(linked))
        .order_by(col(Practitioner.name), col(Organisation.name))
    ).all()
    return [(str(p.id), f"{p.name}, {p.role} - {o.name}") for p, o in rows]


def _choices(db: Session) -> dict[str, Any]:
    orgs = db.exec(select(Organisation).order_by(col(Organisation.name))).all()
    localities = db.exec(select(Locality).order_by(col(Locality.name))).all()
    return {
        "practitioners": _practitioner_options(db),
        "orgs": [(str(o.id), o.name) for o in orgs],
        "localities": [(loc.code, loc.name) for loc in localities],
        "roles": [(r.value, words) for r, words in ROLE_WORDS.items()],
        "links": LINKS,
    }


def _required(form: dict[str, Any], key: str, message: str, limit: int) -> str:
    value = text(form, key)
    if not value:
        raise FormErrors({key: message})
    if len(value) > limit:
        raise FormErrors({key: f"{message.replace('Enter', 'Shorten')} to at most {limit} characters"})
    return value


def _username(db: Session, form: dict[str, Any], actor: Actor) -> str:
    raw = text(form, "username")
    if not raw:
        raise FormErrors({"username": "Enter the username they will sign in with"})
    try:
        username = str(check_subject(raw))
    except ValueError as exc:
        raise FormErrors({"username": f"The username must {exc}"}) from None
    if len(username) > 100:
        raise FormErrors({"username": "The username must be at most 100 characters"})
    if find_user(db, username) is not None:
        raise FormErrors({"username": f"There is already an account named {username}: choose another"})
    if username.casefold() == actor.subject.casefold():
        raise FormErrors({"username": "That is your own username: choose the new person's"})
    return username


def _email(form: dict[str, Any]) -> str | None:
    value = text(form, "email")
    if value and (len(value) > 254 or value.count("@") != 1 or " " in value or "." not in value):
        raise FormErrors({"email": "Enter an email address like name@example.org, or leave it empty"})
    return value


def _role(form: dict[str, Any]) -> Role:
    value = text(form, "role") or ""
    role = Role._value2member_map_.get(value)
    if not isinstance(role, Role) or role not in ROLE_WORDS:
        raise FormErrors({"role": "Choose what they will do"})
    return role


def _existing(db: Session, form: dict[str, Any], answers: Answers) -> None:
    chosen = text(form, "practitioner")
    options = dict(_practitioner_options(db))
    if not chosen or chosen not in options:
        raise FormErrors({"practitioner": "Choose their practitioner record"})
    answers.practitioner_id = uuid.UUID(chosen)
    answers.practitioner_label = options[chosen]
    practitioner = db.get(Practitioner, answers.practitioner_id)
    org = db.get(Organisation, practitioner.organisation_id) if practitioner else None
    answers.organisation = org.name if org else None


def _new_practitioner(db: Session, form: dict[str, Any], answers: Answers) -> None:
    errors: dict[str, str] = {}
    chosen = text(form, "org")
    org = db.get(Organisation, uuid.UUID(chosen)) if chosen and _is_uuid(chosen) else None
    if org is None:
        errors["org"] = "Choose the organisation they work for"
    job = text(form, "job")
    if not job or len(job) > 80:
        errors["job"] = "Enter their job title, such as SENCO or health visitor (at most 80 characters)"
    phone = text(form, "phone")
    if phone and (len(phone) > 40 or not all(c.isdigit() or c in " +()-" for c in phone)):
        errors["phone"] = "Enter a phone number using digits and spaces, such as 01632 960000"
    if errors:
        raise FormErrors(errors)
    assert org is not None and job is not None
    answers.organisation = org.name
    answers.practitioner_label = f"{answers.name}, {job} - {org.name} (a new record)"
    answers.new_practitioner = PractitionerCreate(
        name=answers.name, role=job, organisation_id=org.id, phone=phone, email=answers.email
    )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _localities(db: Session, form: dict[str, Any], answers: Answers) -> None:
    codes = many(form, "localities")
    known = dict(db.exec(select(Locality.code, Locality.name)).all())
    if any(c not in known for c in codes):
        raise FormErrors({"localities": "Choose the localities from the list"})
    answers.localities = codes
    answers.locality_names = [known[c] for c in codes]


def check_grant_dates(
    errors: dict[str, str], rules: GrantRules, today: date, *, training: date | None, vetting: date | None
) -> None:
    """The grant rules' training and vetting dates (none in the future, neither older than the
    authority allows), each problem kept beside its own field (every problem in one round)."""
    for key, day in (("training", training), ("vetting", vetting)):
        if day is None:
            continue
        try:
            rules.check_checks_dates(
                training=day if key == "training" else None,
                vetting=day if key == "vetting" else None,
                today=today,
            )
        except InvalidInput as exc:
            errors.setdefault(key, exc.message)


def _dates(form: dict[str, Any], rules: GrantRules, today: date) -> tuple[date, date, date]:
    """The training, vetting and end dates, each checked by the grant rules (every problem at once)."""
    errors: dict[str, str] = {}
    training = collect(errors, date_field, form, "training", "the training date", required=True)
    vetting = collect(errors, date_field, form, "vetting", "the vetting date", required=True)
    until = collect(errors, date_field, form, "until", "the date access ends", required=True)
    check_grant_dates(errors, rules, today, training=training, vetting=vetting)
    if until is not None:
        try:
            now = datetime.combine(today, time(12), tzinfo=UTC)
            rules.check_period(valid_from=now, valid_until=end_of(until), now=now)
        except InvalidInput as exc:
            errors["until"] = exc.message
    if errors or training is None or vetting is None or until is None:
        raise FormErrors(errors)
    return training, vetting, until


def end_of(day: date) -> datetime:
    """The last minute of the day access ends."""
    return datetime.combine(day, time(23, 59), tzinfo=UTC)


def read_answers(db: Session, form: dict[str, Any], actor: Actor, rules: GrantRules, today: date) -> Answers:
    """The journey's answers, every field checked in one round (FormErrors lists every problem)."""
    errors: dict[str, str] = {}
    name = collect(errors, _required, form, "name", "Enter their full name", 160)
    username = collect(errors, _username, db, form, actor)
    email = collect(errors, _email, form)
    role = collect(errors, _role, form)
    reason = collect(errors, _required, form, "reason", "Enter why they need access", 500)
    dates = collect(errors, _dates, form, rules, today)
    link = text(form, "link")
    if link not in dict(LINKS):
        errors["link"] = "Choose whether to link them to a practitioner record"
    answers = Answers(
        name=name or "",
        username=username or "",
        email=email,
        link=link or "",
        role=role or Role.PRACTITIONER,
        reason=reason or "",
        training=dates[0] if dates else date.min,
        vetting=dates[1] if dates else date.min,
        until=dates[2] if dates else date.min,
    )
    if link == "existing":
        collect(errors, _existing, db, form, answers)
    elif link == "new":
        collect(errors, _new_practitioner, db, form, answers)
    elif link == "none":
        organisation = text(form, "organisation")
        if organisation and len(organisation) > 200:
            errors["organisation"] = "Shorten the organisation to at most 200 characters"
        answers.organisation = organisation
    collect(errors, _localities, db, form, answers)
    if errors:
        raise FormErrors(_in_form_order(errors))
    return answers


def _in_form_order(errors: dict[str, str]) -> dict[str, str]:
    order = ["name", "username", "email", "link", "practitioner", "org", "job", "phone", "organisation"]
    order += ["role", "localities", "training", "vetting", "until", "reason"]
    return {k: errors[k] for k in sorted(errors, key=lambda k: order.index(k) if k in order else 99)}


def _form_page(
    request: Request, actor: Actor, values: dict[str, Any], errors: dict[str, str], status_code: int = 200
) -> Response:
    with unit_of_work(request) as db:
        choices = _choices(db)
    return render(
        request,
        "admin/user_new.html",
        actor=actor,
        values=values,
        errors=errors,
        chosen_localities=many(values, "localities"),
        status_code=status_code,
        **choices,
    )


@router.get("/admin/users/new", name="web_user_new_form")
def web_user_new_form(request: Request, actor: GrantsAdmin) -> Response:
    """The new user journey's one question page: who they are, their practitioner record, their access."""
    return _form_page(request, actor, {"link": "existing"}, {})


@router.post("/admin/users/new", name="web_user_new_check")
def web_user_new_check(request: Request, actor: GrantsAdmin, form: FormData, rules: Rules) -> Response:
    """Check every answer in one round, then show them to be checked (nothing is written yet)."""
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    values = _values(form)
    if text(form, "change"):  # "Change your answers" from the check-answers page
        return _form_page(request, actor, values, {})
    try:
        with unit_of_work(request) as db:
            answers = read_answers(db, form, actor, rules, utcnow().date())
    except FormErrors as exc:
        return _form_page(request, actor, values, exc.errors, 400)
    return render(
        request,
        "admin/user_check.html",
        actor=actor,
        answers=answers,
        role_words=ROLE_WORDS[answers.role],
        hidden=_hidden(values),
    )


def _hidden(values: dict[str, Any]) -> list[tuple[str, str]]:
    """The answers as hidden fields for the confirm form (a list field once per value)."""
    out: list[tuple[str, str]] = []
    for key, value in values.items():
        for one in value if isinstance(value, list) else [value]:
            out.append((key, str(one)))
    return out


def create_everything(
    db: Session, *, request: Request, actor: Actor, answers: Answers, rules: GrantRules
) -> LocalUser:
    """The practitioner record (if new), the account linked to it, and the grant: in the caller's one
    transaction, so a refusal of any part (say the grant's reach) leaves nothing behind. Audited."""
    practitioner_id = answers.practitioner_id
    if answers.new_practitioner is not None:
        practitioner_id = register_practitioner(db, actor=actor, data=answers.new_practitioner).id
    user = create_user(
        db,
        username=answers.username,
        password=secrets.token_urlsafe(32),  # nobody knows it: the person sets their own on enrolment
        display_name=answers.name,
        organisation=answers.organisation,
        practitioner_id=practitioner_id,
    )
    audit.append(
        db,
        actor=actor,
        action="user.create",
        target_type="user",
        target_id=answers.username,
        detail={"practitioner_id": str(practitioner_id) if practitioner_id else None},
    )
    grants_svc.create_grant(
        db,
        actor=actor,
        admin_grant=getattr(request.state, "grant", None),
        data=GrantCreate(
            subject=answers.username,
            subject_kind=SubjectKind.USER,
            role=answers.role,
            organisation=answers.organisation,
            localities=answers.localities,
            training_completed_on=answers.training,
            vetting_checked_on=answers.vetting,
            valid_until=end_of(answers.until),
            reason=answers.reason,
        ),
        default_authority=practice(request).authority_name,
        rules=rules,
    )
    return user


_GRANT_FIELDS = {"role": "role", "training_completed_on": "training", "vetting_checked_on": "vetting"}
_GRANT_FIELDS |= {"valid_until": "until", "valid_from": "until", "subject": "username"}


@router.post("/admin/users/new/confirm", name="web_user_new")
def web_user_new(request: Request, actor: GrantsAdmin, form: FormData, rules: Rules) -> Response:
    """Create the account, link the practitioner record and grant access, all or nothing; then show
    the enrolment link once (and email it when SMTP is set up and an address was given)."""
    if not check_csrf(request, form):
        return csrf_refused(request, actor)
    values = _values(form)
    try:
        with unit_of_work(request) as db:
            answers = read_answers(db, form, actor, rules, utcnow().date())
            user = create_everything(db, request=request, actor=actor, answers=answers, rules=rules)
            link = enrolment_link(request, user)
    except FormErrors as exc:
        return _form_page(request, actor, values, exc.errors, 400)
    except DomainError as exc:
        where = _GRANT_FIELDS.get(str(exc.data.get("field")), "role")
        return _form_page(request, actor, values, {where: exc.message}, 409)
    except IntegrityError:  # another admin made the same username a moment ago
        problem = f"An account named {values.get('username')} was made a moment ago: choose another username"
        return _form_page(request, actor, values, {"username": problem}, 409)
    emailed = send_enrolment_email(request, to=answers.email, name=answers.name, link=link)
    return render(
        request,
        "admin/user_created.html",
        actor=actor,
        answers=answers,
        role_words=ROLE_WORDS[answers.role],
        link=None if emailed else link,
        emailed=emailed,
    )
