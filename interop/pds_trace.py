"""Tracing a child without an NHS number through the demographics service, for an admin to confirm.

`trace_child` searches the service with the record's own current details (official name, date of
birth, postcode, sex) and offers what it found; it never writes but its audit event. `confirm_trace`
traces again and, when the service still offers the NHS number the admin confirms, adds it through
the one change rule (`service.change_child`, source `pds`): versioned, audited, refused when another
record holds the number (the refusal names nothing of that record).

Who: whoever may change the record's NHS number (`require_details_change`; the routes and the
command are for directory admins). A shielded child may be traced (the number is not a locating
detail, and a shielded child needs one as much as any other), but the candidate's address, postcode
and GP are withheld from anyone who may not see the shielded child's location, and so is which of
them differs from the record. Audit events hold the record id and codes only (result, a score band).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

from sqlmodel import Session

from directory import audit, service
from directory import repository as drepo
from directory.errors import Conflict, InvalidInput, RuleBroken
from directory.identifiers import NHS_NUMBER_SYSTEM, normalise_nhs_number
from directory.models import Actor, Child, IdentifierIn
from directory.models.details import ChildChange
from directory.permissions import may_see_shielded
from directory.service.access import require_details_change
from directory.service.common import active_child
from interop.pds import Demographics, PdsClient, PdsError, Trace, TraceQuery, differences

CONFIDENT_SCORE = 0.9
"""A single match scoring below this is offered as not confident: the admin may still confirm it
after checking, but `childindex pds trace --yes` does not accept it."""


@dataclass(frozen=True)
class TraceCandidate:
    """The person the service offers for a record (location withheld for a shielded child)."""

    nhs_number: str
    score: float | None
    confident: bool
    given: list[str]
    family: str | None
    birth_date: date | None
    sex: str
    postcode: str | None
    gp_ods_code: str | None
    location_withheld: bool
    differences: list[str] = field(default_factory=list)  # field names where the record differs


@dataclass(frozen=True)
class Traced:
    """What a trace of one record found: match | not-confident | none | too-many."""

    child_id: uuid.UUID
    result: str
    candidate: TraceCandidate | None = None


def _changeable(session: Session, actor: Actor, child_id: uuid.UUID) -> Child:
    """The record, when this actor may change its NHS number (else unknown id, or not allowed)."""
    child = active_child(session, child_id, actor=actor)
    require_details_change(session, actor, child, ["nhs number"])
    return child


def _held(session: Session, child_id: uuid.UUID) -> list[str]:
    return [i.value for i in drepo.child_identifiers(session, child_id) if i.system == NHS_NUMBER_SYSTEM]


def _query(session: Session, child: Child) -> TraceQuery:
    """The record's own current details, as the service searches by them."""
    official = next(
        (n for n in drepo.child_names(session, child.id) if n.use == "official" and n.until is None), None
    )
    if official is None or child.date_of_birth is None:
        raise RuleBroken(
            "A trace needs the child's official name and date of birth; this record lacks one of them."
        )
    address = drepo.current_address(session, child.id)
    return TraceQuery(
        family=official.family,
        given=official.given,
        birth_date=child.date_of_birth,
        postcode=address.postcode if address else None,
        sex=child.sex,
    )


def _candidate(query: TraceQuery, trace: Trace, *, sees_location: bool) -> TraceCandidate:
    demo: Demographics | None = trace.demographics
    assert demo is not None
    differ = differences(
        demo, family=query.family, given=query.given, birth_date=query.birth_date, postcode=query.postcode
    )
    withheld = not sees_location
    return TraceCandidate(
        nhs_number=demo.nhs_number,
        score=trace.score,
        confident=trace.score is not None and trace.score >= CONFIDENT_SCORE,
        given=demo.given,
        family=demo.family,
        birth_date=demo.birth_date,
        sex=demo.sex,
        postcode=None if withheld else demo.postcode,
        gp_ods_code=None if withheld else demo.gp_ods_code,
        location_withheld=withheld or demo.restricted,
        differences=[d for d in differ if not (withheld and d == "postcode")],
    )


