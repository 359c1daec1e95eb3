"""The locality delivery team's worklist page (directory/service/worklist.py): what needs acting on."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from auth.deps import RequireScope
from childindex.web.deps import render, unit_of_work
from childindex.worklist_api import rules
from directory.http.config import practice
from directory.models import Actor, Role, utcnow
from directory.service.worklist import WORKLIST_READERS, locality_worklist, worklist_localities

router = APIRouter(include_in_schema=False)
WorklistTeam = Annotated[Actor, Depends(RequireScope("directory.search", roles=WORKLIST_READERS))]
assert frozenset({Role.LOCAL_DELIVERY_TEAM}) == WORKLIST_READERS  # (the nav offers it to them alone)


@router.get("/worklist", name="web_worklists")
def web_worklists(request: Request, actor: WorklistTeam) -> Response:
    """Your localities' worklists: straight to it when your grant names one."""
    with unit_of_work(request) as db:
        places = [(loc.code, loc.name) for loc in worklist_localities(db, actor)]
    if len(places) == 1:
        return RedirectResponse(f"/worklist/{places[0][0]}", status_code=303)
    return render(request, "worklist_choose.html", actor=actor, places=places)


@router.get("/worklist/{code}", name="web_worklist")
def web_worklist(code: str, request: Request, actor: WorklistTeam) -> Response:
    """One locality's worklist (audited with every child it names)."""
    with unit_of_work(request) as db:
        found = locality_worklist(
            db, actor=actor, code=code, today=date.today(), now=utcnow(), rules=rules(practice(request))
        )
        others = [(loc.code, loc.name) for loc in worklist_localities(db, actor) if loc.code != code]
    return render(request, "worklist.html", actor=actor, worklist=found, others=others)
