"""Who is acting: the signed-in subject, their role and purpose, passed to every use case."""

from __future__ import annotations

import enum
import uuid

from pydantic import BaseModel, ConfigDict

from directory.models.vocabulary import Purpose, Role


class LocalityReach(enum.StrEnum):
    """What a grant's localities restrict (CHILDINDEX_GRANT_LOCALITIES; directory/reach.py)."""

    OFF = "off"  # nothing: they say only whose local delivery team someone is
    WRITES = "writes"  # changes to the records of children outside them
    ALL = "all"  # reads, searches and changes


class Actor(BaseModel):
    """Who is acting, for what purpose, in which request: passed to every use case."""

    model_config = ConfigDict(frozen=True)

    subject: str
    role: Role
    organisation: str | None = None
    display_name: str | None = None
    client_id: str | None = None
    purpose: Purpose | None = None
    request_id: str | None = None
    practitioner_id: uuid.UUID | None = None
    shield_override_reason: str | None = None  # a child-protection override for one viewing
    localities: tuple[str, ...] = ()  # locality codes the grant covers; empty: the whole authority
    locality_reach: LocalityReach = LocalityReach.OFF  # what those localities restrict (the setting's)
