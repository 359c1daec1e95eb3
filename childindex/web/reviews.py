"""The held feed rows page (/admin/match-reviews): directory admins and data managers see each row
the way the feed gave it beside its candidates, and link it to one or create a new record."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from auth.deps import RequireScope
from auth.policy import MATCH_REVIEWERS
from childindex.reviews_api import PrecedenceDep
from childindex.web.deps import check_csrf, flash, render, unit_of_work
from childindex.web.forms import FormData, text
from directory.errors import DomainError
from directory.importer.reviews import ReviewDecision, decide_review, list_reviews
from directory.models import Actor

router = APIRouter(include_in_schema=False)
Reviewer = Annotated[Actor, Depends(RequireScope("directory.write", roles=MATCH_REVIEWERS))]


@router.get("/admin/match-reviews", name="web_match_reviews")
def web_match_reviews(request: Request, actor: Reviewer) -> Response:
    """Held feed rows, oldest first, each with its candidates and the two decisions. Audited."""
    with unit_of_work(request) as db:
        reviews = list_reviews(db, actor=actor, limit=50)
    return render(request, "admin/match_reviews.html", actor=actor, reviews=reviews)


@router.post("/admin/match-reviews/{review_id}", name="web_match_review_decide")
def web_match_review_decide(
    review_id: uuid.UUID, request: Request, actor: Reviewer, form: FormData, precedence: PrecedenceDep
) -> Response:
    """Link a held row to the chosen candidate, or create a new record from it. Audited."""
    if not check_csrf(request, form):
        return render(
            request,
            "message.html",
            actor=actor,
            title="This form has expired",
            message="Go back, reload the page and try again.",
            status_code=400,
        )
    choice = text(form, "decision") or ""
    try:
        if choice == "create":
            decision = ReviewDecision(decision="create")
        elif choice.startswith("link:"):
            decision = ReviewDecision(decision="link", child_id=uuid.UUID(choice.removeprefix("link:")))
        else:
            flash(request, "Choose a record to link the row to, or create a new record.")
            return RedirectResponse("/admin/match-reviews", status_code=303)
        with unit_of_work(request) as db:
            decide_review(
                db,
                actor=actor,
                review_id=review_id,
                decision=decision,
                precedence=precedence,
                today=date.today(),
            )
    except ValueError:
        flash(request, "Choose a record to link the row to, or create a new record.")
        return RedirectResponse("/admin/match-reviews", status_code=303)
    except DomainError as exc:
        flash(request, exc.message)
        return RedirectResponse("/admin/match-reviews", status_code=303)
    flash(
        request, "Linked to the record you chose." if decision.decision == "link" else "A new record is made."
    )
    return RedirectResponse("/admin/match-reviews", status_code=303)
