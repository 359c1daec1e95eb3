"""Practitioners in the catalogue: registered and changed by a directory admin or a connected system."""

from __future__ import annotations

import uuid

from sqlmodel import Session

from directory import audit
from directory import repository as repo
from directory.errors import NotAllowed, NotFound
from directory.models import Actor, Organisation, Practitioner, PractitionerCreate, utcnow
from directory.service.access import PRACTITIONER_REGISTRARS, require_catalogue_change
from directory.service.common import check_version


def register_practitioner(session: Session, *, actor: Actor, data: PractitionerCreate) -> Practitioner:
    """Add a practitioner (and how to reach them) to the catalogue."""
    if actor.role not in PRACTITIONER_REGISTRARS:
        raise NotAllowed("Only a directory admin or a connected system can add practitioners.")
    if repo.get(session, Organisation, data.organisation_id) is None:
        raise NotFound("No organisation has that id.", organisation_id=str(data.organisation_id))
    require_catalogue_change(session, actor, [data.organisation_id])
    practitioner = Practitioner(**data.model_dump())
    session.add(practitioner)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="practitioner.register",
        target_type="practitioner",
        target_id=practitioner.id,
    )
    return practitioner


def update_practitioner(
    session: Session,
    *,
    actor: Actor,
    practitioner_id: uuid.UUID,
    data: PractitionerCreate,
    expected_version: int | None = None,
) -> Practitioner:
    """Change a practitioner's role, organisation or contact point, or mark them inactive.

    A change against an older version is refused (StaleVersion); an update that changes nothing
    keeps the version.
    """
    if actor.role not in PRACTITIONER_REGISTRARS:
        raise NotAllowed("Only a directory admin or a connected system can change practitioners.")
    practitioner = repo.get(session, Practitioner, practitioner_id, for_update=True)
    if practitioner is None:
        raise NotFound("No practitioner has that id.", practitioner_id=str(practitioner_id))
    require_catalogue_change(session, actor, [practitioner.organisation_id, data.organisation_id])
    check_version("practitioner", practitioner.version, expected_version)
    if repo.get(session, Organisation, data.organisation_id) is None:
        raise NotFound("No organisation has that id.", organisation_id=str(data.organisation_id))
    changes = {k: v for k, v in data.model_dump().items() if getattr(practitioner, k) != v}
    if not changes:
        return practitioner  # type: ignore[no-any-return]
    for key, value in changes.items():
        setattr(practitioner, key, value)
    practitioner.version += 1
    practitioner.updated_at = utcnow()  # what FHIR _history?_since= and _lastUpdated read
    session.add(practitioner)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="practitioner.update",
        target_type="practitioner",
        target_id=practitioner.id,
    )
    return practitioner  # type: ignore[no-any-return]
