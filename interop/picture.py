"""A child's whole picture as one caller may see it, as FHIR resources.

The visibility rules are the app API's: the card from directory.service.build_card decides
what is shown (shielding, sensitive involvements, withdrawn consent); this module only adds
the ids and versions FHIR needs for what the card already shows.

`Pictures` keeps the pictures one request has built (a Bundle's entries, a search's page), so
a child's card is built once per request, and again only after a change to that child.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from directory import repository as repo
from directory import service
from directory.errors import NotFound
from directory.models import (
    Actor,
    Assessment,
    Child,
    ChildCard,
    Contact,
    Involvement,
    Organisation,
    Practitioner,
    Service,
    Tac,
    utcnow,
)
from directory.plan_repository import actions_of, reviews_of
from directory.service import plan
from interop import mapping as m


@dataclass
class Picture:
    """The FHIR resources of one child, keyed by type then id."""

    child: Child
    card: ChildCard
    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def of(self, kind: str) -> list[dict[str, Any]]:
        """The resources of one type."""
        return list(self.resources.get(kind, {}).values())

    def get(self, kind: str, id_: str) -> dict[str, Any] | None:
        """One resource, if the caller may see it."""
        return self.resources.get(kind, {}).get(id_)


def episode_row(
    inv: Involvement, svc: Service, org: Organisation, practitioner: Practitioner | None
) -> m.EpisodeRow:
    """The mapper's view of an involvement and its service, organisation and practitioner."""
    return m.EpisodeRow(
        id=inv.id,
        child_id=inv.child_id,
        service_id=svc.id,
        service_name=svc.name,
        service_type=svc.service_type,
        organisation_id=org.id,
        organisation_name=org.name,
        practitioner_id=practitioner.id if practitioner else None,
        practitioner_name=practitioner.name if practitioner else None,
        role=inv.role,
        level_of_need=inv.level_of_need,
        start_date=inv.start_date,
        end_date=inv.end_date,
        status=inv.status,
        sensitive=inv.sensitive,
        consent_id=inv.consent_id,
        source=inv.source,
        last_confirmed_at=inv.last_confirmed_at,
        version=inv.version,
        updated_at=inv.updated_at,
    )


def visible_involvements(
    session: Session, actor: Actor, card: ChildCard
) -> list[tuple[Involvement, Service, Organisation, Practitioner | None]]:
    """The child's involvements, ended ones included, that the card's rules let this actor see (a
    practitioner who works in a sensitive service is left out of the others, as the card leaves them)."""
    if card.shield_notice is not None:
        return []
    rows = repo.involvements_with_service(session, card.id, include_ended=True)
    sensitive = repo.sensitive_practitioners(session, [p.id for *_, p, _ in rows if p is not None])
    out = []
    for inv, svc, org, practitioner, consent in rows:
        if inv.sensitive and not service.may_see_sensitive(actor, inv, consent):
            continue
        if practitioner is not None and not service.may_see_practitioner(actor, practitioner.id, sensitive):
            practitioner = None
        out.append((inv, svc, org, practitioner))
    return out


def care_team_version(session: Session, tac: Tac) -> tuple[int, datetime]:
    """A CareTeam's version and last change: TAC version + CAF version (a Lead Professional hand-over
    moves the CAF), and the later of the two changes."""
    caf = session.get(Assessment, tac.assessment_id)
    if caf is None:
        return tac.version, tac.updated_at
    return tac.version + caf.version, max(tac.updated_at, caf.updated_at)


def care_plan_of(session: Session, actor: Actor, tac: Tac) -> dict[str, Any]:
    """A TAC's plan as a CarePlan, its actions' owners shown as the card shows practitioners."""
    shown = plan.actions_shown(session, actor, actions_of(session, tac.id), utcnow().date())
    rows = [
        m.PlanActivity(
            id=a.id,
            title=a.title,
            area=a.area,
            status=a.status,
            due_date=a.due_date,
            owner=a.owner,
            owner_id=a.owner_practitioner_id,
            owner_name=a.owner_contact.name if a.owner_contact else None,
        )
        for a in shown
    ]
    return m.care_plan(tac, rows, reviews_of(session, tac.id))