def _score_band(score: float | None) -> str:
    if score is None:
        return "none"
    return "confident" if score >= CONFIDENT_SCORE else "low"


def trace_child(session: Session, client: PdsClient, *, actor: Actor, child_id: uuid.UUID) -> Traced:
    """Search the service for a record that holds no NHS number; write nothing but the audit event
    (`child.nhs-number.trace`, its result; outcome `error` and the reason when the service fails,
    then PdsError is raised for the caller to answer 503)."""
    child = _untraced(session, actor, child_id)
    traced = _ask(session, client, actor, child)
    _audit(session, actor, child.id, _detail(traced))
    return traced


def confirm_trace(
    session: Session,
    client: PdsClient,
    *,
    actor: Actor,
    child_id: uuid.UUID,
    nhs_number: str,
    today: date,
    expected_version: int | None = None,
) -> list[str]:
    """Add the NHS number a trace offered, once the service still offers it for the record's current
    details (traced again: a number typed or edited in between is refused). Returns the fields changed
    (none when the record holds the number already: a second click, a retried request).

    The service is asked holding no lock; then the record is locked and looked at again (a confirm
    that ran meanwhile has added the number, or another one), and the change and the audit events
    are written in the order every change takes (the record, then the audit chain)."""
    wanted = normalise_nhs_number(nhs_number)
    if not wanted.isdigit() or len(wanted) != 10:
        raise InvalidInput("An NHS number is ten digits.")
    child = _changeable(session, actor, child_id)
    if _already(session, child.id, wanted):
        return []
    traced = _ask(session, client, actor, child)
    active_child(session, child_id, for_update=True, actor=actor)
    if _already(session, child_id, wanted):
        changed: list[str] = []
    else:
        if traced.candidate is None or traced.candidate.nhs_number != wanted:
            raise Conflict(
                "The demographics service does not offer this NHS number for this record's current "
                "details; trace it again."
            )
        changed = service.change_child(
            session,
            actor=actor,
            child_id=child_id,
            change=ChildChange(identifiers=[IdentifierIn(system=NHS_NUMBER_SYSTEM, value=wanted)]),
            today=today,
            source="pds",
            expected_version=expected_version,
        )
    _audit(session, actor, child.id, _detail(traced))
    return changed


def _untraced(session: Session, actor: Actor, child_id: uuid.UUID) -> Child:
    """The record, when this actor may change its NHS number and it holds none."""
    child = _changeable(session, actor, child_id)
    _already(session, child.id, None)
    return child


def _already(session: Session, child_id: uuid.UUID, wanted: str | None) -> bool:
    """True when the record holds `wanted` (and only it); RuleBroken when it holds another number."""
    held = _held(session, child_id)
    if held and held != [wanted]:
        raise RuleBroken(
            "This record already holds an NHS number: check it with the service instead "
            "(`childindex pds verify`)."
        )
    return bool(held)


def _ask(session: Session, client: PdsClient, actor: Actor, child: Child) -> Traced:
    """Ask the service (no lock held); its failure is audited (outcome `error`) and raised."""
    query = _query(session, child)
    try:
        trace = client.trace(query)
    except PdsError as exc:
        _audit(session, actor, child.id, {"result": exc.code}, outcome="error")
        raise
    if trace.outcome != "match":
        return Traced(child.id, trace.outcome)
    candidate = _candidate(query, trace, sees_location=may_see_shielded(child, actor))
    return Traced(child.id, "match" if candidate.confident else "not-confident", candidate)


def _detail(traced: Traced) -> dict[str, str]:
    score = traced.candidate.score if traced.candidate else None
    return {"result": traced.result, "score": _score_band(score)}


def _audit(
    session: Session, actor: Actor, child_id: uuid.UUID, detail: dict[str, str], *, outcome: str = "success"
) -> None:
    audit.append(
        session,
        actor=actor,
        action="child.nhs-number.trace",
        outcome=outcome,
        target_type="child",
        target_id=child_id,
        detail=detail,
    )
