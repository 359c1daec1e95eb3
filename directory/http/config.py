"""The practice facts every surface needs, built once from the settings and handed to routes as a
typed dependency (`PracticeDep`), so no route reaches into `app.state.settings` itself.

The composition root (`childindex/app.py`) builds a `Practice` from its settings and stores it on
the app; adapters below it (the FHIR surface, auth, search) read it through `practice(request)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request

from directory.models import Contact


@dataclass(frozen=True, slots=True)
class Practice:
    """How this authority works, as the routes need it."""

    environment: Literal["development", "production"]
    authority_name: str
    fallback_team: Contact
    """Whom to ask when a child has no locality team on record (the authority's delivery team).
    The one builder of that contact: the card, search hits and FHIR all read it from here."""
    signal_expiry_days: int
    suppress_below: int
    issuer: str
    unmerge_days: int = 90
    """How long after a merge of two records it may be undone."""
    worklist_lapse_days: int = 7
    """The locality worklist lists signals of intent that lapse within this many days."""
    still_involved_days: int = 180
    """An involvement nobody has confirmed for this long is on the worklist (and its practitioner asked)."""

    @property
    def development(self) -> bool:
        """Whether the development-only conveniences (the actor header) are on."""
        return self.environment == "development"


def delivery_team(*, name: str, organisation: str, phone: str | None, email: str | None) -> Contact:
    """The authority's delivery team as the contact to ask."""
    return Contact(name=name, role="local delivery team", organisation=organisation, phone=phone, email=email)


def practice(request: Request) -> Practice:
    """The app's practice facts (set by the app factory)."""
    found: Practice = request.app.state.practice
    return found


PracticeDep = Annotated[Practice, Depends(practice)]
