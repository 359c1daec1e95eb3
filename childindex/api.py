"""The practitioner's JSON API under /api/v1: the involvement card and the actions on it."""

from __future__ import annotations

import uuid
from datetime import date

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from childindex.details_api import etag
from childindex.records_api import merged_redirect
from directory import notices, service
from directory import repository as repo
from directory.http.config import PracticeDep
from directory.http.deps import CurrentActor, SessionDep, UnitOfWorkRoute
from directory.models import (
    AccessLogEntry,
    CafClose,
    CafComplete,
    CafSignal,
    CafStart,
    Child,
    ChildCard,
    ChildCreate,
    ChildRef,
    ConsentCreate,
    ConsentWithdraw,
    InvolvementCreate,
    InvolvementEnd,
    LocalityRead,
    NoticeRead,
    PractitionerRead,
    ServiceRead,
    ShieldClear,
    ShieldSet,
    TacConvene,
    TacUpdate,
    utcnow,
)

router = APIRouter(prefix="/api/v1", route_class=UnitOfWorkRoute)


class Created(BaseModel):
    """The id and version of what was created or changed."""

    id: uuid.UUID
    child_id: uuid.UUID
    status: str | None = None
    version: int | None = None


@router.post("/children", status_code=status.HTTP_201_CREATED, response_model=ChildRef, tags=["children"])
def create_child(data: ChildCreate, session: SessionDep, actor: CurrentActor) -> ChildRef:
    """Record a child, or an unborn child by expected date of delivery."""
    child = service.create_child(session, actor=actor, data=data, today=date.today())
    return service.child_ref(child)


@router.get(
    "/children/{child_id}",
    response_model=ChildCard,
    tags=["children"],
    responses={301: {"description": "The record was merged: Location is the record kept"}},
)
def read_child(
    child_id: uuid.UUID, session: SessionDep, actor: CurrentActor, practice: PracticeDep, response: Response
) -> ChildCard | Response:
    """The involvement card: who is involved, CAF status and holder, Lead Professional, TAC. Audited.
    Its ETag names the record's version (send it as If-Match to change the child's details); a
    merged record's id answers 301 to the record kept."""
    kept = service.resolve_merged(session, child_id)
    if kept is not None:
        return merged_redirect(session, actor=actor, child_id=child_id, kept_id=kept)
    card = service.read_card(
        session, actor=actor, child_id=child_id, now=utcnow(), fallback_team=practice.fallback_team
    )
    response.headers["ETag"] = etag(repo.get(session, Child, child_id).version)
    return card


@router.get("/children/{child_id}/access-log", response_model=list[AccessLogEntry], tags=["audit"])
def child_access_log(child_id: uuid.UUID, session: SessionDep, actor: CurrentActor) -> list[AccessLogEntry]:
    """Who has looked at this child's record (auditors, admins, designated practitioners)."""
    return service.access_log(session, actor=actor, child_id=child_id)


@router.post("/children/{child_id}/shielding", response_model=ChildRef, tags=["children"])
def shield_child(child_id: uuid.UUID, data: ShieldSet, session: SessionDep, actor: CurrentActor) -> ChildRef:
    """Shield a child's location and contacts, with the reason."""
    return service.child_ref(service.set_shield(session, actor=actor, child_id=child_id, data=data))


@router.delete("/children/{child_id}/shielding", response_model=ChildRef, tags=["children"])
def unshield_child(
    child_id: uuid.UUID, session: SessionDep, actor: CurrentActor, data: ShieldClear | None = None
) -> ChildRef:
    """Lift the shield from a child's record; an optional body gives the reason (kept in the audit)."""
    return service.child_ref(service.clear_shield(session, actor=actor, child_id=child_id, data=data))


@router.post(
    "/children/{child_id}/involvements", status_code=201, response_model=Created, tags=["involvements"]
)
def record_involvement(
    child_id: uuid.UUID, data: InvolvementCreate, session: SessionDep, actor: CurrentActor
) -> Created:
    """Record that a service is working with the child (sensitive ones need a covering consent)."""
    inv = service.record_involvement(session, actor=actor, child_id=child_id, data=data)
    return Created(id=inv.id, child_id=inv.child_id, status=inv.status, version=inv.version)


@router.post("/involvements/{involvement_id}/end", response_model=Created, tags=["involvements"])
def end_involvement(
    involvement_id: uuid.UUID, data: InvolvementEnd, session: SessionDep, actor: CurrentActor
) -> Created:
    """End an involvement."""
    inv = service.end_involvement(session, actor=actor, involvement_id=involvement_id, data=data)
    return Created(id=inv.id, child_id=inv.child_id, status=inv.status, version=inv.version)


@router.post("/involvements/{involvement_id}/confirm", response_model=Created, tags=["involvements"])
def confirm_involvement(involvement_id: uuid.UUID, session: SessionDep, actor: CurrentActor) -> Created:
    """Confirm an involvement is still current."""
    inv = service.confirm_involvement(session, actor=actor, involvement_id=involvement_id)
    return Created(id=inv.id, child_id=inv.child_id, status=inv.status, version=inv.version)


@router.post("/children/{child_id}/consents", status_code=201, response_model=Created, tags=["consent"])
def record_consent(
    child_id: uuid.UUID, data: ConsentCreate, session: SessionDep, actor: CurrentActor
) -> Created:
    """Record a consent from a parent/carer or a competent young person."""
    consent = service.record_consent(session, actor=actor, child_id=child_id, data=data)
    return Created(id=consent.id, child_id=consent.child_id, status="current")


