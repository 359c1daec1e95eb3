"""Access grants: the caller's current grant, checked on every request (or why there is none).

Managing grants (grant, renew, suspend, approve...) is `auth.grant_admin`; what a grant may say,
`auth.grant_rules`.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta
from typing import NamedTuple, Protocol

import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from auth.errors import AuthRefused, forbidden, unauthenticated
from auth.grant_rules import GrantRules
from auth.models import AccessGrant, GrantStatus, LocalUser, OAuthClient, RefreshToken, SeenJti, SubjectKind
from directory.db import Prepared, Readable
from directory.models import Practitioner, Role, utcnow

# How much a role may do; an admin may grant a role up to their own rank, never above it.
ROLE_RANK: dict[Role, int] = {
    Role.PRACTITIONER: 1,
    Role.LOCAL_DELIVERY_TEAM: 1,
    Role.AUDITOR: 1,
    Role.SYSTEM: 1,
    Role.DESIGNATED_PRACTITIONER: 2,
    Role.CHILD_PROTECTION: 2,
    Role.DATA_MANAGER: 2,
    Role.ADOPTION_OFFICER: 2,
    Role.DIRECTORY_ADMIN: 3,
}

# The scopes a role is normally granted (the demo, the dev header and the admin UI default).
ROLE_SCOPES: dict[Role, tuple[str, ...]] = {
    Role.PRACTITIONER: ("directory.search", "directory.write"),
    Role.DESIGNATED_PRACTITIONER: ("directory.search", "directory.write", "audit.read"),
    Role.CHILD_PROTECTION: ("directory.search", "directory.write"),
    Role.LOCAL_DELIVERY_TEAM: ("directory.search", "directory.write"),
    Role.DIRECTORY_ADMIN: ("directory.search", "directory.write", "grants.admin", "audit.read"),
    Role.AUDITOR: ("audit.read", "directory.search"),
    Role.DATA_MANAGER: ("directory.search", "directory.write", "audit.read"),
    Role.ADOPTION_OFFICER: ("directory.search", "directory.write"),
    Role.SYSTEM: ("system/Patient.rs", "system/EpisodeOfCare.rs", "directory.search"),
}

# Scopes only a person may hold: changing who has access needs someone accountable behind every
# change (named, trained, vetted, signed in with two factors, and a second administrator to check
# them). A system client has none of that, and one holding grants.admin would let whoever holds its
# key grant access -- their own included -- with nobody else involved. So no client grant carries
# it, and a client's token never counts it (even from a grant made before this rule).
PERSONS_ONLY_SCOPES = frozenset({"grants.admin"})
PERSONS_ONLY_ROLES = frozenset({Role.DIRECTORY_ADMIN})

ASK_ADMIN = "Ask your directory administrator"


class Validity(Protocol):
    """How long training and vetting stay valid (an AuthConfig or the GrantRules)."""

    @property
    def training_valid_days(self) -> int:
        """Information-sharing training older than this many days is refused."""
        ...

    @property
    def vetting_valid_days(self) -> int:
        """A vetting check older than this many days is refused."""
        ...


def _d(value: datetime | date) -> str:
    return value.strftime("%d %B %Y")


_WHOSE = (
    col(AccessGrant.subject) == bindparam("subject"),
    col(AccessGrant.subject_kind) == bindparam("kind"),
)
_LIVE = (  # the grants that let their subject in `now`...
    col(AccessGrant.status) == GrantStatus.ACTIVE.value,
    col(AccessGrant.valid_from) <= bindparam("now"),
    col(AccessGrant.valid_until) > bindparam("now"),
)
_LIVE_FIRST = (col(AccessGrant.valid_until).desc(), col(AccessGrant.updated_at).desc())  # ...the one
_MINE = select(AccessGrant).where(*_WHOSE)
_LIVE_GRANT = _MINE.where(*_LIVE).order_by(*_LIVE_FIRST).limit(1)
_LATEST_GRANT = _MINE.order_by(col(AccessGrant.updated_at).desc()).limit(1)


class LiveGrant(NamedTuple):
    """What a request needs of the caller's live grant (see `caller_facts`).

    Named tuples, this and CallerFacts: every request builds one, and a frozen dataclass costs
    five times as much to build (measured: 1.6 against 0.3 microseconds).
    """

    id: uuid.UUID
    role: str
    authority: str
    organisation: str | None
    scopes: str
    localities: str
    training_completed_on: date | None
    vetting_checked_on: date | None
    responsible: str | None

    def scope_set(self) -> set[str]:
        """The grant's scopes as a set."""
        return set(self.scopes.split())

    def locality_list(self) -> list[str]:
        """The locality codes the grant covers (empty: all of the authority)."""
        return list(json.loads(self.localities or "[]"))


