"""Enrolment: the link a new person opens once to add the service to their authenticator app and set
their own password (the account is made with a password nobody knows: childindex/web/new_user.py).

The link carries a token sealed with the app's secret key (AES-GCM, purpose "enrol"): the username,
when it stops working (ENROL_HOURS), and a fingerprint of the account's password hash. Setting the
password changes the hash, so the link works once; it names no child and holds nothing a reader of
the address could use after that. The page asks for a code from the app before it takes the
password, so the app is known to hold the secret.
"""

from __future__ import annotations

import hashlib
import json
import logging
import smtplib
import time
from email.message import EmailMessage
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import col, select

from auth.models import AccessGrant, LocalUser, SubjectKind
from auth.users import MIN_PASSWORD, enrol, find_user, password_problem, provisioning_uri
from childindex.mail import Smtp, _Mailer
from childindex.settings import current_settings
from childindex.web.deps import render, unit_of_work
from childindex.web.forms import FormData, text
from childindex.web.session import Sealer
from directory import audit
from directory.models import Actor, Role

router = APIRouter(include_in_schema=False)
log = logging.getLogger("childindex.web.enrol")
ENROL_HOURS = 72


def _sealer(request: Request) -> Sealer:
    return Sealer(request.app.state.auth.cfg.secret_key, "enrol")


def _fingerprint(user: LocalUser) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:32]


def enrolment_link(request: Request, user: LocalUser, *, now: float | None = None) -> str:
    """The address the new person opens to enrol (works once, for ENROL_HOURS)."""
    expires = int((now or time.time()) + ENROL_HOURS * 3600)
    token = _sealer(request).seal(
        json.dumps({"u": user.username, "p": _fingerprint(user), "e": expires}).encode()
    )
    return f"{request.app.state.auth.cfg.issuer}/enrol/{token}"


def _user_of(request: Request, db: Any, token: str) -> LocalUser | None:
    """The account the token enrols, while it is unused, unexpired and the account active."""
    raw = _sealer(request).open(token)
    if raw is None:
        return None
    data = json.loads(raw)
    if int(data.get("e", 0)) < time.time():
        return None
    user = find_user(db, str(data.get("u")))
    if user is None or not user.active or _fingerprint(user) != data.get("p"):
        return None
    return user


def send_enrolment_email(request: Request, *, to: str | None, name: str, link: str) -> bool:
    """Email the link when SMTP is set up and an address was given; False means show it on the page."""
    settings = current_settings(request)
    if not to or not settings.smtp_host:
        return False
    smtp = Smtp(
        host=settings.smtp_host,
        port=settings.smtp_port,
        tls=settings.smtp_tls,
        username=settings.smtp_username,
        password=settings.smtp_password,
        sender=settings.smtp_sender,
        ca_file=settings.smtp_ca_file,
    )
    msg = EmailMessage()
    msg["Subject"] = "Set up your sign-in to the children's index"
    msg["From"], msg["To"] = smtp.sender, to
    msg.set_content(
        f"{name},\n\nYou have been given access to the children's index. Open this link within "
        f"{ENROL_HOURS} hours to add it to your authenticator app and choose your password "
        f"(it works once):\n\n{link}\n\nIf you did not expect this email, tell your administrator.\n"
    )
    mailer = _Mailer(smtp)
    try:
        mailer.send(msg)
    except (smtplib.SMTPException, OSError) as exc:
        log.warning(
            "enrolment email not sent (%s): the link is shown to the administrator", type(exc).__name__
        )
        return False
    finally:
        mailer.close()
    return True


def _gone(request: Request) -> Response:
    return render(
        request,
        "message.html",
        title="This link has expired or was already used",
        message=f"An enrolment link works once, for {ENROL_HOURS} hours. Ask your administrator for "
        "a new one, or sign in if you have already set up your account.",
        again=True,
        status_code=404,
    )


def _enrol_page(
    request: Request, user: LocalUser, token: str, errors: dict[str, str], status_code: int = 200
) -> Response:
    secret = user.totp_secret
    return render(
        request,
        "enrol.html",
        username=user.username,
        name=user.display_name,
        key=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        uri=provisioning_uri(user),
        token=token,
        errors=errors,
        values={},
        min_password=MIN_PASSWORD,
        status_code=status_code,
    )


@router.get("/enrol/{token}", name="web_enrol_form")
def web_enrol_form(token: str, request: Request) -> Response:
    """Set up the authenticator app and choose a password (public: the token is the key)."""
    with unit_of_work(request) as db:
        user = _user_of(request, db, token)
        if user is None:
            return _gone(request)
        return _enrol_page(request, user, token, {})


@router.post("/enrol/{token}", name="web_enrol")
def web_enrol(token: str, request: Request, form: FormData) -> Response:
    """Check the code and the password (every problem at once), then set the password. Audited."""
    with unit_of_work(request) as db:
        user = _user_of(request, db, token)
        if user is None:
            return _gone(request)
        errors: dict[str, str] = {}
        problem = password_problem(text(form, "password"), text(form, "password-again"))
        if problem:
            errors["password"] = problem
        code = text(form, "code") or ""
        if not (code.isdigit() and len(code) == 6):
            errors["code"] = "Enter the 6-digit code your authenticator app shows for this service"
        elif not errors and not enrol(db, user, password=text(form, "password") or "", totp_code=code):
            errors["code"] = "That code is not right: enter the code the app shows now"
        if errors:
            return _enrol_page(request, user, token, errors, 400)
        grant = db.exec(
            select(AccessGrant)
            .where(AccessGrant.subject == user.username, AccessGrant.subject_kind == SubjectKind.USER.value)
            .order_by(col(AccessGrant.created_at).desc())
        ).first()
        role = Role(grant.role) if grant is not None else Role.PRACTITIONER  # only says who acted
        audit.append(
            db,
            actor=Actor(subject=user.username, role=role),
            action="user.enrol",
            target_type="user",
            target_id=user.username,
        )
    return render(
        request,
        "message.html",
        title="Your account is ready",
        message="Sign in with your username, your new password and a code from your authenticator app.",
        again=True,
    )
