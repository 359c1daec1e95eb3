"""The matching engine: criteria rule, blocking keys, field-by-field scoring, match grades.

One engine serves every backend: a backend only turns blocking keys into candidates; what
counts as a match, how sure we are and why is decided here, the same way for all of them.

Scoring is Fellegi-Sunter in spirit: each field adds a weight (roughly log-odds that a
true match agrees that way rather than a random child) and the sum is squashed into [0, 1].
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from calendar import isleap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

from rapidfuzz.distance import JaroWinkler

from directory.identifiers import is_valid_nhs_number, is_valid_upn
from search.nicknames import are_equivalent, groups_of
from search.normalise import (
    compact,
    differing_digits,
    fold,
    name_forms,
    normalise_identifier,
    parse_postcode,
    phonetic,
    primary_phonetic,
    swapped_day_month,
    ymd,
)
from search.port import (
    SEXES,
    BirthFilter,
    CriteriaError,
    Grade,
    Match,
    PersonFields,
    SearchBackend,
    SearchQuery,
    SearchResult,
)

# --- limits ----------------------------------------------------------------------------------

MAX_RESULTS = 10
"""Never show more children than this for one search."""
CANDIDATE_LIMIT = 200
"""How many candidates a backend may hand to the scorer for one search."""
MAX_DATE_RANGE_DAYS = 366
"""The widest date-of-birth range a name search may use."""

# --- grade thresholds on the [0, 1] score ------------------------------------------------------

CERTAIN_AT = 0.985
"""At or above, with nothing disagreeing, names + date of birth + postcode sector agreeing.

An agreeing identifier with nothing disagreeing is certain whatever the score.
"""
PROBABLE_AT = 0.90
"""At or above: likely the same child, a person should still check."""
POSSIBLE_AT = 0.40
"""At or above: shown as possible; below: not shown at all.

