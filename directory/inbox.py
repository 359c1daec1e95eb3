"""Notices to people: who is told of an audit event about a child, and what each is told.

The audit log is the outbox (docs/notifications.md): the people's notifier (childindex/people_notify.py)
reads it past its cursor and calls `notices_for_event` for each event, in one transaction with the
cursor. The rules here:

- **Recipients** come from the event's table (EVENTS): the CAF's holders (initiator and current Lead
  Professional), its TAC members, practitioners with an active involvement, the child's locality delivery
  team, or practitioners the event names (`to`, `requester`). Never the actor themself.
- **Each told only what they may see**, with an Actor for the recipient (their grant's role and
  localities, resolved by the composition root through `People`): nothing at all about a shielded child
  to someone who may not see it (permissions.may_see_shielded); the actor is named only to those who
  may see them (permissions.may_see_practitioner: a sensitive service's practitioner stays "someone");
  messages never name the child or anyone else (the link opens what the recipient may see).
- **One notice per recipient and event** (the `notice_once` constraint). A change by someone other than
  a holder was already told to the holders in the change's own transaction (notices.tell, with the
  reason): the notifier adopts those notices (stamps them with the event) and tells those holders
  nothing more.
- **An email** goes with each notice to a practitioner who has not chosen the inbox only and has an
  email on record, when email is on: an `EmailOutbox` row in the same transaction, which says nothing
  but that there is something to see.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from directory import repository as repo
from directory.models import (
    OPEN_CAF_STATUSES,
    Actor,
    Assessment,
    AuditEvent,
    Child,
    Consent,
    ConsentScope,
    Involvement,
    Practitioner,
    RecordStatus,
    Role,
    Tac,
    TacStatus,
)
from directory.models.notifications import EmailOutbox, Notice, NoticeMark, NoticePreference
from directory.permissions import caf_parties, may_see_practitioner, may_see_shielded
from directory.service.common import audit_change


class People(Protocol):
    """Who the recipients are to the rules: resolved from access grants by the composition root."""

    def actors(self, practitioner_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Actor]:
        """An Actor for each active practitioner (their grant's role and localities; none: practitioner)."""
        ...

    def locality_team(self, locality_code: str | None) -> dict[uuid.UUID, Actor]:
        """The practitioners whose active local_delivery_team grant covers this locality."""
        ...

    def practitioner_of(self, subject: str) -> uuid.UUID | None:
        """The practitioner a sign-in acts as (Practitioner.subject, or a local account's link)."""
        ...


# Who is told: the groups an event goes to (see docs/notifications.md for the table).
PEOPLE = "people"  # holders, TAC members, active involvements' practitioners, locality team
HOLDERS = "holders"
LEAD = "lead"
INITIATOR = "initiator"
MEMBERS = "members"
TEAM = "team"  # the child's locality delivery team
TO = "to"
REQUESTER = "requester"
FROM = "from"


@dataclass(frozen=True)
class Rule:
    """One event: its code in the inbox, who is told, what they are told ({by} is the actor), and where
    the notice links."""

    code: str
    groups: tuple[str, ...]
    what: str
    link: str = "card"  # card | worklist | notice (a page of the notice itself: still involved?)


EVENTS: dict[str, Rule] = {
    "caf.signal": Rule("caf-signalled", (PEOPLE,), "{by} signalled a CAF for a child you work with."),
    "caf.start": Rule("caf-started", (PEOPLE,), "{by} started a CAF for a child you work with."),
    "caf.complete": Rule("caf-completed", (PEOPLE,), "{by} completed a CAF for a child you work with."),
    "caf.close": Rule("caf-closed", (PEOPLE,), "{by} closed a CAF for a child you work with."),
    "tac.convene": Rule(
        "tac-convened", (PEOPLE,), "{by} convened the Team Around the Child of a child you work with."
    ),
    "tac.update": Rule("caf-changed", (), "{by} changed the Team Around the Child of a CAF you hold."),
    "lead-professional.hand-over": Rule(
        "lead-professional-changed",
        (REQUESTER, FROM, LEAD),
        "{by} handed over the Lead Professional role of a CAF you are part of.",
    ),
    "lead-professional.hand-over.request": Rule(
        "lead-professional-hand-over-requested",
        (TO, LEAD),
        "{by} asked for the Lead Professional role of a CAF to be handed over.",
    ),
    "lead-professional.hand-over.decline": Rule(
        "lead-professional-hand-over-declined",
        (REQUESTER, LEAD),
        "{by} declined a hand-over of the Lead Professional role of a CAF.",
    ),
    "tac.join.request": Rule("tac-join-requested", (TO,), "{by} asked to join the Team Around the Child."),
    "tac.join.accept": Rule("tac-join-accepted", (REQUESTER,), "{by} accepted your request to join a TAC."),
    "tac.join.decline": Rule("tac-join-declined", (REQUESTER,), "{by} declined your request to join a TAC."),
    "tac.invite": Rule("tac-invited", (TO,), "{by} invited you to join a Team Around the Child."),
    "tac.invite.accept": Rule(
        "tac-invite-accepted", (HOLDERS, LEAD), "{by} accepted an invitation to a TAC of a CAF you hold."
    ),
    "tac.invite.decline": Rule(
        "tac-invite-declined", (HOLDERS, LEAD), "{by} declined an invitation to a TAC of a CAF you hold."
    ),
    "caf.panel.send": Rule(
        "caf-sent-to-panel",
        (TEAM, HOLDERS),
        "{by} sent a CAF to the early intervention panel.",
        link="worklist",
    ),
    "caf.panel.decision": Rule(
        "caf-panel-decision", (HOLDERS, LEAD, INITIATOR), "{by} recorded the panel's decision on a CAF."
    ),
    "caf.step-up": Rule("caf-stepped-up", (PEOPLE,), "{by} stepped up a child you work with to social care."),
    "caf.step-down": Rule(
        "caf-stepped-down", (PEOPLE,), "{by} stepped down to early help a child you work with."
    ),
    "tac.action.add": Rule("tac-action-assigned", (TO,), "{by} gave you an action in a TAC plan."),
    "tac.action.update": Rule("tac-action-changed", (TO,), "{by} changed an action of yours in a TAC plan."),
    "tac.review": Rule("tac-reviewed", (MEMBERS, LEAD), "{by} recorded a review of a TAC you are part of."),
    "tac.review-overdue": Rule(
        "tac-review-overdue",
        (MEMBERS, LEAD, TEAM),
        "The review of a Team Around the Child is overdue.",
        link="worklist",
    ),
    "involvement.still-involved": Rule(
        "still-involved",
        (TO,),
        "Are you still working with this child? Your involvement was last confirmed a while ago: "
        "confirm it, or end it.",
        link="notice",
    ),
    "child.read": Rule(
        "open-caf-looked-up", (LEAD,), "{by} looked up a child whose CAF you lead.", link="card"
    ),
}
"""The events that tell people; every other audit action tells no one."""

SOMEONE = "Someone"  # an actor the recipient may not see (a sensitive service's practitioner)
SOMEONE_ELSE = "caf-changed"  # the code of "someone else changed your CAF" (told with the change)
SYSTEM_ROLE = Role.SYSTEM.value
LOOKED_UP = "child.read"


@dataclass(frozen=True)
class _Event:
    """An audit event read for the rules: its detail, child, CAF and the practitioner who acted."""

    row: AuditEvent
    detail: dict[str, object]
    child: Child
    caf: Assessment | None
    actor_id: uuid.UUID | None  # the acting practitioner (a system: the one it acted for)


def _hex_ids(value: object) -> list[uuid.UUID]:
    items = value if isinstance(value, list) else [value]
    ids = []
    for item in items:
        try:
            ids.append(uuid.UUID(str(item)))
        except ValueError:
            continue
    return ids


def _read(session: Session, event: AuditEvent, people: People) -> _Event | None:
    if event.target_type != "child" or not event.target_id:
        return None
    child = session.get(Child, uuid.UUID(event.target_id))
    if child is None or child.status != RecordStatus.ACTIVE.value:
        return None  # nothing is told of an archived, merged, sealed or purged record
    detail = json.loads(event.detail) if event.detail else {}
    caf = None
    if detail.get("caf_id"):
        caf = session.get(Assessment, uuid.UUID(str(detail["caf_id"])))
    elif detail.get("tac_id"):
        tac = session.get(Tac, uuid.UUID(str(detail["tac_id"])))
        caf = session.get(Assessment, tac.assessment_id) if tac is not None else None
    if caf is None:
        caf = repo.open_caf(session, child.id)
    actor_id = people.practitioner_of(event.actor_subject)
    if detail.get("on_behalf_of"):
        actor_id = _hex_ids(detail["on_behalf_of"])[0] if _hex_ids(detail["on_behalf_of"]) else actor_id
    return _Event(event, detail, child, caf, actor_id)


def _lead(session: Session, ev: _Event) -> list[uuid.UUID]:
    if ev.caf is None:
        return []
    lead = repo.current_lead(session, ev.child.id)
    if lead is not None and lead.assessment_id == ev.caf.id:
        return [lead.practitioner_id]
    return [ev.caf.lead_practitioner_id] if ev.caf.lead_practitioner_id else []


def _members(session: Session, ev: _Event) -> list[uuid.UUID]:
    if ev.caf is None:
        return []
    tac = repo.tac_for_caf(session, ev.caf.id)
    return [m.practitioner_id for m in repo.tac_members(session, tac.id)] if tac is not None else []


def _hand_over_from(session: Session, ev: _Event) -> list[uuid.UUID]:
    """The previous Lead Professional: named in the detail (B's hand-over), else the assignment's."""
    if ev.detail.get("from"):
        return _hex_ids(ev.detail["from"])
    if ev.caf is None:
        return []
    lead = repo.current_lead(session, ev.child.id)
    return [lead.from_practitioner_id] if lead is not None and lead.from_practitioner_id else []


def _group(session: Session, ev: _Event, group: str, people: People) -> dict[uuid.UUID, Actor | None]:
    """The practitioners of one group (an Actor when already resolved: the locality team)."""
    ids: list[uuid.UUID] = []
    if group == TEAM:
        return dict(people.locality_team(repo.locality_code(session, ev.child.locality_id)))
    if group == PEOPLE:
        found: dict[uuid.UUID, Actor | None] = {}
        for sub in (HOLDERS, MEMBERS, TEAM):
            found.update(_group(session, ev, sub, people))
        rows = repo.involvements_with_service(session, ev.child.id)
        found.update({i.practitioner_id: None for i, *_ in rows if i.practitioner_id is not None})
        return found
    if group == HOLDERS and ev.caf is not None:
        ids = list(caf_parties(session, ev.caf).holders)
    elif group == LEAD:
        ids = _lead(session, ev)
    elif group == INITIATOR and ev.caf is not None:
        ids = [ev.caf.initiator_id]
    elif group == MEMBERS:
        ids = _members(session, ev)
    elif group in (TO, REQUESTER):
        ids = _hex_ids(ev.detail.get(group)) if ev.detail.get(group) else []
    elif group == FROM:
        ids = _hand_over_from(session, ev)
    return dict.fromkeys(ids)


def _looked_up_with_consent(session: Session, ev: _Event) -> bool:
    """CP-IS style: a connected system read a child whose open CAF's consent covers sharing."""
    if ev.row.actor_role != SYSTEM_ROLE or ev.caf is None:
        return False
    if ev.caf.status not in {s.value for s in OPEN_CAF_STATUSES} or ev.caf.consent_id is None:
        return False
    consent = session.get(Consent, ev.caf.consent_id)
    sharing = {ConsentScope.CAF.value, ConsentScope.INFORMATION_SHARING.value}
    return consent is not None and consent.withdrawn_at is None and consent.scope in sharing


def _once(session: Session, key: str, now: datetime) -> bool:
    """Mark this key made; False when it already was (by this or another worker)."""
    try:
        with session.begin_nested():
            session.add(NoticeMark(key=key[:200], made_at=now))
            session.flush()
    except IntegrityError:
        return False
    return True


def _named(session: Session, ev: _Event) -> str:
    """How the actor is named to those who may see them: name and organisation (a system: its
    organisation)."""
    if ev.row.actor_role == SYSTEM_ROLE:
        return ev.row.actor_organisation or "A connected system"
    practitioner = session.get(Practitioner, ev.actor_id) if ev.actor_id else None
    org = ev.row.actor_organisation
    if practitioner is None:
        return f"Someone at {org}" if org else SOMEONE
    return f"{practitioner.name} ({org})" if org else str(practitioner.name)


def _link(rule: Rule, ev: _Event, notice_id: uuid.UUID, recipient: Actor) -> str:
    if rule.link == "notice":
        return f"/inbox/{notice_id}"
    if rule.link == "worklist" and recipient.role == Role.LOCAL_DELIVERY_TEAM:
        return "/worklist"  # the team's own queue; the others go to the record
    return f"/children/{ev.child.id}"


def _adopt_told(session: Session, ev: _Event, rule: Rule) -> list[Notice]:
    """The notices notices.tell wrote with this change (someone other than a holder made it): stamped with
    the event, so the holders are not told again. The oldest one per practitioner: two such changes in a
    row (the same actor, action and CAF) each adopt their own."""
    if "by" not in ev.detail or ev.caf is None:
        return []
    at = ev.row.at
    found = session.exec(
        select(Notice)
        .where(
            Notice.caf_id == ev.caf.id,
            Notice.action == ev.row.action,
            Notice.by_subject == ev.row.actor_subject,
            col(Notice.audit_seq).is_(None),
            col(Notice.created_at) >= at - timedelta(minutes=10),
            col(Notice.created_at) <= at + timedelta(seconds=1),  # told before the event was appended
        )
        .order_by(col(Notice.created_at), col(Notice.id))
    ).all()
    rows = list({n.practitioner_id: n for n in reversed(found)}.values())  # the oldest per practitioner
    for notice in rows:
        notice.audit_seq = ev.row.seq
        notice.event = SOMEONE_ELSE if not rule.groups else rule.code
        notice.link = f"/children/{ev.child.id}"
        session.add(notice)
    return rows


def _queue_emails(session: Session, notices: list[Notice], told: list[Notice], now: datetime) -> None:
    """An email outbox row for each notice whose practitioner has an email on record and has not chosen
    the inbox only (a notice told with the change may have one already)."""
    ids = list({n.practitioner_id for n in notices})
    if not ids:
        return
    with_email = set(
        session.exec(
            select(Practitioner.id).where(col(Practitioner.id).in_(ids), col(Practitioner.email).is_not(None))
        ).all()
    )
    inbox_only = set(
        session.exec(
            select(NoticePreference.practitioner_id).where(
                col(NoticePreference.practitioner_id).in_(ids), NoticePreference.channel == "inbox"
            )
        ).all()
    )
    queued = set()
    if told:
        queued = set(
            session.exec(
                select(EmailOutbox.notice_id).where(col(EmailOutbox.notice_id).in_([n.id for n in told]))
            ).all()
        )
    for notice in notices:
        if notice.practitioner_id in with_email - inbox_only and notice.id not in queued:
            session.add(
                EmailOutbox(
                    notice_id=notice.id,
                    practitioner_id=notice.practitioner_id,
                    next_attempt_at=now,
                    created_at=now,
                )
            )


def _recipients(session: Session, ev: _Event, rule: Rule, people: People) -> dict[uuid.UUID, Actor | None]:
    found: dict[uuid.UUID, Actor | None] = {}
    for group in rule.groups:
        for pid, resolved in _group(session, ev, group, people).items():
            if found.get(pid) is None:
                found[pid] = resolved
    if "by" in ev.detail and ev.row.action != LOOKED_UP:  # someone else changed the CAF: its holders
        for pid in _group(session, ev, HOLDERS, people):
            found.setdefault(pid, None)
    return found


def notices_for_event(
    session: Session, event: AuditEvent, people: People, *, now: datetime, email: bool
) -> list[Notice]:
    """Write the notices (and, when `email`, the emails) this audit event makes; flushes, the caller
    commits with its cursor. Idempotent per practitioner and event (`notice_once`)."""
    rule = EVENTS.get(event.action)
    if rule is None:
        return []
    ev = _read(session, event, people)
    if ev is None:
        return []
    if event.action == LOOKED_UP:
        if not _looked_up_with_consent(session, ev):
            return []
        key = f"looked-up:{event.actor_subject}:{ev.child.id.hex}:{event.at.date().isoformat()}"
        if not _once(session, key, now):
            return []  # at most one per system, child and day
    with session.no_autoflush:
        told = _adopt_told(session, ev, rule)
        done = {n.practitioner_id for n in told}
        found = _recipients(session, ev, rule, people)
        actors = people.actors([pid for pid, resolved in found.items() if resolved is None])
        sensitive = repo.sensitive_practitioners(session, [ev.actor_id] if ev.actor_id else [])
        named = _named(session, ev)
        made: list[Notice] = []
        for pid in found:
            recipient = found[pid] or actors.get(pid)
            if recipient is None or pid == ev.actor_id or pid in done:
                continue  # an inactive practitioner, the actor themself, or a holder told with the change
            if recipient.subject == event.actor_subject or not may_see_shielded(ev.child, recipient):
                continue
            hidden = ev.actor_id is not None and not may_see_practitioner(recipient, ev.actor_id, sensitive)
            notice = Notice(
                practitioner_id=pid,
                child_id=ev.child.id,
                caf_id=ev.caf.id if ev.caf is not None else None,
                action=event.action,
                event=rule.code,
                message=rule.what.format(by=SOMEONE if hidden else named)[:500],
                by_subject=event.actor_subject,
                by_name=None if hidden else named,
                by_role=Role.PRACTITIONER.value if hidden else event.actor_role,
                by_organisation=None if hidden else event.actor_organisation,
                audit_seq=event.seq,
                created_at=event.at,  # when it happened
            )
            notice.link = _link(rule, ev, notice.id, recipient)
            session.add(notice)
            made.append(notice)
        if email:
            _queue_emails(session, [*told, *made], told, now)
    session.flush()
    return made


# --------------------------------------------------------------------------- reminders

REMINDER_ACTOR = Actor(subject="childindex:reminders", role=Role.SYSTEM, display_name="Reminders")


def due_reminders(session: Session, *, now: datetime, still_involved_days: int) -> int:
    """Append the audit events of reminders now due, each once (NoticeMark): a convened TAC whose review
    date passed (`tac.review-overdue`) and an active involvement not confirmed for `still_involved_days`
    (`involvement.still-involved`, to its practitioner). Returns how many; flushes."""
    made = 0
    overdue = session.exec(
        select(Tac).where(
            Tac.status == TacStatus.CONVENED.value,
            col(Tac.next_review_date).is_not(None),
            col(Tac.next_review_date) < now.date(),
        )
    ).all()
    for tac in overdue:
        assert tac.next_review_date is not None
        if _once(session, f"tac-review-overdue:{tac.id.hex}:{tac.next_review_date.isoformat()}", now):
            audit_change(
                session,
                REMINDER_ACTOR,
                "tac.review-overdue",
                tac.child_id,
                {"tac_id": tac.id.hex, "caf_id": tac.assessment_id.hex},
            )
            made += 1
    stale = session.exec(
        select(Involvement).where(
            Involvement.status == "active",
            col(Involvement.practitioner_id).is_not(None),
            col(Involvement.last_confirmed_at) < now - timedelta(days=still_involved_days),
        )
    ).all()
    for involvement in stale:
        assert involvement.practitioner_id is not None
        key = f"still-involved:{involvement.id.hex}:{involvement.last_confirmed_at.isoformat()}"
        if _once(session, key, now):
            audit_change(
                session,
                REMINDER_ACTOR,
                "involvement.still-involved",
                involvement.child_id,
                {"involvement_id": involvement.id.hex, "to": involvement.practitioner_id.hex},
            )
            made += 1
    session.flush()
    return made


def still_involved_target(session: Session, notice: Notice) -> Involvement | None:
    """The involvement a 'still involved?' notice asks about (from its audit event)."""
    if notice.event != "still-involved" or notice.audit_seq is None:
        return None
    event = session.get(AuditEvent, notice.audit_seq)
    detail = json.loads(event.detail) if event is not None and event.detail else {}
    ids = _hex_ids(detail.get("involvement_id")) if detail.get("involvement_id") else []
    return session.get(Involvement, ids[0]) if ids else None


__all__ = [
    "EVENTS",
    "People",
    "Rule",
    "due_reminders",
    "notices_for_event",
    "still_involved_target",
]
