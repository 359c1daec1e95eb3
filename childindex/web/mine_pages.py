"""A practitioner's own lists (directory/service/mine.py): children I'm involved with, and my CAFs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from auth.deps import RequireScope
from childindex.web.deps import render, unit_of_work
from directory.models import Actor
from directory.service.mine import MINE_READERS, my_work

router = APIRouter(include_in_schema=False)
Practitioner = Annotated[Actor, Depends(RequireScope("directory.search", roles=MINE_READERS))]


@router.get("/mine", name="web_mine")
def web_mine(request: Request, actor: Practitioner) -> Response:
    """The children you are involved with and your CAFs (audited with every child it names)."""
    with unit_of_work(request) as db:
        work = my_work(db, actor=actor)
    return render(request, "mine.html", actor=actor, work=work)
