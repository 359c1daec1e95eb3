"""From field verdicts to a match: the weight total squashed into a score in [0, 1], the grade
(certain, probable, possible) and the explanation; `rank` for a backend's candidates, and the
test on dates of birth a backend may run before reading a candidate whole (`birth_filter`).
"""

from __future__ import annotations

import math
from calendar import isleap
from collections.abc import Iterable
from datetime import date, timedelta
from functools import lru_cache

from search.fields import (
    W_DOB,
    W_FAMILY,
    W_GIVEN,
    W_IDENTIFIER,
    W_NAMES_SWAPPED,
    W_POSTCODE,
    W_SEX,
    NameVerdict,
    Verdict,
    birth_field,
    dob_field,
    identifier_field,
    name_field,
    postcode_field,
    sex_field,
)
from search.normalise import fold, swapped_day_month
from search.port import BirthFilter, Grade, Match, PersonFields, SearchQuery

# --- grade thresholds on the [0, 1] score ------------------------------------------------------

CERTAIN_AT = 0.985
"""At or above, with nothing disagreeing, names + date of birth + postcode sector agreeing.

An agreeing identifier with nothing disagreeing is certain whatever the score.
"""
PROBABLE_AT = 0.90
"""At or above: likely the same child, a person should still check."""
POSSIBLE_AT = 0.40
"""At or above: shown as possible; below: not shown at all.

Set so that a name and a date of birth agreeing loosely (e.g. a given name and a date-of-birth
range, family name different, nothing else) stay hidden: at a local authority's size several
unrelated children agree that much with any query. A given name with a date of birth one digit
out, a different family name and an agreeing sex (a surname change and a slip) is shown as possible.
"""

# The weight total that maps to a score of 0.5, and how quickly the score rises around it.
_MIDPOINT = 12.0
_SCALE = 3.0


def _logistic(total: float) -> float:
    return 1.0 / (1.0 + math.exp(-(total - _MIDPOINT) / _SCALE))


_Verdict = Verdict | NameVerdict

_MAX_NAME_WEIGHT = W_FAMILY["exact"] + W_GIVEN["exact"]
"""The most two names can add: swapping them can only win over names that agree less than this."""


def _names(q: SearchQuery, rec: PersonFields, *, swap: bool) -> list[_Verdict]:
    given, family = (q.family, q.given) if swap else (q.given, q.family)
    found = [
        name_field("family", "family name", family, rec.family_names, given=False),
        name_field("given", "given name", given, rec.given_names, given=True),
    ]
    return [f for f in found if f is not None]


_POSSIBLE_TOTAL = _MIDPOINT + _SCALE * math.log((POSSIBLE_AT - 0.00005) / (1 - (POSSIBLE_AT - 0.00005)))
"""The weight total below which a score rounds to less than POSSIBLE_AT."""


_FLOOR = _POSSIBLE_TOTAL - 1e-6
"""What `rank` asks of a record's weight total."""


def _floor_for(at_least: float) -> float:
    """The weight total below which a score rounds to less than `at_least` (POSSIBLE_AT: `_FLOOR`)."""
    if at_least == POSSIBLE_AT:
        return _FLOOR
    p = at_least - 0.00005
    return _MIDPOINT + _SCALE * math.log(p / (1 - p)) - 1e-6


def _best_names(q: SearchQuery) -> float:
    """The most the names can add: both exact."""
    return (W_FAMILY["exact"] if fold(q.family) else 0.0) + (W_GIVEN["exact"] if fold(q.given) else 0.0)


def birth_filter(q: SearchQuery, *, at_least: float = POSSIBLE_AT) -> BirthFilter | None:
    """A test a backend may run on a candidate's date of birth and expected delivery date before
    loading the rest of it: False only when those dates leave the record no way to reach
    "possible", whatever its names, sex, postcodes and identifiers (so exactly records `rank`
    would drop unscored: the answer is the same with or without it). None when the query gives
    no date to test.

    Most candidates share a name and a year with the query, not its date of birth: this lets the
    resident index skip reading most of them back (see search.resident). `at_least` raises the bar
    for a caller that keeps only better matches (the duplicates report keeps probable ones).
    """
    if q.birth_date is None and not (q.birth_date_from and q.birth_date_to):
        return None
    others = (
        (max(W_SEX.values()) if q.sex else 0.0)
        + (max(W_POSTCODE.values()) if q.postcode else 0.0)
        + (max(W_IDENTIFIER.values()) if q.identifier_system and q.identifier_value else 0.0)
    )
    needed = _floor_for(at_least) - _best_names(q) - others
    weight: dict[tuple[date | None, date | None], float] = {}

    def weigh(born: date | None, edd: date | None) -> float:
        found = weight.get((born, edd))
        if found is None:
            field = birth_field(q, born, edd)
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
    """The dates `birth_field` grades other than "differs" against an exact date of birth: a day
    either side, day and month swapped, the same day and month a year out, one digit of YYYYMMDD
    changed, two neighbouring digits swapped. (Worked on the date as the number YYYYMMDD.
    Remembered: 30 us a search otherwise, and children's dates of birth span some 7,000 days, so the
    cache holds them all.)"""
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
    for year in (day.year - 1, day.year + 1):  # the same day and month a year out
        if 1 <= year <= 9999 and not (day.month == 2 and day.day == 29 and not isleap(year)):
            near.add(day.replace(year=year))
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
    identifier = identifier_field(q, rec)
    others = [f for f in (dob_field(q, rec), sex_field(q, rec), postcode_field(q, rec)) if f is not None]
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
    if not fields or (rec.shielded and not _named_or_identified(fields)):
        return None
    total = sum(f.weight for f in fields) + (W_NAMES_SWAPPED if swapped else 0.0)
    value = _logistic(total)
    if identifier is not None and identifier.level == "agrees" and all(f.weight >= 0 for f in fields):
        value = 1.0
    return round(value, 4), fields, swapped


def _named_or_identified(fields: list[_Verdict]) -> bool:
    """Whether a shielded record may be matched at all: only by an agreeing identifier or its
    (current official) family name. A given name and a date of birth are what a birth family knows
    of an adopted child, whose new record is shielded: they alone lead to no shielded record."""
    return any(
        (f.name == "identifier" and f.level == "agrees") or (f.name == "family" and f.weight > 0)
        for f in fields
    )


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


def rank(q: SearchQuery, records: Iterable[PersonFields], *, at_least: float = POSSIBLE_AT) -> list[Match]:
    """Score records against the query, drop those below `at_least` (POSSIBLE_AT), best first."""
    floor = _floor_for(at_least)
    seen: set[str] = set()
    matches: list[Match] = []
    for rec in records:
        if rec.child_id in seen:
            continue
        seen.add(rec.child_id)
        assessed = _assess(q, rec, floor=floor)
        if assessed is not None and assessed[0] >= at_least:
            matches.append(_match(rec, *assessed))
    matches.sort(key=lambda m: (-m.score, m.child_id))
    return matches
