"""Who may act, as whom, on which record, and what they may see of it: one set of rules that the app
API, the pages and FHIR all reach through the use cases in directory/service/.

- **Act as yourself.** A person acts as the practitioner their sign-in is linked to, never as one
  named in a request; a connected system may name only practitioners of its own organisation.
- **Act on what is yours.** A CAF, its TAC and its Lead Professional change only at the hands of its
  holders (the practitioner who signalled it and the current Lead Professional), members of its TAC,
  the child's local delivery team or a directory admin; anyone but a holder gives a reason, and the
  holders are told. An involvement is ended, changed or confirmed by that service's practitioners or
  the local delivery team; a consent is withdrawn by whoever recorded it or the local delivery team.
- **Sensitive means invisible.** A practitioner named on a sensitive involvement (a sexual health
  nurse, a substance misuse worker) is shown in a child's record, in search hits and in FHIR only to
  those who may see sensitive involvements, and to themselves.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel import Session, col, select

from directory import repository as repo
from directory.errors import InvalidInput, NotAllowed, NotFound
from directory.models import (
    Actor,
    Assessment,
    Child,
    Consent,
    ConsentScope,
    Contact,
    Involvement,
    Locality,
    Practitioner,
    Role,
    Service,
)

SHIELD_VIEWERS = frozenset({Role.DESIGNATED_PRACTITIONER})
SENSITIVE_VIEWERS = frozenset({Role.DESIGNATED_PRACTITIONER, Role.CHILD_PROTECTION})
LOCALITY_TEAM_ASK = Contact(name="the local delivery team", role="local delivery team")
"""Whom to ask when a child has no locality on record (the pages and API name the authority's own team)."""


# --------------------------------------------------------------------------- seeing


def may_see_shielded(child: Child, actor: Actor) -> bool:
    """Whether this actor sees a child's location, contacts and practitioners (always, unless shielded)."""
    return (
        not child.shielded
        or actor.role in SHIELD_VIEWERS
        or (actor.role == Role.CHILD_PROTECTION and bool(actor.shield_override_reason))
    )


def may_see_sensitive(actor: Actor, involvement: Involvement, consent: Consent | None) -> bool:
    """Whether this actor may see a sensitive involvement (the card's rule; FHIR and search reuse it)."""
    if consent is None or consent.withdrawn_at is not None:
        return False  # withdrawing consent hides it from everyone, at once
    if actor.role in SENSITIVE_VIEWERS:
        return True
    return actor.practitioner_id is not None and actor.practitioner_id == involvement.practitioner_id


def may_see_practitioner(actor: Actor, practitioner_id: uuid.UUID, sensitive: set[uuid.UUID]) -> bool:
    """Whether this actor may be shown that this practitioner works with a child (see the module doc)."""
    return (
        practitioner_id not in sensitive
        or actor.role in SENSITIVE_VIEWERS
        or actor.practitioner_id == practitioner_id
    )


def may_see_consent(actor: Actor, consent: Consent, covered: Iterable[Involvement]) -> bool:
    """A consent to a sensitive involvement names the kind of service in its scope: it is shown to those
    who may see sensitive involvements, to whoever recorded it, and to the practitioners of the
    involvements it covers while it stands."""
    if not consent.scope.startswith("sensitive") and consent.scope != ConsentScope.SENSITIVE_ALL.value:
        return True
    if actor.role in SENSITIVE_VIEWERS or consent.recorded_by == actor.subject:
        return True
    if consent.withdrawn_at is not None:
        return False
    return any(
        i.consent_id == consent.id
        and actor.practitioner_id is not None
        and i.practitioner_id == actor.practitioner_id
        for i in covered
    )


def ask_contact(session: Session, child: Child, fallback: Contact = LOCALITY_TEAM_ASK) -> Contact:
    """Whom to ask about what is withheld: the child's locality delivery team, else the fallback team."""
    locality = repo.get(session, Locality, child.locality_id) if child.locality_id else None
    if locality is None:
        return fallback
    return locality_team(locality)


def locality_team(locality: Locality) -> Contact:
    """A locality's delivery team as a contact."""
    return Contact(
        name=locality.team_name,
        role="local delivery team",
        organisation=locality.authority,
        phone=locality.team_phone,
        email=locality.team_email,
    )


def how_to_reach(contact: Contact) -> str:
    """' on <phone> or <email>' (or nothing)."""
    how = " or ".join(x for x in (contact.phone, contact.email) if x)
    return f" on {how}" if how else ""


# --------------------------------------------------------------------------- acting as yourself


def covers_child(session: Session, actor: Actor, child: Child) -> bool:
    """Whether the actor's grant covers the child's locality (a grant without localities covers all)."""
    if not actor.localities:
        return True
    code = repo.locality_code(session, child.locality_id)
    return code is not None and code in actor.localities


def is_locality_team(session: Session, actor: Actor, child: Child) -> bool:
    """The child's own local delivery team: that role, with a grant covering the child's locality."""
    return actor.role == Role.LOCAL_DELIVERY_TEAM and covers_child(session, actor, child)


def own_organisations(session: Session, actor: Actor) -> set[uuid.UUID]:
    """The organisations an actor belongs to: a person's practitioner record's; a system's, as its grant
    names it (by name, ODS code or URN)."""
    if actor.role == Role.SYSTEM:
        return set(repo.organisations_named(session, actor.organisation)) if actor.organisation else set()
    if actor.practitioner_id is None:
        return set()
    practitioner = repo.get(session, Practitioner, actor.practitioner_id)
    return {practitioner.organisation_id} if practitioner is not None else set()


def active_practitioner(session: Session, practitioner_id: uuid.UUID) -> Practitioner:
    """An active practitioner by id, or NotFound saying where to pick one."""
    practitioner = repo.get(session, Practitioner, practitioner_id)
    if practitioner is None or not practitioner.active:
        raise NotFound(
            "No active practitioner has that id; pick one from /api/v1/practitioners.",
            practitioner_id=str(practitioner_id),
        )
    return practitioner  # type: ignore[no-any-return]


NOT_LINKED = (
    "Your sign-in is not linked to a practitioner record, so the directory cannot show others how to "
    "reach you. Ask your directory administrator to link your account to your practitioner record."
)


def acting_practitioner(
    session: Session, actor: Actor, named: uuid.UUID | None, *, doing: str
) -> Practitioner:
    """The practitioner this actor acts as when `doing` something in their own name (signalling a CAF).

    A person is the practitioner of their sign-in: naming another is refused. A connected system
    names the practitioner, who must work for the system's own organisation.
    """
    if actor.role == Role.SYSTEM:
        if named is None:
            raise InvalidInput(
                f"A connected system {doing} on behalf of a practitioner of its own organisation: name them "
                "(practitioner_id, or Flag.author over FHIR)."
            )
        practitioner = active_practitioner(session, named)
        if practitioner.organisation_id not in own_organisations(session, actor):
            raise NotAllowed(
                f"A connected system {doing} only on behalf of its own organisation's practitioners "
                f"({actor.organisation or 'its access grant names no organisation'}); this practitioner "
                "works elsewhere.",
                practitioner_id=str(named),
            )
        return practitioner
    if actor.practitioner_id is None:
        raise NotAllowed(NOT_LINKED)
    if named is not None and named != actor.practitioner_id:
        raise NotAllowed(
            f"You {doing} as yourself: the practitioner is the one your sign-in is linked to. Leave "
            "practitioner_id out; to involve a colleague, ask them to do it, or add them to the Team "
            "Around the Child."
        )
    return active_practitioner(session, actor.practitioner_id)


def on_behalf(actor: Actor, practitioner: Practitioner) -> dict[str, str]:
    """The audit detail of a system acting for a practitioner (empty for a person acting as themselves)."""
    return {"on_behalf_of": practitioner.id.hex} if actor.role == Role.SYSTEM else {}


# --------------------------------------------------------------------------- CAFs: acting on what is yours


class Standing(enum.StrEnum):
    """What an actor is to a CAF, when they may change it."""

    HOLDER = "holder"  # the practitioner who signalled it, or the current Lead Professional
    TEAM = "team"  # a current member of its Team Around the Child
    LOCALITY = "locality"  # the child's local delivery team
    ADMIN = "admin"  # a directory admin covering the child's locality


@dataclass(frozen=True)
class CafParties:
    """The practitioners a CAF belongs to."""

    holders: tuple[uuid.UUID, ...]  # initiator first, then the current Lead Professional if another
    members: frozenset[uuid.UUID]


def caf_parties(session: Session, caf: Assessment) -> CafParties:
    """The holders (initiator and current Lead Professional) and TAC members of a CAF."""
    holders = [caf.initiator_id]
    lead = repo.current_lead(session, caf.child_id)
    lead_id = (
        lead.practitioner_id
        if lead is not None and lead.assessment_id == caf.id
        else caf.lead_practitioner_id
    )
    if lead_id is not None and lead_id not in holders:
        holders.append(lead_id)
    tac = repo.tac_for_caf(session, caf.id)
    members = frozenset(m.practitioner_id for m in repo.tac_members(session, tac.id)) if tac else frozenset()
    return CafParties(tuple(holders), members)


def _acting_ids(session: Session, actor: Actor, among: set[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these practitioners the actor acts as: a person, their own; a system, its organisation's."""
    if actor.role != Role.SYSTEM:
        return {actor.practitioner_id} & among if actor.practitioner_id else set()
    orgs = own_organisations(session, actor)
    if not orgs or not among:
        return set()
    rows = session.exec(
        select(Practitioner.id).where(
            col(Practitioner.id).in_(list(among)), col(Practitioner.organisation_id).in_(orgs)
        )
    ).all()
    return set(rows)


def caf_standing(session: Session, actor: Actor, caf: Assessment, child: Child) -> Standing | None:
    """What the actor is to this CAF, or None when they may not change it."""
    parties = caf_parties(session, caf)
    mine = _acting_ids(session, actor, set(parties.holders) | set(parties.members))
    if mine & set(parties.holders):
        return Standing.HOLDER
    if mine & parties.members:
        return Standing.TEAM
    if is_locality_team(session, actor, child):
        return Standing.LOCALITY
    if actor.role == Role.DIRECTORY_ADMIN and covers_child(session, actor, child):
        return Standing.ADMIN
    return None


def holder_to_ask(session: Session, actor: Actor, caf: Assessment, child: Child) -> tuple[Contact, bool]:
    """Whom this actor should ask about a CAF, and whether that is its holder (False: the local delivery
    team, because the record is shielded from them or the holder works in a sensitive service)."""
    holder_id = caf.lead_practitioner_id or caf.initiator_id
    visible = may_see_shielded(child, actor) and may_see_practitioner(
        actor, holder_id, repo.sensitive_practitioners(session, [holder_id])
    )
    if not visible:
        return ask_contact(session, child), False
    practitioner, org = repo.practitioner_contact(session, holder_id)
    return (
        Contact(
            name=practitioner.name,
            role=practitioner.role,
            organisation=org.name,
            phone=practitioner.phone or org.phone,
            email=practitioner.email or org.email,
        ),
        True,
    )


def require_caf_change(
    session: Session, actor: Actor, caf: Assessment, child: Child, *, reason: str | None, doing: str
) -> Standing:
    """Refuse (403) anyone who may not change this CAF, naming whom to ask; refuse (422) a change by
    anyone but a holder that gives no reason. Returns the actor's standing."""
    standing = caf_standing(session, actor, caf, child)
    if standing is None:
        ask, is_holder = holder_to_ask(session, actor, caf, child)
        who = f"{ask.name}{' (' + ask.role + ')' if ask.role and is_holder else ''}"
        raise NotAllowed(
            f"Only the CAF's holder, its Lead Professional, members of its Team Around the Child, the "
            f"child's local delivery team or a directory admin can {doing}. Ask {who}{how_to_reach(ask)}.",
            ask=ask.model_dump(),
        )
    if standing != Standing.HOLDER and not (reason or "").strip():
        raise InvalidInput(
            f"You do not hold this CAF: give the reason you {doing} (the practitioner who holds it is "
            "told, with your reason).",
            standing=standing.value,
        )
    return standing


# --------------------------------------------------------------------------- involvements and consents


def _visible_involvement(session: Session, actor: Actor, involvement: Involvement, child: Child) -> None:
    """An involvement the actor may not see is, to them, not there (its id says nothing either)."""
    consent = repo.get(session, Consent, involvement.consent_id) if involvement.consent_id else None
    hidden = not may_see_shielded(child, actor) or (
        involvement.sensitive and not may_see_sensitive(actor, involvement, consent)
    )
    if hidden:
        raise NotFound("No involvement has that id.")


def require_involvement_change(
    session: Session, actor: Actor, involvement: Involvement, child: Child, *, doing: str
) -> None:
    """End, change or confirm: the involvement's practitioner, that service's practitioners (a system:
    of the service's organisation) or the child's local delivery team."""
    _visible_involvement(session, actor, involvement, child)
    if actor.practitioner_id is not None and actor.practitioner_id == involvement.practitioner_id:
        return
    service = repo.get(session, Service, involvement.service_id)
    if service is not None and service.organisation_id in own_organisations(session, actor):
        return
    if is_locality_team(session, actor, child):
        return
    ask = ask_contact(session, child)
    name = service.name if service is not None else "the service"
    raise NotAllowed(
        f"Only {name}'s own practitioners or the child's local delivery team can {doing}. "
        f"Ask {name} (see the record for how to reach them), or {ask.name}{how_to_reach(ask)}.",
        ask=ask.model_dump(),
    )


def practitioner_to_record(
    session: Session, actor: Actor, service: Service, child: Child, named: uuid.UUID | None
) -> uuid.UUID | None:
    """Who may record that a service works with a child, and which practitioner it names.

    A person records their own organisation's service, naming themselves or no one; a connected system
    records its own organisation's services and names its own practitioners; the child's local
    delivery team and directory admins record any service, naming one of that service's organisation's
    practitioners.
    """
    coordinator = is_locality_team(session, actor, child) or (
        actor.role == Role.DIRECTORY_ADMIN and covers_child(session, actor, child)
    )
    if not coordinator:
        if actor.role != Role.SYSTEM and actor.practitioner_id is None:
            raise NotAllowed(NOT_LINKED)
        if service.organisation_id not in own_organisations(session, actor):
            ask = ask_contact(session, child)
            raise NotAllowed(
                f"You can record involvements of your own organisation's services; {service.name} is "
                f"another organisation's. Ask them, or {ask.name}{how_to_reach(ask)}, to record it.",
                ask=ask.model_dump(),
            )
        if named is not None and actor.role != Role.SYSTEM and named != actor.practitioner_id:
            raise NotAllowed(
                "You can name only yourself as the practitioner of an involvement you record (or no one, "
                "for the service as a whole); a colleague records their own."
            )
    if named is None:
        return None
    practitioner = active_practitioner(session, named)
    if practitioner.organisation_id != service.organisation_id:
        raise InvalidInput(
            f"{practitioner.name} does not work for the organisation that runs {service.name}; name one of "
            "its practitioners, or no one.",
            practitioner_id=str(named),
        )
    return practitioner.id


def require_consent_withdrawal(session: Session, actor: Actor, consent: Consent, child: Child) -> None:
    """Withdraw: whoever recorded the consent, or the child's local delivery team."""
    covered = [i for i, *_ in repo.involvements_with_service(session, child.id, include_ended=True)]
    if not may_see_shielded(child, actor) or not may_see_consent(actor, consent, covered):
        raise NotFound("No consent has that id.")
    if consent.recorded_by == actor.subject or is_locality_team(session, actor, child):
        return
    ask = ask_contact(session, child)
    raise NotAllowed(
        "Only whoever recorded this consent or the child's local delivery team can withdraw it. If the "
        f"family has withdrawn it, tell {ask.name}{how_to_reach(ask)}.",
        ask=ask.model_dump(),
    )


def may_change_involvement(session: Session, actor: Actor, involvement: Involvement, child: Child) -> bool:
    """Whether `require_involvement_change` lets this actor end, change or confirm the involvement."""
    try:
        require_involvement_change(session, actor, involvement, child, doing="change it")
    except (NotAllowed, NotFound):
        return False
    return True


def may_withdraw_consent(session: Session, actor: Actor, consent: Consent, child: Child) -> bool:
    """Whether `require_consent_withdrawal` lets this actor withdraw the consent."""
    try:
        require_consent_withdrawal(session, actor, consent, child)
    except (NotAllowed, NotFound):
        return False
    return True


def require_catalogue_change(session: Session, actor: Actor, organisation_ids: Iterable[uuid.UUID]) -> None:
    """Register or change a practitioner: a directory admin, or a connected system for its own
    organisation only (a system that could change another organisation's practitioner's phone number
    could redirect the calls about a child)."""
    if actor.role == Role.DIRECTORY_ADMIN:
        return
    if actor.role != Role.SYSTEM:
        raise NotAllowed("Only a directory admin or a connected system can add or change practitioners.")
    own = own_organisations(session, actor)
    if any(o not in own for o in organisation_ids):
        raise NotAllowed(
            "A connected system adds and changes only its own organisation's practitioners "
            f"({actor.organisation or 'its access grant names no organisation'})."
        )


# --------------------------------------------------------------------------- a child's details

DETAILS_KEEPERS = frozenset({Role.DIRECTORY_ADMIN, Role.DATA_MANAGER})
"""Who may change any child's details in the localities their grant covers (connected systems too)."""

LOCATING_DETAILS = frozenset({"address", "school", "gp practice", "related people"})
"""The details that say where a child is or who is around them: on a shielded record only a shield
viewer (or a connected system, whose feed is trusted for them) changes them."""

DETAILS_CHANGERS_TEXT = (
    "practitioners of a service working with this child, the child's local delivery team, a data "
    "manager or a directory admin"
)


def _works_with_child(session: Session, actor: Actor, child: Child) -> bool:
    """Whether the actor's own service (a system: its organisation's) is actively involved with the child."""
    rows = repo.involvements_with_service(session, child.id)
    mine = actor.practitioner_id
    if mine is not None and any(i.practitioner_id == mine for i, *_ in rows):
        return True
    orgs = own_organisations(session, actor)
    return any(service.organisation_id in orgs for _, service, *_ in rows)


def require_details_change(session: Session, actor: Actor, child: Child, fields: Iterable[str]) -> None:
    """Change a child's details: a connected system, a directory admin or data manager covering the
    child's locality, the child's local delivery team, or a practitioner whose service is actively
    involved with the child. On a shielded record the address, school, GP and carers change only at
    the hands of a shield viewer or a connected system; the refusal says so without saying more than
    the card already shows to this actor (the shield notice)."""
    keeper = actor.role == Role.SYSTEM or (
        actor.role in DETAILS_KEEPERS and covers_child(session, actor, child)
    )
    allowed = keeper or is_locality_team(session, actor, child)
    if not allowed and actor.role in {Role.PRACTITIONER, Role.DESIGNATED_PRACTITIONER, Role.CHILD_PROTECTION}:
        allowed = _works_with_child(session, actor, child)
    if not allowed:
        ask = ask_contact(session, child)
        raise NotAllowed(
            f"Only {DETAILS_CHANGERS_TEXT} can change a child's details. If they are wrong, tell "
            f"{ask.name}{how_to_reach(ask)}.",
            ask=ask.model_dump(),
        )
    locating = sorted(LOCATING_DETAILS & set(fields))
    if child.shielded and locating and actor.role not in SHIELD_VIEWERS and actor.role != Role.SYSTEM:
        ask = ask_contact(session, child)
        raise NotAllowed(
            "This record is shielded: only a designated practitioner can change its "
            f"{', '.join(locating)}. Ask {ask.name}{how_to_reach(ask)}.",
            ask=ask.model_dump(),
            fields=locating,
        )
