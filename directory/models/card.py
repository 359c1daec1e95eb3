"""The involvement card: the practitioner's view of a child, as the read model builds it."""

from __future__ import annotations

import uuid
from datetime import date

from directory.models.base import Output
from directory.models.caf import CafRead, HandOverRead, LeadProfessionalRead, TacRead
from directory.models.catalogue import Contact
from directory.models.children import AddressRead, IdentifierRead, NameRead, RelatedPersonRead
from directory.models.consent import ConsentRead
from directory.models.involvements import InvolvementRead


class ShieldNotice(Output):
    """What a user not entitled to a shielded record is told instead of its details."""

    message: str
    ask: Contact


class ChildCard(Output):
    """The practitioner's view of a child: who is involved, CAF, Lead Professional, TAC."""

    id: uuid.UUID
    status: str
    names: list[NameRead]
    date_of_birth: date | None
    expected_delivery_date: date | None
    age_years: int | None
    sex: str
    identifiers: list[IdentifierRead]
    shielded: bool
    shield_notice: ShieldNotice | None = None
    address: AddressRead | None = None
    locality: str | None = None
    school: Contact | None = None
    gp_practice: Contact | None = None
    related_people: list[RelatedPersonRead] = []
    involvements: list[InvolvementRead] = []
    caf: CafRead | None = None
    lead_professional: LeadProfessionalRead | None = None
    lead_professional_history: list[HandOverRead] = []
    tac: TacRead | None = None
    consents: list[ConsentRead] = []
    highest_level_of_need: int | None = None
    merged_into_id: uuid.UUID | None = None
