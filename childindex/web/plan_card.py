"""The card's TAC section shows the TAC's plan: its actions and its last review (the forms that
change the plan are childindex/web/plan_pages.py)."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from childindex.web.deps import unit_of_work
from directory.models import Actor, ChildCard, utcnow
from directory.plan_repository import actions_of, reviews_of
from directory.service import plan


def plan_on_card(request: Request, actor: Actor, card: ChildCard) -> dict[str, Any]:
    """The plan the card's TAC section shows: the card has a TAC only when the actor may see it (a
    shielded record's is withheld), and owners the actor may not see are withheld here too."""
    if card.tac is None:
        return {"plan_actions": [], "last_review": None}
    with unit_of_work(request) as db:
        rows = actions_of(db, card.tac.id)
        reviews = reviews_of(db, card.tac.id)
        return {
            "plan_actions": plan.actions_shown(db, actor, rows, utcnow().date()),
            "last_review": reviews[0] if reviews else None,
        }
