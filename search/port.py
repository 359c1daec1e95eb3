"""The search port: what the directory hands to search, what a backend must do, what comes back.

Standard library only, so the directory (or its indexer) can depend on these types without
pulling in a backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Literal, Protocol, runtime_checkable

Grade = Literal["certain", "probable", "possible"]


@dataclass(frozen=True)
class BirthFilter:
    """Whether a candidate with this date of birth and expected delivery date could still match
    (call it). For a query with an exact date of birth it also says so in bulk: a candidate whose
    date of birth is known and not one of `near_days` (day numbers, as `date.toordinal`) gets `far`,
    so a backend holding day numbers can test many candidates at once and call it only for the rest.
    """

    test: Callable[[date | None, date | None], bool]
    near_days: frozenset[int] | None = None
    far: bool = True

    def __call__(self, born: date | None, edd: date | None) -> bool:
        """True unless these dates leave the candidate no way to match."""
        return self.test(born, edd)


SEXES = frozenset({"female", "male", "other", "unknown"})


@dataclass(frozen=True, slots=True)
class PersonFields:
    """What the matcher sees of one child, denormalised from the directory.

    For a shielded child only the fields visible to every searcher take part in matching:
    postcodes are never keyed, scored or stored by a backend (see `redacted`).
    """

    child_id: str
    given_names: tuple[str, ...]
    family_names: tuple[str, ...]
    birth_date: date | None
    expected_delivery_date: date | None
    sex: str | None
    postcodes: tuple[str, ...]
    identifiers: tuple[tuple[str, str], ...]
    shielded: bool = False

    def redacted(self) -> PersonFields:
        """Return the record as a backend may store it: a shielded child loses its postcodes."""
        if self.shielded and self.postcodes:
            return replace(self, postcodes=())
        return self

    def to_dict(self) -> dict[str, Any]:
        """Serialise to plain JSON types (dates as ISO strings)."""
        return {
            "child_id": self.child_id,
            "given_names": list(self.given_names),
            "family_names": list(self.family_names),
            "birth_date": self.birth_date.isoformat() if self.birth_date else None,
            "expected_delivery_date": (
                self.expected_delivery_date.isoformat() if self.expected_delivery_date else None
            ),
            "sex": self.sex,
            "postcodes": list(self.postcodes),
            "identifiers": [[system, value] for system, value in self.identifiers],
            "shielded": self.shielded,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PersonFields:
        """Inverse of `to_dict`."""
        birth = data.get("birth_date")
        edd = data.get("expected_delivery_date")
        return cls(
            child_id=str(data["child_id"]),
            given_names=tuple(data.get("given_names") or ()),
            family_names=tuple(data.get("family_names") or ()),
            birth_date=date.fromisoformat(birth) if birth else None,
            expected_delivery_date=date.fromisoformat(edd) if edd else None,
            sex=data.get("sex"),
            postcodes=tuple(data.get("postcodes") or ()),
            identifiers=tuple((str(s), str(v)) for s, v in data.get("identifiers") or ()),
            shielded=bool(data.get("shielded", False)),
        )


@dataclass(frozen=True)
class SearchQuery:
    """What a practitioner typed. Validate with `search.criteria.validate_criteria`."""

    given: str | None = None
    family: str | None = None
    birth_date: date | None = None
    birth_date_from: date | None = None
    birth_date_to: date | None = None
    sex: str | None = None
    postcode: str | None = None
    identifier_system: str | None = None
    identifier_value: str | None = None
    limit: int = 10


@dataclass(frozen=True)
class Match:
    """One candidate child with its score in [0, 1], FHIR match grade and why."""

    child_id: str
    score: float
    grade: Grade
    agreed: tuple[str, ...]
    explanation: str


@dataclass(frozen=True)
class SearchResult:
    """Ranked matches, or `too_many` (and no matches) when the query is not specific enough.

    `fingerprint` identifies the normalised query for the audit log without holding it.
    """

    matches: tuple[Match, ...]
    too_many: bool
    fingerprint: str
    candidates_scored: int = 0

    def raise_if_too_many(self) -> SearchResult:
        """Return self, or raise `TooManyMatches` so a caller can map it to an error response."""
        if self.too_many:
            raise TooManyMatches(self.fingerprint)
        return self


class CriteriaError(ValueError):
    """The search criteria are not enough (or not valid); the message says what to add or fix."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class SearchUnavailable(ConnectionError):
    """The search backend cannot answer now (an Elasticsearch cluster unreachable, refusing the
    credentials, not trusted, or holding an index this release cannot read). A ConnectionError, so
    every surface answers 503 with Retry-After (directory.http.problems.BUSY_ERRORS), never a 500;
    the message says why without any secret, and /readyz says it too."""


class TooManyMatches(LookupError):
    """More children match than may be shown: the searcher must add detail."""

    message = (
        "Too many children match these details. Add more detail, for example a given name, "
        "the exact date of birth, a postcode or an NHS number."
    )

    def __init__(self, fingerprint: str) -> None:
        super().__init__(self.message)
        self.fingerprint = fingerprint


@runtime_checkable
class SearchBackend(Protocol):
    """Stores records with their blocking keys and returns candidates; it never scores."""

    name: str

    @property
    def in_memory(self) -> bool:
        """True while candidates come from this process's memory, with no I/O: a search is then a
        few hundred microseconds of CPU, cheap enough to run without leaving the event loop."""
        ...

    def ensure_ready(self) -> None:
        """Create the tables or index (and alias) if missing."""
        ...

    def upsert(self, records: Sequence[PersonFields]) -> None:
        """Insert or replace records with their keys; idempotent."""
        ...

    def delete(self, child_ids: Sequence[str]) -> None:
        """Remove records; ids not present are ignored."""
        ...

    def candidates(
        self, keys: Sequence[str], limit: int, *, keep_birth: BirthFilter | None = None
    ) -> list[PersonFields]:
        """Return up to `limit` records sharing any key, most shared keys first.

        Of those `limit`, a backend may leave out any for which `keep_birth(birth_date,
        expected_delivery_date)` is False (see `search.scoring.birth_filter`: they could not
        match anyway); it must not bring in others instead.
        """
        ...

    def by_identifier(self, system: str, value: str) -> list[PersonFields]:
        """Return the records holding exactly this identifier."""
        ...

    def rebuild(
        self,
        records: Iterable[PersonFields],
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Replace the whole index with `records`, reporting progress; return how many."""
        ...

    def count(self) -> int:
        """Return how many records are indexed."""
        ...


@runtime_checkable
class AsyncReads(Protocol):
    """A backend whose reads are requests to another process (Elasticsearch) and can be awaited on
    the event loop: a search then holds no worker thread while it waits, and its own CPU (scoring,
    the hits' summaries) runs on the loop with no thread to hand the interpreter lock back and forth
    to. The same answers as `candidates` and `by_identifier`."""

    async def acandidates(
        self, keys: Sequence[str], limit: int, *, keep_birth: BirthFilter | None = None
    ) -> list[PersonFields]:
        """`SearchBackend.candidates`, awaited."""
        ...

    async def aby_identifier(self, system: str, value: str) -> list[PersonFields]:
        """`SearchBackend.by_identifier`, awaited."""
        ...

    async def aclose(self) -> None:
        """Close what the awaited reads opened on the running event loop (at shutdown)."""
        ...
