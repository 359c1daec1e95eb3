"""GET/POST /api/v1/children/search: ranked matches with score, grade, why, and who is involved."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.engine import Engine
from sqlmodel import Session

from directory import audit
from directory import repository as repo
from directory.bounds import bounded
from directory.db import driver_reader, read_only
from directory.errors import DomainError, InvalidInput, NotAllowed
from directory.glance import Contactable, Glance, at_a_glance
from directory.http.config import practice
from directory.http.deps import CurrentActor, audit_refusal, count_looks
from directory.http.lanes import in_search_lane
from directory.models import Actor, Child, Contact, Purpose, Role
from directory.observe import observer
from directory.reach import reach_filter, restricts
from directory.service import SHIELD_VIEWERS, age_on, ask_contact, may_see_practitioner
from search.matching import MatchingEngine, validate_criteria
from search.port import AsyncReads, CriteriaError, Match, SearchQuery, SearchResult

router = APIRouter(prefix="/api/v1", tags=["search"])


class SearchCriteria(BaseModel):
    """What the practitioner knows. Minimum: an identifier, or a name plus a date of birth or a range."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    given: str | None = Field(default=None, max_length=100, description="Given name, nickname or initial")
    family: str | None = Field(default=None, max_length=100, description="Family name, current or previous")
    birth_date: date | None = Field(default=None, description="Exact date of birth")
    birth_date_from: date | None = Field(default=None, description="Start of a date-of-birth range")
    birth_date_to: date | None = Field(default=None, description="End of a range (at most a year wide)")
    sex: Literal["female", "male", "other", "unknown"] | None = None
    postcode: str | None = Field(default=None, max_length=10, description="Full postcode, sector or district")
    nhs_number: str | None = Field(default=None, max_length=14)
    upn: str | None = Field(default=None, max_length=13, description="Unique Pupil Number")
    local_id: str | None = Field(default=None, max_length=64, description="A local id as 'system:value'")
    limit: int = Field(default=10, ge=1, le=10)

    _dates_in_bounds = field_validator("birth_date", "birth_date_from", "birth_date_to")(bounded)

    def to_query(self) -> SearchQuery:
        """The engine's query."""
        system = value = None
        if self.nhs_number:
            system, value = "nhs", self.nhs_number
        elif self.upn:
            system, value = "upn", self.upn
        elif self.local_id:
            name, sep, val = self.local_id.partition(":")
            if not sep or not name or not val:
                raise CriteriaError(
                    "local_id must look like 'mosaic:12345' (system, colon, value)", field="local_id"
                )
            system, value = f"local:{name}", val
        return SearchQuery(
            given=self.given,
            family=self.family,
            birth_date=self.birth_date,
            birth_date_from=self.birth_date_from,
            birth_date_to=self.birth_date_to,
            sex=self.sex,
            postcode=self.postcode,
            identifier_system=system,
            identifier_value=value,
            limit=self.limit,
        )


class Involved(BaseModel):
    """At a glance: is a CAF open, who is Lead Professional, how many services are involved."""

    caf_status: str | None
    caf_holder: str | None
    lead_professional: str | None
    lead_professional_phone: str | None
    services_involved: int | None
    highest_level_of_need: int | None
    ask: str | None = None


class SearchHit(BaseModel):
    """One ranked match."""

    child_id: uuid.UUID
    score: float
    grade: Literal["certain", "probable", "possible"]
    agreed: list[str]
    explanation: str
    name: str
    date_of_birth: date | None
    expected_delivery_date: date | None
    age_years: int | None
    sex: str
    shielded: bool
    postcode_district: str | None
    involvement: Involved


class SearchResponse(BaseModel):
    """The ranked hits (at most 10) and what was searched."""

    hits: list[SearchHit]
    total: int
    fingerprint: str
    advice: str | None = None


def _withheld(engine: Engine, glance: Glance, fallback: str, *, shown: bool, why: str) -> Involved:
    """A summary that names nobody and says whom to ask (`why` names it): the services involved
    are shown as counts only when `shown`."""
    with read_only(engine) as session:
        child = repo.get(session, Child, glance.child_id)
        ask = ask_contact(session, child, Contact(name=fallback)).name
    return Involved(
        caf_status=glance.caf_status,
        caf_holder=None,
        lead_professional=None,
        lead_professional_phone=None,
        services_involved=glance.services_involved if shown else None,
        highest_level_of_need=glance.highest_level_of_need if shown else None,
        ask=why.format(ask=ask),
    )