Set so that a name and a date of birth agreeing loosely (e.g. given name and a date one
digit out, family name different) stay hidden: at a local authority's size several
unrelated children agree that much with any query.
"""

# The weight total that maps to a score of 0.5, and how quickly the score rises around it.
_MIDPOINT = 12.0
_SCALE = 3.0

# --- field weights ---------------------------------------------------------------------------

W_FAMILY = {
    "exact": 8.0,
    "part": 7.0,
    "phonetic": 5.5,
    "similar": 5.0,
    "weak": 1.0,
    "differs": -4.0,
}
W_GIVEN = {
    "exact": 7.0,
    "part": 6.0,
    "nickname": 6.0,
    "phonetic": 5.0,
    "similar": 4.5,
    "initial": 2.0,
    "weak": 1.0,
    "differs": -6.0,
}
W_PREVIOUS_NAME = -0.5
"""Added when the agreement is with a previous name or alias rather than the current one."""
W_NAMES_SWAPPED = -1.0
W_DOB = {
    "exact": 10.0,
    "swapped": 6.0,
    "digit": 5.5,
    "transposed": 5.0,
    "in_range": 4.0,
    "edd_close": 6.0,
    "edd_near": 3.0,
    "differs": -8.0,
    "edd_differs": -4.0,
}
W_SEX = {"agrees": 1.0, "differs": -3.0}
W_POSTCODE = {"full": 4.0, "sector": 2.5, "district": 1.5, "differs": -0.5}
W_POSTCODE_PREVIOUS = -1.0
W_IDENTIFIER = {"agrees": 20.0, "differs": -15.0}

JW_SIMILAR = 0.88
JW_WEAK = 0.78
EDD_CLOSE_DAYS = 14
EDD_NEAR_DAYS = 60

_IDENTIFIER_LABELS = {"nhs": "NHS number", "upn": "Unique Pupil Number"}


# --- criteria --------------------------------------------------------------------------------


def validate_criteria(q: SearchQuery) -> None:
    """Raise CriteriaError unless the query is specific enough to search with.

    The rule: a search needs EITHER an identifier (NHS number, Unique Pupil Number or a
    local identifier, well formed) OR a family name or a given name together with a date
    of birth or a date-of-birth range with both ends and no wider than 366 days. Sex and
    postcode only narrow a search; they never make one allowed. At most 10 results.
    """
    has_system = bool(q.identifier_system and q.identifier_system.strip())
    has_value = bool(q.identifier_value and q.identifier_value.strip())
    if has_system != has_value:
        raise CriteriaError(
            "Give both the kind of identifier and its value, or neither.",
            field="identifier_value" if has_system else "identifier_system",
        )
    if has_system and q.identifier_system and q.identifier_value:
        _validate_identifier(q.identifier_system.strip(), q.identifier_value)

    for label, name in (("family name", q.family), ("given name", q.given)):
        if name is not None and name.strip() and not fold(name):
            raise CriteriaError(f"The {label} must contain at least one letter.")
    has_name = bool(fold(q.family) or fold(q.given))

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
    has_date = q.birth_date is not None or has_range

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

    if has_system:
        return
    if has_name and has_date:
        return
    if has_name:
        raise CriteriaError(
            "Add a date of birth (or a date-of-birth range of at most 366 days) to search by "
            "name, or search by NHS number, Unique Pupil Number or local identifier.",
            field="birth_date",
        )
    if has_date:
        raise CriteriaError("Add a family name or a given name to search by date of birth.", field="family")
    raise CriteriaError(
        "Enter an NHS number, Unique Pupil Number or local identifier; or a family or given "
        "name with a date of birth (or a date-of-birth range of at most 366 days).",
    )


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


# --- blocking keys ---------------------------------------------------------------------------


def _family_codes(names: Iterable[str | None]) -> list[str]:
    codes: dict[str, None] = {}
    for name in names:
        for form in name_forms(name):
            for code in phonetic(form) or (form,):
                codes[code] = None
    return list(codes)


def _family_primary(names: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(primary_phonetic(form) for name in names for form in name_forms(name)))


def _family_initials(names: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(form[0] for name in names for form in name_forms(name)))


def _given_tokens(names: Iterable[str | None]) -> list[str]:
    """Nickname-group ids and primary phonetic code of every form of the given names."""
    tokens: dict[str, None] = {}
    for name in names:
        for form in name_forms(name):
            for group in sorted(groups_of(form)):
                tokens[f"n{group}"] = None
            tokens[f"p{primary_phonetic(form)}"] = None
    return list(tokens)


def _given_initials(names: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(form[0] for name in names for form in name_forms(name)))


def _keys(
    given: Sequence[str | None],
    family: Sequence[str | None],
    dates: Sequence[date],
    years: Iterable[int],
    postcodes: Sequence[str],
) -> dict[str, None]:
    keys: dict[str, None] = {}
    fam_codes = _family_codes(family)
    fam_primary = _family_primary(family)
    fam_initials = _family_initials(family)
    giv_tokens = _given_tokens(given)
    giv_initials = _given_initials(given)
    year_list = sorted(set(years))
    for year in year_list:
        for f in fam_codes:
            keys[f"fy|{f}|{year}"] = None
        for g in giv_tokens:
            keys[f"gy|{g}|{year}"] = None
    for d in dates:
        ds, md = d.strftime("%Y%m%d"), d.strftime("%m%d")
        for g in giv_tokens:
            keys[f"gd|{g}|{ds}"] = None
            keys[f"gm|{g}|{md}"] = None  # survives a slip in the year
        for i in fam_initials:
            keys[f"fd|{i}|{ds}"] = None
        for f in fam_primary:
            keys[f"fm|{f}|{md}"] = None
    for f in fam_primary:
        for g in giv_tokens:
            keys[f"fg|{f}|{g}"] = None
    for text in postcodes:
        pc = parse_postcode(text)
        if pc is None:
            continue
        for d in dates:
            keys[f"dp|{d.strftime('%Y%m%d')}|{pc.district}"] = None
        if pc.full:
            for i in giv_initials:
                keys[f"pg|{pc.full.replace(' ', '')}|{i}"] = None
    return keys


def identifier_key(system: str, value: str) -> str:
    """The blocking key that finds a record by one identifier."""
    return f"id|{system}|{normalise_identifier(system, value)}"


def blocking_keys(rec: PersonFields) -> set[str]:
    """Every key a record is indexed under; a shielded record gets no postcode-based key."""
    when = rec.birth_date or rec.expected_delivery_date
    dates = [when] if when else []
    years = [when.year] if when else []
    postcodes = () if rec.shielded else rec.postcodes
    keys = set(_keys(rec.given_names, rec.family_names, dates, years, postcodes))
    keys.update(identifier_key(system, value) for system, value in rec.identifiers)
    return keys


def query_keys(q: SearchQuery) -> list[str]:
    """Keys to look candidates up by: the query's own, with day/month and name-order swaps."""
    dates: list[date] = []
    years: set[int] = set()
    if q.birth_date:
        dates.append(q.birth_date)
        years.add(q.birth_date.year)
        swapped = swapped_day_month(q.birth_date)
        if swapped:
            dates.append(swapped)
    elif q.birth_date_from and q.birth_date_to:
        years.update(range(q.birth_date_from.year, q.birth_date_to.year + 1))
    postcodes = [q.postcode] if q.postcode else []
    keys = _keys([q.given], [q.family], dates, years, postcodes)
    if q.given and q.family:
        keys.update(_keys([q.family], [q.given], dates, years, postcodes))
    if q.identifier_system and q.identifier_value:
        keys[identifier_key(q.identifier_system, q.identifier_value)] = None
    return list(keys)


