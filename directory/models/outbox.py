"""The outbox: changes to publish (to the search index), written in the transaction that made them."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from directory.models.base import utc_field
from directory.models.vocabulary import utcnow


class Outbox(SQLModel, table=True):
    """A change to publish (e.g. to the search index), written in the same transaction."""

    id: int | None = Field(default=None, primary_key=True)
    topic: str = Field(max_length=40)
    entity_id: str = Field(max_length=64)
    created_at: datetime = utc_field(default_factory=utcnow)
    processed_at: datetime | None = utc_field(default=None, index=True)
