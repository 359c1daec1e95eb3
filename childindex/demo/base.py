"""What every part of the synthetic county shares: the row buffers, the error, the id source."""

from __future__ import annotations

import random
import uuid
from typing import Any

Rows = dict[str, list[dict[str, Any]]]
"""Table name -> rows (dicts of column values) waiting to be written."""

SEEDED_BY = "seed"  # recorded_by / assigned_by of every seeded row: synthetic data says so


class SeedError(Exception):
    """The database cannot be seeded as asked."""


class Ids:
    """Deterministic uuids and small numbers drawn from the run's random generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def uuid(self) -> uuid.UUID:
        """A version-4 uuid from the run's generator (the same for the same seed)."""
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def landline(self) -> str:
        """A landline number from Ofcom's range reserved for drama."""
        return f"01632 960{self.rng.randrange(1000):03d}"

    def mobile(self) -> str:
        """A mobile number from Ofcom's range reserved for drama."""
        return f"07700 900{self.rng.randrange(1000):03d}"


def slug(text: str) -> str:
    """Lower case, spaces to hyphens, only ASCII letters, digits, '-' and '.' (for e-mail names)."""
    return "".join(c for c in text.lower().replace(" ", "-") if c.isascii() and (c.isalnum() or c in "-."))