# --- scoring ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Field:
    """One field's verdict: its weight and the words for the explanation."""

    name: str
    weight: float
    phrase: str
    level: str


@dataclass(slots=True)
class _NameField:
    """A name's verdict; the words are only put together for a candidate that is shown."""

    name: str
    weight: float
    what: str
    level: str
    detail: str
    previous: bool

    @property
    def phrase(self) -> str:
        text = _NAME_PHRASES[self.level].format(what=self.what, detail=self.detail.title())
        return text + " (previous name or alias)" if self.previous else text


@dataclass
class _NameVerdict:
    level: str
    weight: float
    previous: bool
    detail: str = ""


def _jw(a: str, b: str) -> float:
    return float(JaroWinkler.similarity(a, b))


def _compare_name(query: str, names: Sequence[str], *, given: bool) -> _NameVerdict | None:
    """Best agreement between a query name and a record's names (current first)."""
    q_forms = name_forms(query)
    if not q_forms or not names:
        return None
    weights = W_GIVEN if given else W_FAMILY
    best: tuple[str, float, bool, str] | None = None  # (a verdict is made for the best name only)
    for index, name in enumerate(names):
        r_forms = name_forms(name)
        if not r_forms:
            continue
        level, detail = _name_level(q_forms, r_forms, given)  # (positional: a cheaper cache key)
        weight = weights[level]
        previous = index > 0 and weight > 0
        if previous:
            weight += W_PREVIOUS_NAME
        if best is None or weight > best[1]:
            best = (level, weight, previous, detail)
    return _NameVerdict(*best) if best is not None else None


@lru_cache(maxsize=262144)
def _name_level(q_forms: tuple[str, ...], r_forms: tuple[str, ...], given: bool) -> tuple[str, str]:
    q_full, r_full = q_forms[0], r_forms[0]
    if q_full == r_full:
        return "exact", ""
    if not set(q_forms).isdisjoint(r_forms):
        return "part", ""
    if given:
        if len(q_full) == 1 and r_full.startswith(q_full):
            return "initial", ""
        for a in q_forms:
            for b in r_forms:
                if are_equivalent(a, b):
                    return "nickname", b
    best_jw = max(_jw(a, b) for a in q_forms for b in r_forms)
    same_sound = any(not set(phonetic(a)).isdisjoint(phonetic(b)) for a in q_forms for b in r_forms)
    if same_sound and best_jw >= JW_WEAK:
        return "phonetic", ""
    if best_jw >= JW_SIMILAR:
        return "similar", ""
    if best_jw >= JW_WEAK:
        return "weak", ""
    return "differs", ""


