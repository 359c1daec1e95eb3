"""The matching engine: criteria rule, blocking keys, field-by-field scoring, match grades.

One engine serves every backend: a backend only turns blocking keys into candidates; what
counts as a match, how sure we are and why is decided here, the same way for all of them.
Each step has a module of its own, and the names callers use are re-exported here:

- search/criteria.py: the criteria rule (`validate_criteria`) and the normalised query whose
  fingerprint the audit log keeps;
- search/blocking.py: the keys a record is indexed under and a query looks candidates up by;
- search/fields.py: each field's verdict, weight and words;
- search/scoring.py: the verdicts' weights summed and squashed into a score, graded, ranked.

Scoring is Fellegi-Sunter in spirit: each field adds a weight (roughly log-odds that a
true match agrees that way rather than a random child) and the sum is squashed into [0, 1].
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from search.blocking import blocking_keys, identifier_key, query_keys
from search.criteria import (
    MAX_DATE_RANGE_DAYS,
    MAX_RESULTS,
    normalised_query,
    query_fingerprint,
    validate_criteria,
)
from search.normalise import fold, normalise_identifier
from search.port import AsyncReads, BirthFilter, PersonFields, SearchBackend, SearchQuery, SearchResult
from search.scoring import CERTAIN_AT, POSSIBLE_AT, PROBABLE_AT, birth_filter, rank, score
from search.steps import await_steps, run_steps

CANDIDATE_LIMIT = 200
"""How many candidates a backend may hand to the scorer for one search."""

__all__ = [
    "CANDIDATE_LIMIT",
    "CERTAIN_AT",
    "MAX_DATE_RANGE_DAYS",
    "MAX_RESULTS",
    "POSSIBLE_AT",
    "PROBABLE_AT",
    "MatchingEngine",
    "birth_filter",
    "blocking_keys",
    "identifier_key",
    "normalised_query",
    "query_fingerprint",
    "query_keys",
    "rank",
    "score",
    "validate_criteria",
]


@dataclass(frozen=True, slots=True)
class _Ask:
    """One read a search asks of its backend: the method (`by_identifier` or `candidates`) and its
    arguments. A search is written once, as steps that yield these (`_steps`), and run either
    straight through the backend (`search`) or awaiting it on the event loop (`asearch`)."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def _by_identifier(system: str, value: str) -> _Ask:
    return _Ask("by_identifier", (system, value), {})


def _candidates(keys: list[str], limit: int, keep_birth: BirthFilter | None) -> _Ask:
    return _Ask("candidates", (keys, limit), {"keep_birth": keep_birth})


@dataclass
class MatchingEngine:
    """Searches a backend: validates the criteria, blocks, scores, grades and caps."""

    backend: SearchBackend
    candidate_limit: int = CANDIDATE_LIMIT
    fingerprint_key: bytes | None = field(default=None, repr=False)

    def search(self, q: SearchQuery) -> SearchResult:
        """Find the children matching a query; too_many (and no matches) if it is too loose."""
        backend = self.backend
        return run_steps(self._steps(q), lambda ask: getattr(backend, ask.method)(*ask.args, **ask.kwargs))

    async def asearch(self, q: SearchQuery) -> SearchResult:
        """`search`, awaiting each read on the event loop: for a backend whose reads are requests to
        another process (`AsyncReads`: Elasticsearch), so a search holds no thread while it waits."""
        backend = self.backend
        if not isinstance(backend, AsyncReads):
            return self.search(q)
        return await await_steps(
            self._steps(q), lambda ask: getattr(backend, "a" + ask.method)(*ask.args, **ask.kwargs)
        )

    def _steps(self, q: SearchQuery) -> Generator[_Ask, list[PersonFields], SearchResult]:
        """The search, yielding each read of the backend and given back its records."""
        validate_criteria(q)
        fingerprint = query_fingerprint(q, self.fingerprint_key)
        cap = min(q.limit, MAX_RESULTS)
        scored = 0
        if q.identifier_system and q.identifier_value:
            system = q.identifier_system.strip()
            found = yield _by_identifier(system, normalise_identifier(system, q.identifier_value))
            scored += len(found)
            matches = rank(q, found)
            has_demographics = bool(fold(q.family) or fold(q.given)) and bool(
                q.birth_date or q.birth_date_from
            )
            # A known identifier answers the question; an unknown one with demographics
            # beside it may just be mistyped, so the demographics still get their search.
            if matches or not has_demographics:
                return SearchResult(tuple(matches[:cap]), False, fingerprint, scored)
        candidates = yield _candidates(query_keys(q), self.candidate_limit, birth_filter(q))
        scored += len(candidates)
        matches = rank(q, candidates)
        if sum(1 for m in matches if m.score >= PROBABLE_AT) > cap:
            return SearchResult((), True, fingerprint, scored)
        return SearchResult(tuple(matches[:cap]), False, fingerprint, scored)
