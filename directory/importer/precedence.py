"""Which fields each feed is trusted for: a feed row updates only those; others are ignored (and
counted). One table, with defaults and an override from a JSON file (CHILDINDEX_FEED_PRECEDENCE_FILE).

The file maps a source name to the fields it is trusted for, for example::

    {"pds": ["name", "date_of_birth", "sex", "nhs_number"],
     "school-census": ["upn", "school"],
     "social-care": ["address"]}

A source named in the file replaces that source's default; sources the file does not name keep
theirs; a source in neither is trusted for nothing (its rows can still create records and be held,
never change one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

FIELDS = frozenset({"name", "date_of_birth", "sex", "nhs_number", "upn", "school", "address"})
"""The fields a feed may be trusted for."""

DEFAULT_TRUST: Mapping[str, frozenset[str]] = {
    "pds": frozenset({"name", "date_of_birth", "sex", "nhs_number"}),  # the demographics service
    "school-census": frozenset({"upn", "school"}),
    "social-care": frozenset({"address"}),  # the authority's own systems
    "local": frozenset({"address"}),
}

SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")


@dataclass(frozen=True)
class Precedence:
    """Source name -> the fields it is trusted for."""

    trust: Mapping[str, frozenset[str]] = field(default_factory=lambda: dict(DEFAULT_TRUST))

    def trusted(self, source: str) -> frozenset[str]:
        """The fields `source` may change (none for a source nobody configured)."""
        return self.trust.get(source, frozenset())


def check_source(source: str) -> str:
    """A feed's name as given to `childindex import --source`, or ValueError."""
    if not SOURCE_NAME.match(source):
        raise ValueError(
            "a source is 1-40 lower-case letters, digits, '-', '_' or '.', e.g. pds or school-census"
        )
    return source


def load_precedence(path: Path | None) -> Precedence:
    """The defaults, overridden source by source by a JSON file when one is given; ValueError
    naming what is wrong with the file."""
    if path is None:
        return Precedence()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"the feed precedence file cannot be read as JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("the feed precedence file must map source names to lists of fields")
    trust = dict(DEFAULT_TRUST)
    for source, fields in data.items():
        check_source(str(source))
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise ValueError(f"the fields of source '{source}' must be a list of names")
        unknown = sorted(set(fields) - FIELDS)
        if unknown:
            raise ValueError(
                f"unknown field(s) for '{source}': {', '.join(unknown)} (use {', '.join(sorted(FIELDS))})"
            )
        trust[str(source)] = frozenset(fields)
    return Precedence(trust)