_NAME_PHRASES = {
    "exact": "{what} exact",
    "part": "{what} matches part of a double-barrelled or multi-part name",
    "nickname": "{what} is a known variant of {detail}",
    "phonetic": "{what} sounds the same",
    "similar": "{what} spelled similarly",
    "initial": "{what} initial matches",
    "weak": "{what} loosely similar",
    "differs": "{what} differs",
}


def _name_field(
    field_name: str, what: str, query: str | None, names: Sequence[str], *, given: bool
) -> _NameField | None:
    if not query or not fold(query):
        return None
    verdict = _compare_name(query, names, given=given)
    if verdict is None:
        return None
    return _NameField(field_name, verdict.weight, what, verdict.level, verdict.detail, verdict.previous)


def _dob_field(q: SearchQuery, rec: PersonFields) -> _Field | None:
    return _birth_field(q, rec.birth_date, rec.expected_delivery_date)


def _birth_field(q: SearchQuery, born: date | None, edd: date | None) -> _Field | None:
    if born is not None:
        if q.birth_date is not None:
            if q.birth_date == born:
                return _Field("birth_date", W_DOB["exact"], "date of birth exact", "exact")
            if swapped_day_month(q.birth_date) == born:
                return _Field("birth_date", W_DOB["swapped"], "date of birth day/month swapped", "swapped")
            # Most candidates land here (they share a name and a year): compare the digits once.
            diff = differing_digits(q.birth_date, born)
            if len(diff) == 1 or abs((q.birth_date - born).days) == 1:
                return _Field("birth_date", W_DOB["digit"], "date of birth one digit different", "digit")
            if _adjacent_digits_transposed(ymd(q.birth_date), ymd(born), diff):
                return _Field(
                    "birth_date",
                    W_DOB["transposed"],
                    "date of birth two digits transposed",
                    "transposed",
                )
            return _Field("birth_date", W_DOB["differs"], "date of birth differs", "differs")
        if q.birth_date_from and q.birth_date_to:
            if q.birth_date_from <= born <= q.birth_date_to:
                return _Field("birth_date", W_DOB["in_range"], "date of birth in range", "in_range")
            return _Field("birth_date", W_DOB["differs"], "date of birth outside range", "differs")
        return None
    if edd is None:
        return None
    if q.birth_date is not None:
        gap = abs((q.birth_date - edd).days)
    elif q.birth_date_from and q.birth_date_to:
        gap = max(0, (q.birth_date_from - edd).days, (edd - q.birth_date_to).days)
    else:
        return None
    if gap <= EDD_CLOSE_DAYS:
        return _Field("birth_date", W_DOB["edd_close"], "close to the expected delivery date", "edd_close")
    if gap <= EDD_NEAR_DAYS:
        return _Field("birth_date", W_DOB["edd_near"], "near the expected delivery date", "edd_near")
    return _Field("birth_date", W_DOB["edd_differs"], "far from the expected delivery date", "edd_differs")


def _adjacent_digits_transposed(sa: str, sb: str, diff: list[int]) -> bool:
    """Two YYYYMMDD strings differing (at `diff`) only by two neighbouring digits exchanged."""
    return (
        len(diff) == 2
        and diff[1] == diff[0] + 1
        and sa[diff[0]] == sb[diff[1]]
        and (sa[diff[1]] == sb[diff[0]])
    )


def _sex_field(q: SearchQuery, rec: PersonFields) -> _Field | None:
    known = {"female", "male"}
    if q.sex in known and rec.sex in known:
        if q.sex == rec.sex:
            return _Field("sex", W_SEX["agrees"], "sex matches", "agrees")
        return _Field("sex", W_SEX["differs"], "sex differs", "differs")
    return None