class CallerFacts(NamedTuple):
    """A caller's live grant, whether their token was revoked, the practitioner they are, and
    whether anything that should end their access has: their account or the client their token
    was issued to switched off, their sign-in ended, or (a client) its responsible person's access."""

    grant: LiveGrant
    revoked: bool
    practitioner_id: uuid.UUID | None
    account_disabled: bool = False
    client_disabled: bool = False
    sign_in_ended: bool = False
    responsible_current: bool = True

    def ended(self, *, kind: SubjectKind, client_id: str | None) -> AuthRefused | None:
        """The refusal for access that has ended although the grant is live, or None."""
        if self.sign_in_ended:
            return unauthenticated(
                "sign-in-ended",
                "This sign-in has ended (it was signed out, or its refresh token was used twice, "
                "which means someone else may hold a copy). Sign in again.",
            )
        if self.account_disabled and kind == SubjectKind.USER:
            return forbidden("account-disabled", f"Your account is disabled. {ASK_ADMIN} if you need access.")
        if self.client_disabled:
            return forbidden(
                "client-disabled",
                f"The application this token was issued to ({client_id}) has been switched off. {ASK_ADMIN}.",
            )
        if not self.responsible_current:
            return forbidden(
                "client-responsible-lapsed",
                f"The person responsible for this client ({self.grant.responsible}) no longer holds a "
                "current grant with current training and vetting. Ask your directory administrator "
                "to renew theirs or to name another person responsible.",
            )
        return None


_G = AccessGrant.__table__  # type: ignore[attr-defined]
_R = _G.alias("responsible_grant")
_PRACTITIONER = Practitioner.__table__  # type: ignore[attr-defined]
_REVOKED_TOKENS = SeenJti.__table__  # type: ignore[attr-defined]
_ACCOUNT = LocalUser.__table__  # type: ignore[attr-defined]
_CLIENT = OAuthClient.__table__  # type: ignore[attr-defined]
_SIGN_IN = RefreshToken.__table__  # type: ignore[attr-defined]
_CALLER_FACTS = Prepared(
    sa.select(
        _G.c.id,
        _G.c.role,
        _G.c.authority,
        _G.c.organisation,
        _G.c.scopes,
        _G.c.localities,
        _G.c.training_completed_on,
        _G.c.vetting_checked_on,
        _G.c.responsible,
        sa.exists().where(_REVOKED_TOKENS.c.key == bindparam("revoked_key")).label("revoked"),
        sa.select(_PRACTITIONER.c.id)
        .where(_PRACTITIONER.c.subject == bindparam("subject"))
        .scalar_subquery()
        .label("practitioner_id"),
        # Each an index lookup (username unique, client_id the key, family_id indexed).
        sa.exists()
        .where(_ACCOUNT.c.username == bindparam("subject"), sa.not_(_ACCOUNT.c.active))
        .label("account_disabled"),
        sa.exists()
        .where(_CLIENT.c.client_id == bindparam("client_id"), sa.not_(_CLIENT.c.active))
        .label("client_disabled"),
        sa.exists()
        .where(_SIGN_IN.c.family_id == bindparam("sid"), _SIGN_IN.c.revoked_at.is_not(None))
        .label("sign_in_ended"),
        sa.or_(
            _G.c.responsible.is_(None),
            sa.exists().where(
                _R.c.subject == _G.c.responsible,
                _R.c.subject_kind == SubjectKind.USER.value,
                _R.c.status == GrantStatus.ACTIVE.value,
                _R.c.valid_from <= bindparam("now"),
                _R.c.valid_until > bindparam("now"),
                _R.c.training_completed_on >= bindparam("training_since"),
                _R.c.vetting_checked_on >= bindparam("vetting_since"),
            ),
        ).label("responsible_current"),
    )
    .where(*_WHOSE, *_LIVE)  # the live grant exactly as _LIVE_GRANT picks it
    .order_by(*_LIVE_FIRST)
    .limit(1)
)


_DEFAULT_VALIDITY = GrantRules()
_SINCE: dict[tuple[date, int, int], tuple[date, date]] = {}


def _checks_since(today: date, validity: Validity) -> tuple[date, date]:
    """The oldest training and vetting dates still current today (worked out once a day)."""
    key = (today, validity.training_valid_days, validity.vetting_valid_days)
    found = _SINCE.get(key)
    if found is None:
        if len(_SINCE) > 16:
            _SINCE.clear()
        found = _SINCE[key] = (
            today - timedelta(days=validity.training_valid_days),
            today - timedelta(days=validity.vetting_valid_days),
        )
    return found


