"""Small-number suppression of published counts (the locality overview and its trend)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """A count as published: the number, or None with why it is withheld."""

    value: int | None
    note: str | None = None  # "fewer than N" (a small count) or "withheld" (it would reveal one)

    def __str__(self) -> str:
        return str(self.value) if self.value is not None else (self.note or "")


def suppress_row(values: dict[str, int], threshold: int, *, total_shown: bool) -> dict[str, Figure]:
    """Small-number suppression of one row of counts.

    Primary: a count from 1 to threshold - 1 is shown as "fewer than N" (0 is shown: it names no
    one). Secondary, only where the row's total is published (so that total minus the shown cells
    would give away what was withheld): the withheld cells must add up to at least the threshold
    and be at least two, so more cells are withheld, smallest first, until they do.
    """
    if threshold <= 1:
        return {k: Figure(v) for k, v in values.items()}
    small = {k for k, v in values.items() if 0 < v < threshold}
    withheld: set[str] = set()
    if total_shown and small:
        hidden = set(small)
        for key in sorted((k for k in values if k not in small), key=lambda k: (values[k], k)):
            if len(hidden) >= 2 and sum(values[k] for k in hidden) >= threshold:
                break
            hidden.add(key)
            withheld.add(key)
    return {
        k: Figure(None, f"fewer than {threshold}")
        if k in small
        else Figure(None, "withheld")
        if k in withheld
        else Figure(v)
        for k, v in values.items()
    }