def _postcode_field(q: SearchQuery, rec: PersonFields) -> _Field | None:
    # A shielded child's address takes no part: neither agreement nor disagreement may
    # reveal anything about where the child lives.
    if rec.shielded or not q.postcode or not rec.postcodes:
        return None
    wanted = parse_postcode(q.postcode)
    if wanted is None:
        return None
    best: _Field | None = None
    for index, text in enumerate(rec.postcodes):
        have = parse_postcode(text)
        if have is None:
            continue
        if wanted.full and wanted.full == have.full:
            level, phrase = "full", "postcode exact"
        elif wanted.sector and wanted.sector == have.sector:
            level, phrase = "sector", "postcode same sector"
        elif wanted.district == have.district:
            level, phrase = "district", "postcode same district"
        else:
            continue
        weight = W_POSTCODE[level]
        if index > 0:
            weight += W_POSTCODE_PREVIOUS
            phrase += " (previous address)"
        if best is None or weight > best.weight:
            best = _Field("postcode", weight, phrase, level)
    return best or _Field("postcode", W_POSTCODE["differs"], "postcode differs", "differs")


def _identifier_field(q: SearchQuery, rec: PersonFields) -> _Field | None:
    if not (q.identifier_system and q.identifier_value):
        return None
    system = q.identifier_system.strip()
    wanted = normalise_identifier(system, q.identifier_value)
    held = [normalise_identifier(s, v) for s, v in rec.identifiers if s == system]
    if not held:
        return None
    label = _IDENTIFIER_LABELS.get(system, "local identifier")
    if wanted in held:
        return _Field("identifier", W_IDENTIFIER["agrees"], f"{label} matches", "agrees")
    return _Field("identifier", W_IDENTIFIER["differs"], f"{label} differs", "differs")


def _logistic(total: float) -> float:
    return 1.0 / (1.0 + math.exp(-(total - _MIDPOINT) / _SCALE))


_Verdict = _Field | _NameField

_MAX_NAME_WEIGHT = W_FAMILY["exact"] + W_GIVEN["exact"]
"""The most two names can add: swapping them can only win over names that agree less than this."""


def _names(q: SearchQuery, rec: PersonFields, *, swap: bool) -> list[_Verdict]:
    given, family = (q.family, q.given) if swap else (q.given, q.family)
    found = [
        _name_field("family", "family name", family, rec.family_names, given=False),
        _name_field("given", "given name", given, rec.given_names, given=True),
    ]
    return [f for f in found if f is not None]


_POSSIBLE_TOTAL = _MIDPOINT + _SCALE * math.log((POSSIBLE_AT - 0.00005) / (1 - (POSSIBLE_AT - 0.00005)))
"""The weight total below which a score rounds to less than POSSIBLE_AT."""


_FLOOR = _POSSIBLE_TOTAL - 1e-6
"""What `rank` asks of a record's weight total."""


def _best_names(q: SearchQuery) -> float:
    """The most the names can add: both exact."""
    return (W_FAMILY["exact"] if fold(q.family) else 0.0) + (W_GIVEN["exact"] if fold(q.given) else 0.0)


def birth_filter(q: SearchQuery) -> BirthFilter | None:
    """A test a backend may run on a candidate's date of birth and expected delivery date before
    loading the rest of it: False only when those dates leave the record no way to reach
    "possible", whatever its names, sex, postcodes and identifiers (so exactly records `rank`
    would drop unscored: the answer is the same with or without it). None when the query gives
    no date to test.

    Most candidates share a name and a year with the query, not its date of birth: this lets the
    resident index skip reading most of them back (see search.resident).
    """
    if q.birth_date is None and not (q.birth_date_from and q.birth_date_to):
        return None
    others = (
        (max(W_SEX.values()) if q.sex else 0.0)
        + (max(W_POSTCODE.values()) if q.postcode else 0.0)
        + (max(W_IDENTIFIER.values()) if q.identifier_system and q.identifier_value else 0.0)
    )
    needed = _FLOOR - _best_names(q) - others
    weight: dict[tuple[date | None, date | None], float] = {}

    def weigh(born: date | None, edd: date | None) -> float:
        found = weight.get((born, edd))
        if found is None:
            field = _birth_field(q, born, edd)
            found = weight[(born, edd)] = field.weight if field else 0.0
        return found

    if q.birth_date is None:  # a range: few distinct dates, each weighed once
        return BirthFilter(lambda born, edd: weigh(born, edd) >= needed)
    # An exact date: every date of birth but the few near it (the same, a day either side, day and
    # month swapped, one digit changed, two neighbouring digits swapped) simply "differs", so only
    # a candidate born on one of those few needs weighing (once per date).
    near = _near_dates(q.birth_date)
    far = W_DOB["differs"] >= needed

    def keep(born: date | None, edd: date | None) -> bool:
        if born is None:
            return weigh(None, edd) >= needed
        return weigh(born, None) >= needed if born in near else far

    return BirthFilter(keep, _near_day_numbers(q.birth_date), far)