def caller_facts(
    conn: Readable,
    *,
    subject: str,
    kind: SubjectKind,
    jti: str | None,
    now: datetime,
    client_id: str | None = None,
    sid: uuid.UUID | None = None,
    validity: Validity | None = None,
) -> CallerFacts | None:
    """Everything a request checks about its caller, in one query: the live grant (as `current_grant`
    picks it), whether the token `jti` was revoked, the practitioner with this sign-in subject, and
    whether the account, the token's client (`client_id`, ours), the sign-in (`sid`, its refresh
    family) or a client's responsible person has ended since the token was issued.
    None when there is no live grant: `current_grant` then says why, for the refusal."""
    training_since, vetting_since = _checks_since(now.date(), validity or _DEFAULT_VALIDITY)
    rows = _CALLER_FACTS.rows(
        conn,
        {
            "subject": subject,
            "kind": kind.value,
            "now": now,
            "revoked_key": f"revoked:{jti}" if jti else "",
            "client_id": client_id,
            "sid": sid,
            "training_since": training_since,
            "vetting_since": vetting_since,
        },
    )
    if not rows:
        return None
    *live, revoked, practitioner_id, account_off, client_off, sign_in_ended, responsible_ok = rows[0]
    return CallerFacts(
        grant=LiveGrant(*live),
        revoked=bool(jti) and bool(revoked),
        practitioner_id=practitioner_id,
        account_disabled=bool(account_off),
        client_disabled=bool(client_off),
        sign_in_ended=bool(sign_in_ended),
        responsible_current=bool(responsible_ok),
    )


def current_grant(
    session: Session,
    *,
    subject: str,
    kind: SubjectKind,
    cfg: Validity,
    now: datetime | None = None,
) -> AccessGrant:
    """The grant that lets this subject in now, or a 403 with a reason they can act on."""
    now = now or utcnow()
    # Every request asks this: the database picks the one live grant, and the statements are
    # built once (building and keying a statement cost more than running it).
    who = {"subject": subject, "kind": kind.value}
    grant = session.exec(_LIVE_GRANT, params={**who, "now": now}).first()
    if grant is None:
        latest = session.exec(_LATEST_GRANT, params=who).first()
        if latest is None:
            raise forbidden(
                "no-grant",
                f"You have no access grant for this directory. {ASK_ADMIN} for "
                "one; you will need your information-sharing training and vetting dates.",
            )
        raise _why_not(latest, now)
    if kind == SubjectKind.USER:
        check_checks(grant, cfg=cfg, today=now.date())
    return grant


def _why_not(grant: AccessGrant, now: datetime) -> AuthRefused:
    why = f" ({grant.status_reason})" if grant.status_reason else ""
    if grant.status == GrantStatus.PENDING:
        return forbidden(
            "grant-pending",
            "This access grant waits for a second administrator's approval; it works once approved.",
        )
    if grant.status == GrantStatus.REVOKED:
        return forbidden(
            "grant-revoked",
            f"Your access grant was revoked on {_d(grant.updated_at)}"
            f"{why}. {ASK_ADMIN} if you need access again.",
        )
    if grant.status == GrantStatus.SUSPENDED:
        return forbidden(
            "grant-suspended",
            f"Your access grant is suspended since "
            f"{_d(grant.updated_at)}{why}. {ASK_ADMIN} to lift the suspension.",
        )
    if grant.valid_from > now:
        return forbidden("grant-not-yet-valid", f"Your access grant starts on {_d(grant.valid_from)}.")
    return forbidden(
        "grant-expired",
        f"Your access grant expired on {_d(grant.valid_until)}. {ASK_ADMIN} to renew it.",
    )


def check_checks(grant: AccessGrant | LiveGrant, *, cfg: Validity, today: date) -> None:
    """Refuse a person whose information-sharing training or vetting is missing or out of date."""
    if grant.training_completed_on is None:
        raise forbidden(
            "training-missing",
            "There is no record of your information-sharing "
            f"training. Complete it, then {ASK_ADMIN.lower()} to record the date.",
        )
    if grant.training_completed_on < today - timedelta(days=cfg.training_valid_days):
        raise forbidden(
            "training-expired",
            "Your information-sharing training "
            f"({_d(grant.training_completed_on)}) is older than "
            f"{cfg.training_valid_days} days. Refresh it, then {ASK_ADMIN.lower()} "
            "to record the new date.",
        )
    if grant.vetting_checked_on is None:
        raise forbidden(
            "vetting-missing",
            f"There is no record of your vetting (DBS) check. {ASK_ADMIN} to record it once it is done.",
        )
    if grant.vetting_checked_on < today - timedelta(days=cfg.vetting_valid_days):
        raise forbidden(
            "vetting-expired",
            f"Your vetting check ({_d(grant.vetting_checked_on)}) "
            f"is older than {cfg.vetting_valid_days} days. {ASK_ADMIN} to renew it.",
        )
