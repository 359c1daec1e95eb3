"""The criteria rule and the query as the engine understands it.

A search needs an identifier, or a name with a date of birth (or a narrow range) or a full postcode:
anything looser is refused before any candidate is looked at (`validate_criteria`). The same rule,
`minimum_met`, decides the FHIR surface's Patient search and $match. The normalised query is what
the audit log's fingerprint is taken of, never the query itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from directory.identifiers import is_valid_nhs_number, is_valid_upn
from search.normalise import compact, fold, normalise_identifier, parse_postcode
from search.port import SEXES, CriteriaError, SearchQuery

MAX_RESULTS = 10
"""Never show more children than this for one search."""
MAX_DATE_RANGE_DAYS = 366
"""The widest date-of-birth range a name search may use."""


def minimum_met(*, identifier: bool, name: bool, narrow_birth: bool, full_postcode: bool) -> bool:
    """The minimum criteria of every search of children (the app's, FHIR `Patient?` and `$match`):
    an identifier, or a family or given name with a date of birth (or a range of at most
    MAX_DATE_RANGE_DAYS) or with a full postcode. Sex, a partial postcode and the number of results
    only narrow a search; they never make one allowed."""
    return identifier or (name and (narrow_birth or full_postcode))


def is_full_postcode(text: str | None) -> bool:
    """Whether the text is a whole UK postcode (OX4 1AB), not only its district or sector."""
    parsed = parse_postcode(text)
    return parsed is not None and parsed.full is not None


def validate_criteria(q: SearchQuery) -> None:
    """Raise CriteriaError unless the query is specific enough to search with (`minimum_met`), or
    a field is malformed. At most 10 results."""
    has_system = _identifier_given(q)
    has_name = _name_given(q)
    has_date = _dates_given(q)
    _check_narrowing(q)
    has_place = is_full_postcode(q.postcode)
    if minimum_met(identifier=has_system, name=has_name, narrow_birth=has_date, full_postcode=has_place):
        return
    if has_name:
        raise CriteriaError(
            "Add a date of birth (or a date-of-birth range of at most 366 days) or a full postcode to "
            "search by name, or search by NHS number, Unique Pupil Number or local identifier.",
            field="birth_date",
        )
    if has_date or has_place:
        by = "date of birth" if has_date else "postcode"
        raise CriteriaError(f"Add a family name or a given name to search by {by}.", field="family")
    raise CriteriaError(
        "Enter an NHS number, Unique Pupil Number or local identifier; or a family or given "
        "name with a date of birth (or a date-of-birth range of at most 366 days) or a full postcode.",
    )


def _identifier_given(q: SearchQuery) -> bool:
    """Whether a well-formed identifier is given (both its kind and its value, or neither)."""
    has_system = bool(q.identifier_system and q.identifier_system.strip())
    has_value = bool(q.identifier_value and q.identifier_value.strip())
    if has_system != has_value:
        raise CriteriaError(
            "Give both the kind of identifier and its value, or neither.",
            field="identifier_value" if has_system else "identifier_system",
        )
    if has_system and q.identifier_system and q.identifier_value:
        _validate_identifier(q.identifier_system.strip(), q.identifier_value)
    return has_system


def _name_given(q: SearchQuery) -> bool:
    """Whether a family or given name is given (a name given must hold a letter)."""
    for label, name in (("family name", q.family), ("given name", q.given)):
        if name is not None and name.strip() and not fold(name):
            raise CriteriaError(f"The {label} must contain at least one letter.")
    return bool(fold(q.family) or fold(q.given))


def _dates_given(q: SearchQuery) -> bool:
    """Whether a date of birth or a date-of-birth range is given (a range: both ends, in order, and
    at most MAX_DATE_RANGE_DAYS wide; not both a date and a range)."""
    if q.birth_date and (q.birth_date_from or q.birth_date_to):
        raise CriteriaError(
            "Give either an exact date of birth or a date-of-birth range, not both.",
            field="birth_date",
        )
    if (q.birth_date_from is None) != (q.birth_date_to is None):
        raise CriteriaError(
            "Give both ends of the date-of-birth range, or an exact date of birth instead.",
            field="birth_date_to" if q.birth_date_from else "birth_date_from",
        )
    has_range = q.birth_date_from is not None and q.birth_date_to is not None
    if q.birth_date_from and q.birth_date_to:
        if q.birth_date_from > q.birth_date_to:
            raise CriteriaError(
                "The start of the date-of-birth range is after its end: swap them.",
                field="birth_date_from",
            )
        width = (q.birth_date_to - q.birth_date_from).days
        if width > MAX_DATE_RANGE_DAYS:
            raise CriteriaError(
                f"Narrow the date-of-birth range to at most {MAX_DATE_RANGE_DAYS} days "
                f"(it spans {width} days), or give the exact date of birth.",
                field="birth_date_from",
            )
    return q.birth_date is not None or has_range


def _check_narrowing(q: SearchQuery) -> None:
    """Sex, postcode and the number of results asked for, which only narrow a search."""
    if q.sex is not None and q.sex not in SEXES:
        raise CriteriaError(f"Sex must be one of {', '.join(sorted(SEXES))}.", field="sex")
    if q.postcode and q.postcode.strip() and parse_postcode(q.postcode) is None:
        raise CriteriaError(
            "The postcode is not a UK postcode: give a full postcode such as OX4 1AB "
            "or just its first part such as OX4.",
            field="postcode",
        )
    if not 1 <= q.limit <= MAX_RESULTS:
        raise CriteriaError(f"Ask for between 1 and {MAX_RESULTS} results.", field="limit")


def _validate_identifier(system: str, value: str) -> None:
    normalised = normalise_identifier(system, value)
    if system == "nhs":
        if not is_valid_nhs_number(normalised):
            raise CriteriaError(
                "That is not a valid NHS number: it must be 10 digits and its last digit is "
                "a check digit. Check it against the source and try again.",
                field="identifier_value",
            )
    elif system == "upn":
        if not is_valid_upn(normalised):
            raise CriteriaError(
                "That is not a valid Unique Pupil Number: it is 13 characters, a check letter "
                "followed by 11 digits and a final digit or letter.",
                field="identifier_value",
            )
    elif system.startswith("local:") and len(system) > len("local:"):
        if not normalised or len(normalised) > 64:
            raise CriteriaError(
                "A local identifier must be between 1 and 64 characters.",
                field="identifier_value",
            )
    else:
        raise CriteriaError(
            "Unknown kind of identifier: use 'nhs', 'upn' or 'local:<name of the system>'.",
            field="identifier_system",
        )


def normalised_query(q: SearchQuery) -> dict[str, str | int | None]:
    """The query as the engine understands it: folded names, ISO dates, canonical codes."""
    postcode = parse_postcode(q.postcode)
    system = q.identifier_system.strip() if q.identifier_system else None
    return {
        "given": compact(q.given) or None,
        "family": compact(q.family) or None,
        "birth_date": q.birth_date.isoformat() if q.birth_date else None,
        "birth_date_from": q.birth_date_from.isoformat() if q.birth_date_from else None,
        "birth_date_to": q.birth_date_to.isoformat() if q.birth_date_to else None,
        "sex": q.sex,
        "postcode": (postcode.full or postcode.outward) if postcode else None,
        "identifier_system": system,
        "identifier_value": (
            normalise_identifier(system, q.identifier_value) if system and q.identifier_value else None
        ),
        "limit": q.limit,
    }


def query_fingerprint(q: SearchQuery, key: bytes | None = None) -> str:
    """Hex SHA-256 (HMAC-SHA-256 when a key is given) of the normalised query, for the audit log."""
    payload = json.dumps(normalised_query(q), sort_keys=True, separators=(",", ":")).encode()
    if key:
        return hmac.new(key, payload, hashlib.sha256).hexdigest()
    return hashlib.sha256(payload).hexdigest()