def build(session: Session, *, actor: Actor, child: Child, card: ChildCard) -> Picture:
    """Every resource of a child the card lets this actor see."""
    pic = Picture(child=child, card=card)

    def put(res: dict[str, Any]) -> None:
        pic.resources.setdefault(res["resourceType"], {})[res["id"]] = res

    put(
        m.patient(
            card,
            m.PatientExtras(
                version=child.version,
                updated_at=child.updated_at,
                gp_practice_id=child.gp_practice_id,
                merged_into_id=child.merged_into_id,
            ),
        )
    )
    for person in card.related_people:
        put(m.related_person(person, child.id, updated=child.updated_at))
    for row in visible_involvements(session, actor, card):
        put(m.episode_of_care(episode_row(*row)))
    holder_id = caf_version = caf_updated = None
    if card.caf is not None:
        caf = session.get(Assessment, card.caf.id)
        caf_version, caf_updated = (caf.version, caf.updated_at) if caf else (None, None)
        if caf is not None and card.caf.holder is not None:
            holder_id = caf.lead_practitioner_id or caf.initiator_id
    for flag in m.flags(card, caf_holder_id=holder_id, caf_version=caf_version, caf_updated=caf_updated):
        put(flag)
    if card.tac is not None:
        tac = session.get(Tac, card.tac.id)
        if tac is not None:
            members = [
                m.TeamMember(x.practitioner_id, x.contact.name, x.role, x.contact.organisation)
                for x in card.tac.members
            ]
            lead = card.lead_professional.practitioner_id if card.lead_professional else None
            version, updated = care_team_version(session, tac)
            core = card.tac.core_group
            put(
                m.care_team(
                    tac, members, lead_practitioner_id=lead, version=version, updated=updated, core_group=core
                )
            )
            put(care_plan_of(session, actor, tac))
    for c in card.consents:
        put(m.consent(c, child.id))
    return pic


def for_child(
    session: Session, *, actor: Actor, child_id: uuid.UUID, now: datetime, fallback: Contact, audited: bool
) -> Picture:
    """The picture of one child: audited as a read of the record (service.read_card) or, for searches, not."""
    if audited:
        card = service.read_card(session, actor=actor, child_id=child_id, now=now, fallback_team=fallback)
        child = session.get(Child, child_id)
        assert child is not None
    else:
        child = session.get(Child, child_id)
        if child is None:
            raise NotFound("No child record has that id.")
        card = service.build_card(session, actor=actor, child=child, now=now, fallback_team=fallback)
    return build(session, actor=actor, child=child, card=card)


class Pictures:
    """The pictures of the children one request looks at, as its caller may see them, unaudited (the
    caller audits what it shows): searches and writes; an audited read builds its own.

    Each child's is built once and kept. A write that changes a child forgets its picture (`forget`),
    or every picture (`clear`) when the change shows in many (a practitioner's name, say), so that
    what comes back after a change is built afresh, exactly as if nothing were kept.
    """

    def __init__(self, session: Session, *, actor: Actor, fallback: Contact) -> None:
        self._session = session
        # An override of a shield is for one viewing of one record (a read), never for a search or a
        # write, so it is dropped here.
        self._actor = actor.model_copy(update={"shield_override_reason": None})
        self._fallback = fallback
        self._kept: dict[uuid.UUID, Picture] = {}

    def of(self, child_id: uuid.UUID) -> Picture:
        """A child's picture: the one built earlier in this request unless a change since forgot it."""
        pic = self._kept.get(child_id)
        if pic is None:
            pic = for_child(
                self._session,
                actor=self._actor,
                child_id=child_id,
                now=utcnow(),
                fallback=self._fallback,
                audited=False,
            )
            self._kept[child_id] = pic
        return pic

    def forget(self, child_id: uuid.UUID) -> None:
        """Drop a child's picture: something it shows has changed."""
        self._kept.pop(child_id, None)

    def clear(self) -> None:
        """Drop every picture: a change that many children's pictures show, or one not known."""
        self._kept.clear()