@lru_cache(maxsize=8192)
def _near_day_numbers(day: date) -> frozenset[int]:
    """`_near_dates` as day numbers (`date.toordinal`), as the resident index holds dates."""
    return frozenset(d.toordinal() for d in _near_dates(day))


_PLACES = (10_000_000, 1_000_000, 100_000, 10_000, 1000, 100, 10, 1)  # of the digits of YYYYMMDD
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@lru_cache(maxsize=8192)
def _near_dates(day: date) -> frozenset[date]:
    """The dates `_birth_field` grades other than "differs" against an exact date of birth: a day
    either side, day and month swapped, one digit of YYYYMMDD changed, two neighbouring digits
    swapped. (Worked on the date as the number YYYYMMDD. Remembered: 30 us a search otherwise,
    and children's dates of birth span some 7,000 days, so the cache holds them all.)"""
    number = day.year * 10_000 + day.month * 100 + day.day
    digits = [number // place % 10 for place in _PLACES]
    numbers = {
        number + (new - digit) * place
        for digit, place in zip(digits, _PLACES, strict=True)
        for new in range(10)
    }
    numbers |= {
        number + (b - a) * hi + (a - b) * lo
        for a, b, hi, lo in zip(digits, digits[1:], _PLACES, _PLACES[1:], strict=False)
    }
    near: set[date] = set()
    for step in (1, -1):
        try:
            near.add(day + timedelta(days=step))
        except OverflowError:
            continue  # the first or last day there is
    swapped = swapped_day_month(day)
    if swapped:
        near.add(swapped)
    for n in numbers:
        year, month, mday = n // 10_000, n // 100 % 100, n % 100
        # (tested rather than caught: most of these are not dates, and raising costs more)
        if year >= 1 and 1 <= month <= 12 and 1 <= mday <= _MONTH_DAYS[month] + (month == 2 and isleap(year)):
            near.add(date(year, month, mday))
    return frozenset(near)


def _assess(
    q: SearchQuery, rec: PersonFields, *, floor: float | None = None
) -> tuple[float, list[_Verdict], bool] | None:
    """The score in [0, 1], the fields compared and whether the names were swapped; None if nothing
    at all is comparable, or if the score cannot reach `floor` (a weight total) whatever the names."""
    identifier = _identifier_field(q, rec)
    others = [f for f in (_dob_field(q, rec), _sex_field(q, rec), _postcode_field(q, rec)) if f is not None]
    if floor is not None:
        # Names are the dear part: skip them when even two exact names could not lift the total.
        known = sum(f.weight for f in others) + (identifier.weight if identifier else 0.0)
        if known + _best_names(q) < floor:
            return None
    names = _names(q, rec, swap=False)
    swapped = False
    if q.given and q.family:
        direct = sum(f.weight for f in names)
        # Swapped names cost W_NAMES_SWAPPED (negative), so they can only win below this bound.
        if direct < _MAX_NAME_WEIGHT + W_NAMES_SWAPPED:
            alt = _names(q, rec, swap=True)
            if sum(f.weight for f in alt) + W_NAMES_SWAPPED > direct:
                names, swapped = alt, True
    fields: list[_Verdict] = [*([identifier] if identifier else []), *names, *others]
    if not fields:
        return None
    total = sum(f.weight for f in fields) + (W_NAMES_SWAPPED if swapped else 0.0)
    value = _logistic(total)
    if identifier is not None and identifier.level == "agrees" and all(f.weight >= 0 for f in fields):
        value = 1.0
    return round(value, 4), fields, swapped


def _match(rec: PersonFields, value: float, fields: list[_Verdict], swapped: bool) -> Match:
    by_name = {f.name: f for f in fields}
    disagreed = any(f.weight < 0 for f in fields)
    grade = _grade(value, by_name, disagreed=disagreed, swapped=swapped)
    phrases = [f.phrase for f in fields]
    if swapped:
        phrases.insert(0, "given and family names swapped")
    return Match(
        child_id=rec.child_id,
        score=value,
        grade=grade,
        agreed=tuple(f.name for f in fields if f.weight > 0),
        explanation="; ".join(phrases),
    )


def score(q: SearchQuery, rec: PersonFields) -> Match | None:
    """Compare a query with one record field by field; None if nothing at all is comparable."""
    assessed = _assess(q, rec)
    return _match(rec, *assessed) if assessed is not None else None


def _grade(value: float, fields: dict[str, _Verdict], *, disagreed: bool, swapped: bool) -> Grade:
    identifier = fields.get("identifier")
    if not disagreed and identifier is not None and identifier.level == "agrees":
        return "certain"
    family, given, dob = fields.get("family"), fields.get("given"), fields.get("birth_date")
    strong_demographics = (
        family is not None
        and family.level in ("exact", "part")
        and given is not None
        and given.level in ("exact", "part", "nickname")
        and dob is not None
        and dob.level == "exact"
    )
    # Names and a date of birth can coincide for two children in a large authority (two
    # Oliver Smiths born the same day); certain also needs the address to agree.
    postcode = fields.get("postcode")
    corroborated = postcode is not None and postcode.level in ("full", "sector")
    if value >= CERTAIN_AT and strong_demographics and corroborated and not disagreed and not (swapped):
        return "certain"
    if value >= PROBABLE_AT:
        return "probable"
    return "possible"


# --- engine ----------------------------------------------------------------------------------


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


def rank(q: SearchQuery, records: Iterable[PersonFields]) -> list[Match]:
    """Score records against the query, drop those below POSSIBLE_AT, best first."""
    seen: set[str] = set()
    matches: list[Match] = []
    for rec in records:
        if rec.child_id in seen:
            continue
        seen.add(rec.child_id)
        assessed = _assess(q, rec, floor=_FLOOR)
        if assessed is not None and assessed[0] >= POSSIBLE_AT:
            matches.append(_match(rec, *assessed))
    matches.sort(key=lambda m: (-m.score, m.child_id))
    return matches


@dataclass
class MatchingEngine:
    """Searches a backend: validates the criteria, blocks, scores, grades and caps."""

    backend: SearchBackend
    candidate_limit: int = CANDIDATE_LIMIT
    fingerprint_key: bytes | None = field(default=None, repr=False)

    def search(self, q: SearchQuery) -> SearchResult:
        """Find the children matching a query; too_many (and no matches) if it is too loose."""
        validate_criteria(q)
        fingerprint = query_fingerprint(q, self.fingerprint_key)
        cap = min(q.limit, MAX_RESULTS)
        scored = 0
        if q.identifier_system and q.identifier_value:
            found = self.backend.by_identifier(
                q.identifier_system.strip(),
                normalise_identifier(q.identifier_system.strip(), q.identifier_value),
            )
            scored += len(found)
            matches = rank(q, found)
            has_demographics = bool(fold(q.family) or fold(q.given)) and bool(
                q.birth_date or q.birth_date_from
            )
            # A known identifier answers the question; an unknown one with demographics
            # beside it may just be mistyped, so the demographics still get their search.
            if matches or not has_demographics:
                return SearchResult(tuple(matches[:cap]), False, fingerprint, scored)
        candidates = self.backend.candidates(query_keys(q), self.candidate_limit, keep_birth=birth_filter(q))
        scored += len(candidates)
        matches = rank(q, candidates)
        if sum(1 for m in matches if m.score >= PROBABLE_AT) > cap:
            return SearchResult((), True, fingerprint, scored)
        return SearchResult(tuple(matches[:cap]), False, fingerprint, scored)