def _summary(engine: Engine, actor: Actor, glance: Glance, fallback: str) -> Involved:
    if glance.shielded and actor.role not in SHIELD_VIEWERS:
        why = "This record is shielded: ask {ask} to broker contact."
        return _withheld(engine, glance, fallback, shown=False, why=why)
    holder, lead = glance.caf_holder, glance.lead
    if any(c is not None and not _may_see(actor, c) for c in (holder, lead)):
        # Whoever holds the CAF or leads works in a sensitive service: that they do would say so.
        why = "A CAF is open: ask {ask} to put you in touch with whoever holds it."
        return _withheld(engine, glance, fallback, shown=True, why=why)
    return Involved(
        caf_status=glance.caf_status,
        caf_holder=f"{holder.name}, {holder.organisation}" if holder else None,
        lead_professional=f"{lead.name}, {lead.organisation}" if lead else None,
        lead_professional_phone=lead.phone if lead else None,
        services_involved=glance.services_involved,
        highest_level_of_need=glance.highest_level_of_need,
    )


def _may_see(actor: Actor, contact: Contactable) -> bool:
    if not contact.sensitive or contact.practitioner_id is None:
        return True
    return may_see_practitioner(actor, contact.practitioner_id, {contact.practitioner_id})


def _reach(engine: Engine, actor: Actor) -> frozenset[uuid.UUID] | None:
    """The localities whose children this actor may find (directory.reach); None: every one."""
    if not restricts(actor, writing=False):
        return None
    with read_only(engine) as session:
        return reach_filter(session, actor)


def _hits(
    engine: Engine, *, actor: Actor, matches: Sequence[Match], fallback_team: str
) -> tuple[list[SearchHit], int]:
    """The hits as this actor may see them, with their involvement summaries (two queries in all), and
    how many matching children live outside the localities the actor's grant restricts them to."""
    reach = _reach(engine, actor)
    with driver_reader(engine) as conn:
        glances = at_a_glance(conn, [uuid.UUID(hex=m.child_id) for m in matches])
    today = date.today()
    hits: list[SearchHit] = []
    outside = 0
    for match in matches:
        glance = glances.get(uuid.UUID(hex=match.child_id))
        if glance is None or glance.status != "active":
            continue  # the index is behind the database; the database wins
        if reach is not None and glance.locality_id not in reach:
            outside += 1
            continue
        entitled = not glance.shielded or actor.role in SHIELD_VIEWERS
        born = glance.date_of_birth
        hits.append(
            SearchHit(
                child_id=glance.child_id,
                score=round(match.score, 4),
                grade=match.grade,
                agreed=list(match.agreed),
                explanation=match.explanation,
                name=" ".join(glance.name) if glance.name else "",
                date_of_birth=born,
                expected_delivery_date=glance.expected_delivery_date,
                age_years=age_on(born, today) if born else None,
                sex=glance.sex,
                shielded=glance.shielded,
                postcode_district=glance.postcode.split(" ")[0] if glance.postcode and entitled else None,
                involvement=_summary(engine, actor, glance, fallback_team),
            )
        )
    return hits, outside


@dataclass(frozen=True)
class Found:
    """A search's answer and the audit event to make durable before it is given."""

    response: SearchResponse
    event: dict[str, Any]


def find(
    engine: Engine, *, actor: Actor, criteria: SearchCriteria, matcher: MatchingEngine, fallback_team: str
) -> Found:
    """Validate, match and summarise one search; the audit event (fingerprint and returned children,
    not the query) is the caller's to record before answering. Counted by outcome (found, none,
    too-many, refused) for the operations metrics (directory/observe.py)."""
    try:
        result = matcher.search(_query(actor, criteria))
        return _counted(_answer(engine, actor=actor, result=result, fallback_team=fallback_team))
    except DomainError:
        observer().count("search", "refused")
        raise


async def afind(
    engine: Engine, *, actor: Actor, criteria: SearchCriteria, matcher: MatchingEngine, fallback_team: str
) -> Found:
    """`find` on the event loop, awaiting the backend's reads (search.port.AsyncReads:
    Elasticsearch): the summaries' reads run on the loop, as they do for the resident index."""
    try:
        result = await matcher.asearch(_query(actor, criteria))
        return _counted(_answer(engine, actor=actor, result=result, fallback_team=fallback_team))
    except DomainError:
        observer().count("search", "refused")
        raise


def _counted(found: Found) -> Found:
    outcome = found.event["outcome"]
    if outcome == "success":
        outcome = "found" if found.event["children"] else "none"
    observer().count("search", outcome)
    return found


def _query(actor: Actor, criteria: SearchCriteria) -> SearchQuery:
    """The query to match, once this actor may search with these criteria (else a DomainError)."""
    if actor.purpose is None:
        raise InvalidInput("Say why you are searching: give a purpose of use (X-Purpose-Of-Use).")
    if actor.role in (Role.AUDITOR,) and actor.purpose != Purpose.AUDIT:
        # An auditor finds a child only to read the audit log about them (the audit pages, issue
        # #20); the search routes and pages are not theirs (their policies leave auditors out).
        raise NotAllowed("Auditors review the audit log; they do not search the directory.")
    try:
        query = criteria.to_query()
        validate_criteria(query)
    except CriteriaError as exc:
        raise InvalidInput(exc.message, field=exc.field) from None
    return query


