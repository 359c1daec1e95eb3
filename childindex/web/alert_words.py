"""The alerts page's words: what triggers each alert (with the configured thresholds), and each alert
raised, said in plain English with the person's name, role and organisation instead of codes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from auth.config import AuthConfig
from auth.lockout import LOCK_AFTER, LOCK_FOR, MANY_SOURCES
from auth.models import LocalUser
from childindex.web.new_user import ROLE_WORDS
from directory.models import AuditEvent, Role

ALERT_LABELS = {
    "alert.trawling": "Possible trawling",
    "alert.shield-override": "Looked past a shield",
    "alert.signin.locked": "Sign-in locked out",
    "alert.signin.many-sources": "Failed sign-ins from many places",
    "auth.refresh.reused": "A sign-in was used twice",
}


def _minutes(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def triggers(cfg: AuthConfig) -> list[tuple[str, str]]:
    """Each alert and what raises it, with this deployment's thresholds."""
    lock = _minutes(int(LOCK_FOR.total_seconds()))
    return [
        (
            ALERT_LABELS["alert.trawling"],
            f"One person opens the records of {cfg.trawl_burst_children} or more different children "
            f"within {_minutes(cfg.trawl_burst_seconds)}; or is shown {cfg.trawl_distinct_children} or "
            f"more different children (in searches and records) within {_minutes(cfg.trawl_window_seconds)}, "
            "most of them only once. Raised once per person for each of those periods.",
        ),
        (
            ALERT_LABELS["alert.shield-override"],
            "A child protection practitioner chooses to see a shielded child's address and contacts, "
            "giving a reason. Every time.",
        ),
        (
            ALERT_LABELS["alert.signin.locked"],
            f"{LOCK_AFTER} wrong sign-ins in a row to one account from one address: that address is "
            f"locked out of the account for {lock}.",
        ),
        (
            ALERT_LABELS["alert.signin.many-sources"],
            f"Sign-ins to one account fail from {MANY_SOURCES} or more addresses it has not used before "
            f"within {lock}: new addresses are refused until then.",
        ),
        (
            ALERT_LABELS["auth.refresh.reused"],
            "A sign-in's renewal token is used a second time, as a stolen one would be: that sign-in is "
            "ended at once.",
        ),
    ]


@dataclass(frozen=True)
class AlertView:
    """One alert as the page shows it."""

    seq: int
    at: datetime
    label: str
    who: str
    role: str
    organisation: str | None
    what: str


def _what(event: AuditEvent) -> str:
    detail: dict[str, Any] = json.loads(event.detail) if event.detail else {}
    if event.action == "alert.trawling":
        window = _minutes(int(detail.get("window_seconds", 0)))
        children = detail.get("distinct_children")
        if detail.get("rule") == "burst":
            return f"Opened the records of {children} different children within {window}."
        return f"Was shown {children} different children within {window}, most of them only once."
    if event.action == "alert.shield-override":
        return "Saw a shielded child's address and contacts."
    if event.action == "alert.signin.locked":
        return f"{detail.get('failures')} wrong sign-ins in a row from one address, locked out for a while."
    if event.action == "alert.signin.many-sources":
        return f"Failed sign-ins from {detail.get('sources')} or more unfamiliar addresses."
    if event.action == "auth.refresh.reused":
        return "A renewal token was used twice; the sign-in was ended."
    return ""


def people(session: Session, subjects: set[str]) -> dict[str, str]:
    """Usernames to the names their accounts give (a system keeps its client id)."""
    if not subjects:
        return {}
    rows = session.exec(select(LocalUser).where(col(LocalUser.username).in_(sorted(subjects)))).all()
    return {u.username: u.display_name for u in rows}


def role_words(code: str) -> str:
    """A role in words (a role code the pages do not know is shown in words too)."""
    role = Role._value2member_map_.get(code)
    if isinstance(role, Role) and role in ROLE_WORDS:
        return ROLE_WORDS[role][0]
    return "Connected system" if code == Role.SYSTEM.value else code.replace("_", " ").capitalize()


def alert_views(session: Session, events: list[AuditEvent]) -> list[AlertView]:
    """The alerts in words, people by name."""
    names = people(session, {e.actor_subject for e in events})
    views = []
    for e in events:
        subject_user = e.target_id if e.target_type == "user" else None  # a lock-out is about an account
        who = names.get(e.actor_subject) or e.actor_subject
        if subject_user and e.actor_subject in ("anonymous", subject_user):
            who = f"The account {subject_user}"
        views.append(
            AlertView(
                seq=e.seq,
                at=e.at,
                label=ALERT_LABELS.get(e.action, e.action),
                who=who,
                role=role_words(e.actor_role),
                organisation=e.actor_organisation,
                what=_what(e),
            )
        )
    return views


_LOCAL_SCOPE_WORDS = {
    "directory.search": "Find children and read their cards",
    "directory.write": "Record and change what is known about children",
    "grants.admin": "Give and end people's access",
    "audit.read": "Read the audit log",
    "directory.export": "Export records in bulk",
    "openid": "Sign in",
    "fhirUser": "Say which practitioner is signed in",
    "offline_access": "Stay signed in between visits",
}
_FHIR_WORDS = {
    "Patient": "children",
    "EpisodeOfCare": "CAFs and involvements",
    "Flag": "alerts on children's records",
    "CareTeam": "Teams Around the Child",
    "Consent": "consents",
    "Subscription": "subscriptions to changes",
    "RelatedPerson": "parents and carers",
    "Practitioner": "practitioners",
    "PractitionerRole": "practitioners' roles",
    "Organization": "organisations",
    "HealthcareService": "services",
    "Location": "places",
    "Group": "localities' lists of children",
    "AuditEvent": "audit events",
}
_LETTERS = {"c": "create", "r": "read", "u": "change", "d": "delete", "s": "search"}


def scope_words(scope: str) -> str:
    """A scope in words (a connected system's or app's FHIR access said as what it lets them do)."""
    if scope in _LOCAL_SCOPE_WORDS:
        return _LOCAL_SCOPE_WORDS[scope]
    who, _, rest = scope.partition("/")
    kind, _, letters = rest.partition(".")
    if not kind or not letters:
        return scope
    verbs = [_LETTERS[c] for c in letters if c in _LETTERS]
    said = ", ".join(verbs[:-1]) + (" and " if len(verbs) > 1 else "") + verbs[-1] if verbs else letters
    whose = "A connected system may" if who == "system" else "An app acting for a person may"
    return f"{whose} {said} {_FHIR_WORDS.get(kind, kind)}"
