"""What the record's action forms open with when the answer is obvious (issue #20; GOV.UK question pages:
prefill what the service knows). Only a fresh form gets them (card_actions.Action.defaults), never
one sent back to be put right. Recording an involvement has its own: childindex/web/involvement_form.py.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session

from directory.models import Actor, ChildCard


def ended_today(db: Session, actor: Actor, card: ChildCard, today: date) -> dict[str, Any]:
    """Ending an involvement: it ended today."""
    return {"end-day": str(today.day), "end-month": str(today.month), "end-year": str(today.year)}


def the_only_caf_consent(db: Session, actor: Actor, card: ChildCard, today: date) -> dict[str, Any]:
    """Starting a CAF: the consent to it, when exactly one current consent covers a CAF."""
    usable = [c for c in card.consents if c.current and c.scope == "caf"]
    return {"consent_id": str(usable[0].id)} if len(usable) == 1 else {}