def _answer(engine: Engine, *, actor: Actor, result: SearchResult, fallback_team: str) -> Found:
    """The answer to a matched query, as this actor may see it, and its audit event."""
    if result.too_many:
        return Found(
            SearchResponse(
                hits=[],
                total=0,
                fingerprint=result.fingerprint,
                advice="Too many children match these details: add more detail, for example "
                "a given name, the exact date of birth, a postcode or an NHS number.",
            ),
            {
                "actor": actor,
                "action": "search",
                "outcome": "too-many",
                "detail": {"fingerprint": result.fingerprint},
            },
        )
    # Read on a connection of its own (autocommit on SQLite): a search never holds the write lock.
    hits, outside = _hits(engine, actor=actor, matches=result.matches, fallback_team=fallback_team)
    advice = (
        None
        if hits
        else (
            "No child matches. Check the spelling and the date of birth, try a previous "
            "surname or a date range; if the child is new to the area, no one may be "
            "involved yet."
        )
    )
    if outside:
        # Which ones, or how many, would say where they live: only that there are some.
        advice = (
            f"{advice + ' ' if advice else ''}Children living outside the localities your access covers "
            f"are not shown, and some match. Ask {fallback_team} to look for you."
        )
    return Found(
        SearchResponse(hits=hits, total=len(hits), fingerprint=result.fingerprint, advice=advice),
        {
            "actor": actor,
            "action": "search",
            "outcome": "success",
            "detail": {"fingerprint": result.fingerprint, "returned": len(hits)},
            "children": [h.child_id for h in hits],
        },
    )


def run_search(
    session: Session, *, actor: Actor, criteria: SearchCriteria, matcher: MatchingEngine, fallback_team: str
) -> SearchResponse:
    """Validate, match, summarise and audit one search; answers once the audit is durable."""
    bind = session.get_bind()
    assert isinstance(bind, Engine)
    found = find(bind, actor=actor, criteria=criteria, matcher=matcher, fallback_team=fallback_team)
    audit.record(session, **found.event)
    return found.response


async def answer_search(request: Request, actor: Actor, criteria: SearchCriteria) -> Response:
    """The routes' search, then the wait for its audit on the event loop.

    With the index in this process's memory, a search is well under a millisecond of CPU and a few
    indexed reads (the hits' summaries): it runs on the event loop, since handing it to a worker
    thread and back costs about as much again under load and buys nothing under the GIL. With
    Elasticsearch the node's requests are awaited on the loop (search.port.AsyncReads) and the rest
    of the search runs there too: in a worker thread, every read handed the interpreter lock to the
    loop and waited to get it back (at 200/s, flat out 241 against 385 searches/s with the node
    sharing the cores; docs/elasticsearch.md). A search that does blocking I/O (SQL while the resident
    copy loads) runs in a thread of the search lane (directory/http/lanes.py).
    The audit goes through the group commit and the answer waits until it is durable, but nothing
    blocks meanwhile: the next search runs while earlier commits are on their way to disk.
    A search writes nothing but its audit, so it opens no unit of work; a refusal (no purpose,
    too little to search on) is audited here, as the unit of work audits other routes' refusals.
    The answer is serialised here, once: it is built from validated models, so the route's
    response model is for the OpenAPI document, not checked a second time.
    """
    state = request.app.state
    engine: Engine = state.engine
    matcher: MatchingEngine = state.search_engine
    fallback_team = practice(request).fallback_team.name
    try:
        if matcher.backend.in_memory:
            found = find(engine, actor=actor, criteria=criteria, matcher=matcher, fallback_team=fallback_team)
        elif isinstance(matcher.backend, AsyncReads):
            found = await afind(
                engine, actor=actor, criteria=criteria, matcher=matcher, fallback_team=fallback_team
            )
        else:
            work = partial(
                find, engine, actor=actor, criteria=criteria, matcher=matcher, fallback_team=fallback_team
            )
            found = await in_search_lane(work)
    except DomainError as exc:
        await anyio.to_thread.run_sync(audit_refusal, request, exc)
        raise
    await count_looks(request, actor, found.event.get("children", ()))  # each hit shown is a look
    written = audit.submit(engine, **found.event)
    body = found.response.model_dump_json()  # while the audit is on its way to disk
    await asyncio.wrap_future(written)
    return Response(body, media_type="application/json")


@router.post("/children/search", response_model=SearchResponse)
async def search_children(criteria: SearchCriteria, request: Request, actor: CurrentActor) -> Response:
    """Find a child by what you know (preferred: keeps personal details out of URLs). Audited."""
    return await answer_search(request, actor, criteria)


@router.get("/children/search", response_model=SearchResponse)
async def search_children_get(
    criteria: Annotated[SearchCriteria, Query()], request: Request, actor: CurrentActor
) -> Response:
    """The same search with query parameters, for simple clients. Prefer POST: URLs get logged."""
    return await answer_search(request, actor, criteria)