@router.post("/consents/{consent_id}/withdraw", response_model=Created, tags=["consent"])
def withdraw_consent(
    consent_id: uuid.UUID, data: ConsentWithdraw, session: SessionDep, actor: CurrentActor
) -> Created:
    """Withdraw a consent; what it covered is hidden at once."""
    consent = service.withdraw_consent(session, actor=actor, consent_id=consent_id, data=data)
    return Created(id=consent.id, child_id=consent.child_id, status="withdrawn")


@router.post("/children/{child_id}/caf", status_code=201, response_model=Created, tags=["caf"])
def signal_caf(
    child_id: uuid.UUID, data: CafSignal, session: SessionDep, actor: CurrentActor, practice: PracticeDep
) -> Created:
    """Signal the intent to start a CAF. 409 names who holds the open one and how to reach them."""
    caf = service.signal_caf(
        session,
        actor=actor,
        child_id=child_id,
        data=data,
        signal_days=practice.signal_expiry_days,
        now=utcnow(),
    )
    return Created(id=caf.id, child_id=caf.child_id, status=caf.status, version=caf.version)


@router.post("/cafs/{caf_id}/start", response_model=Created, tags=["caf"])
def start_caf(caf_id: uuid.UUID, data: CafStart, session: SessionDep, actor: CurrentActor) -> Created:
    """Start a signalled CAF with a recorded consent."""
    caf = service.start_caf(session, actor=actor, caf_id=caf_id, data=data, now=utcnow())
    return Created(id=caf.id, child_id=caf.child_id, status=caf.status, version=caf.version)


@router.post("/cafs/{caf_id}/complete", response_model=Created, tags=["caf"])
def complete_caf(caf_id: uuid.UUID, data: CafComplete, session: SessionDep, actor: CurrentActor) -> Created:
    """Record the assessment's outcome; the CAF stays open until closed."""
    caf = service.complete_caf(session, actor=actor, caf_id=caf_id, data=data, now=utcnow())
    return Created(id=caf.id, child_id=caf.child_id, status=caf.status, version=caf.version)


@router.post("/cafs/{caf_id}/close", response_model=Created, tags=["caf"])
def close_caf(caf_id: uuid.UUID, data: CafClose, session: SessionDep, actor: CurrentActor) -> Created:
    """Close a CAF (a signal that never started is withdrawn)."""
    caf = service.close_caf(session, actor=actor, caf_id=caf_id, data=data, now=utcnow())
    return Created(id=caf.id, child_id=caf.child_id, status=caf.status, version=caf.version)


@router.post("/cafs/{caf_id}/tac", response_model=Created, tags=["tac"])
def update_tac(caf_id: uuid.UUID, data: TacUpdate, session: SessionDep, actor: CurrentActor) -> Created:
    """Form the TAC of a CAF or change its members and next review date."""
    tac = service.update_tac(session, actor=actor, caf_id=caf_id, data=data, now=utcnow())
    return Created(id=tac.id, child_id=tac.child_id, status=tac.status, version=tac.version)


@router.post("/tacs/{tac_id}/convene", response_model=Created, tags=["tac"])
def convene_tac(tac_id: uuid.UUID, data: TacConvene, session: SessionDep, actor: CurrentActor) -> Created:
    """Mark a TAC convened (it needs more than two practitioners)."""
    tac = service.convene_tac(session, actor=actor, tac_id=tac_id, data=data, now=utcnow())
    return Created(id=tac.id, child_id=tac.child_id, status=tac.status, version=tac.version)


@router.get("/services", response_model=list[ServiceRead], tags=["catalogue"])
def list_services(
    session: SessionDep, actor: CurrentActor, service_type: str | None = None
) -> list[ServiceRead]:
    """The service catalogue."""
    return [ServiceRead.model_validate(s) for s in repo.services(session, service_type=service_type)]


@router.get("/practitioners", response_model=list[PractitionerRead], tags=["catalogue"])
def list_practitioners(
    session: SessionDep, actor: CurrentActor, organisation_id: uuid.UUID | None = None
) -> list[PractitionerRead]:
    """Practitioners, optionally of one organisation."""
    return [
        PractitionerRead.model_validate(p)
        for p in repo.practitioners(session, organisation_id=organisation_id)
    ]


@router.get("/localities", response_model=list[LocalityRead], tags=["catalogue"])
def list_localities(session: SessionDep, actor: CurrentActor) -> list[LocalityRead]:
    """Localities and their local delivery teams."""
    return [LocalityRead.model_validate(x) for x in repo.localities(session)]


@router.get("/notices", response_model=list[NoticeRead], tags=["notices"])
def list_notices(session: SessionDep, actor: CurrentActor, unread: bool = False) -> list[NoticeRead]:
    """Your notices: changes someone else made to a CAF you hold (newest first)."""
    return list(notices.my_notices(session, actor=actor, unread_only=unread))


@router.post("/notices/{notice_id}/read", response_model=NoticeRead, tags=["notices"])
def read_notice(notice_id: uuid.UUID, session: SessionDep, actor: CurrentActor) -> NoticeRead:
    """Mark one of your notices read."""
    return notices.mark_read(session, actor=actor, notice_id=notice_id, now=utcnow())
