"""/api/v1/match-reviews: feed rows held for review (docs/feeds.md), and a person's decision on one."""

from __future__ import annotations

import uuid
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from childindex.settings import Settings, current_settings
from directory.http.deps import CurrentActor, SessionDep, UnitOfWorkRoute
from directory.importer.precedence import Precedence, load_precedence
from directory.importer.reviews import ReviewDecision, ReviewRead, decide_review, list_reviews, show_review

router = APIRouter(prefix="/api/v1", route_class=UnitOfWorkRoute, tags=["match reviews"])


@lru_cache(maxsize=4)
def _precedence(path: str | None) -> Precedence:
    return load_precedence(Path(path) if path else None)


def feed_precedence(settings: Annotated[Settings, Depends(current_settings)]) -> Precedence:
    """Which fields each feed is trusted for (CHILDINDEX_FEED_PRECEDENCE_FILE, or the defaults)."""
    return _precedence(settings.feed_precedence_file)


PrecedenceDep = Annotated[Precedence, Depends(feed_precedence)]


@router.get("/match-reviews", response_model=list[ReviewRead])
def list_match_reviews(
    session: SessionDep,
    actor: CurrentActor,
    status: Annotated[str, Query(pattern="^(open|linked|created)$")] = "open",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[ReviewRead]:
    """Feed rows held for review, oldest first, with their candidates (directory admins, data managers)."""
    return list_reviews(session, actor=actor, status=status, limit=limit)


@router.get("/match-reviews/{review_id}", response_model=ReviewRead)
def read_match_review(review_id: uuid.UUID, session: SessionDep, actor: CurrentActor) -> ReviewRead:
    """One held feed row with its candidates."""
    return show_review(session, actor=actor, review_id=review_id)


@router.post("/match-reviews/{review_id}", response_model=ReviewRead)
def decide_match_review(
    review_id: uuid.UUID,
    data: ReviewDecision,
    session: SessionDep,
    actor: CurrentActor,
    precedence: PrecedenceDep,
) -> ReviewRead:
    """Link the held row to one of its candidates, or create a new record from it (409 when
    someone decided it first). Audited."""
    return decide_review(
        session, actor=actor, review_id=review_id, decision=data, precedence=precedence, today=date.today()
    )
