"""The rule for which of a child's names a reader may match and see (the card, FHIR and the search
index apply it alike)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Protocol, TypeVar

import sqlalchemy as sa
from sqlmodel import col

from directory.models import Child, ChildName


class _Name(Protocol):
    @property
    def use(self) -> str: ...
    @property
    def until(self) -> date | None: ...


N = TypeVar("N", bound=_Name)


def names_shown(names: Sequence[N], *, shielded: bool, entitled: bool) -> list[N]:
    """The names of a child this reader may match and see: all of them, but for a shielded record
    read by someone who may not see it, only the current official name (the first when it has
    none). Previous names and aliases are what would link a shielded child to the identity it is
    shielded from (an adopted child's birth name): they are neither keyed, scored nor shown.
    `names` come current official first (repository.child_names' order)."""
    if not shielded or entitled or not names:
        return list(names)
    official = [n for n in names if n.use == "official" and n.until is None]
    return official[:1] or [names[0]]


def name_matches_allowed(*, entitled: bool) -> sa.ColumnElement[bool]:
    """The same rule for a query over child_name joined to child: which names may match a search by
    someone who may (`entitled`) or may not see shielded records."""
    if entitled:
        return sa.true()
    return sa.or_(
        col(Child.shielded).is_(False),
        sa.and_(col(ChildName.use) == "official", col(ChildName.until).is_(None)),
    )
