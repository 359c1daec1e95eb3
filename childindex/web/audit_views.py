"""Audit events as people read them: plain labels, people by name with role and organisation, and
repeated views of one child by one person within a short window as one row with a count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from childindex.web.alert_words import people, role_words
from childindex.web.audit_labels import label
from childindex.web.practice import PURPOSES
from directory.models import AuditEvent

GROUP_WINDOW = timedelta(minutes=15)
VIEWS = frozenset({"child.read", "child.read.merged", "child.history.read", "child.access-log.read"})
_PURPOSE_WORDS = {p.value: words for p, words in PURPOSES}


@dataclass
class EventRow:
    """One row of the log: an event, or repeated views grouped (newest first)."""

    seq: int
    at: datetime
    first_at: datetime
    count: int
    label: str
    who: str
    role: str
    organisation: str | None
    purpose: str | None
    outcome: str
    about_child: bool
    note: str | None = None


def _key(e: AuditEvent) -> tuple[str, str, str | None] | None:
    if e.action not in VIEWS or e.outcome != "success":
        return None
    return (e.actor_subject, e.action, e.target_id)


def event_rows(session: Session, events: list[AuditEvent], notes: dict[int, str]) -> list[EventRow]:
    """The events (newest first) as rows: a person's repeated views of one child within GROUP_WINDOW
    of the group's latest become one row with a count; nothing with a note is grouped."""
    names = people(session, {e.actor_subject for e in events})
    rows: list[EventRow] = []
    open_groups: dict[tuple[str, str, str | None], EventRow] = {}
    for e in events:
        key = _key(e) if e.seq not in notes else None
        group = open_groups.get(key) if key else None
        if group is not None and group.at - e.at <= GROUP_WINDOW:
            group.count += 1
            group.first_at = e.at
            continue
        row = EventRow(
            seq=e.seq,
            at=e.at,
            first_at=e.at,
            count=1,
            label=label(e.action),
            who=names.get(e.actor_subject) or e.actor_subject,
            role=role_words(e.actor_role),
            organisation=e.actor_organisation,
            purpose=_PURPOSE_WORDS.get(e.purpose or "", e.purpose),
            outcome=e.outcome,
            about_child=e.target_type == "child",
            note=notes.get(e.seq),
        )
        rows.append(row)
        if key:
            open_groups[key] = row
    return rows
