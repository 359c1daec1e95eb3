"""Field by field comparison of a query with one record: each field's verdict (how well it agrees),
the weight that verdict adds to the score and the words that explain it.

The weights are Fellegi-Sunter in spirit: roughly the log-odds that a true match agrees that way
rather than a random child. search.scoring adds them up, squashes the sum into [0, 1] and grades it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from rapidfuzz.distance import OSA, JaroWinkler

from search.nicknames import are_equivalent
from search.normalise import (
    differing_digits,
    fold,
    name_forms,
    normalise_identifier,
    parse_postcode,
    phonetic,
    swapped_day_month,
    ymd,
)
from search.port import PersonFields, SearchQuery

# --- field weights ---------------------------------------------------------------------------

W_FAMILY = {
    "exact": 8.0,
    "part": 7.0,
    "phonetic": 5.5,
    "similar": 5.0,
    "weak": 1.0,
    # Children's family names change (a parent's marriage or separation, a move to a carer, an
    # adoption) far more often than their given names or dates of birth: a different family name
    # beside an agreeing given name and date is evidence against, not a veto. (-4 before issue #22;
    # -1 found 0.6 points more of the labelled double slips but showed twice as many unrelated
    # children as "possible" to every search, and more the larger the directory: -2.5 is the
    # balance, see docs/search.md.)
    "differs": -2.5,
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
    "swapped": 6.5,
    "digit": 5.5,
    # The same day and month with the year one out across a decade (2019 for 2020): one slip of
    # the year, as likely as a digit (a year out within a decade is a digit anyway).
    "year": 5.5,
    # Day and month exchanged, or two neighbouring digits exchanged, point at one date each (a
    # changed digit at any of some fifty): a random child agrees that way far less often.
    "transposed": 6.0,
    "in_range": 4.0,
    "edd_close": 6.0,
    "edd_near": 3.0,
    "differs": -8.0,
    "edd_differs": -4.0,
}
W_SEX = {"agrees": 1.0, "differs": -3.0}
W_POSTCODE = {"full": 5.0, "sector": 2.5, "district": 1.5, "differs": -1.5}
W_POSTCODE_PREVIOUS = -1.0
W_IDENTIFIER = {"agrees": 20.0, "differs": -15.0}

JW_SIMILAR = 0.88
JW_WEAK = 0.78
SLIP_MIN_LETTERS = 3
"""Names at least this long that are one keyboard slip apart (a letter inserted, deleted, changed,
or two neighbours exchanged) with the same first letter are "similar", whatever Jaro-Winkler says:
it scores short names harshly (Mia/Mai 0.56, Isla/Isma 0.87), and one slip is one slip."""
EDD_CLOSE_DAYS = 14
EDD_NEAR_DAYS = 60

_IDENTIFIER_LABELS = {"nhs": "NHS number", "upn": "Unique Pupil Number"}


# --- verdicts ------------------------------------------------------------------------------


@dataclass(slots=True)
class Verdict:
    """One field's verdict: its weight and the words for the explanation."""

    name: str
    weight: float
    phrase: str
    level: str


@dataclass(slots=True)
class NameVerdict:
    """A name's verdict; the words are only put together for a candidate that is shown."""

    name: str
    weight: float
    what: str
    level: str
    detail: str
    previous: bool

    @property
    def phrase(self) -> str:
        """The words for the explanation."""
        text = _NAME_PHRASES[self.level].format(what=self.what, detail=self.detail.title())
        return text + " (previous name or alias)" if self.previous else text


def _jw(a: str, b: str) -> float:
    return float(JaroWinkler.similarity(a, b))


@lru_cache(maxsize=262144)
def _compare_name(query: str, names: tuple[str, ...], given: bool) -> tuple[str, float, bool, str] | None:
    """Best agreement between a query name and a record's names (current first): (level, weight,
    previous, detail). Remembered: a search's candidates share a few names between them (they were
    found by them), so most of its two hundred comparisons were made already (measured at 1,000,000
    children: the comparisons were about a twentieth of a search's CPU). Positional arguments: a
    cheaper cache key.

    The answer is a plain tuple of strings, a float and a bool, never an object of a class: the
    garbage collector stops following a plain tuple of such values once it has seen it, so the
    cache's quarter of a million answers are not walked by every full collection. (Answers as a
    slotted dataclass were: at 1,000,000 children on Elasticsearch, full collections of 32 ms on
    average, every 60 searches, set the p95; see docs/elasticsearch.md.)"""
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
    return best


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
    if best_jw >= JW_SIMILAR or any(_one_slip(a, b) for a in q_forms for b in r_forms):
        return "similar", ""
    if best_jw >= JW_WEAK:
        return "weak", ""
    return "differs", ""


def _one_slip(a: str, b: str) -> bool:
    """Two name forms one keyboard slip apart, the first letter kept (see SLIP_MIN_LETTERS)."""
    return (
        a[0] == b[0]
        and min(len(a), len(b)) >= SLIP_MIN_LETTERS
        and abs(len(a) - len(b)) <= 1
        and OSA.distance(a, b, score_cutoff=1) == 1
    )


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


def name_field(
    field_name: str, what: str, query: str | None, names: Sequence[str], *, given: bool
) -> NameVerdict | None:
    """How well a query name agrees with the record's names (current first); None: nothing to compare."""
    if not query or not fold(query):
        return None
    verdict = _compare_name(query, tuple(names), given)
    if verdict is None:
        return None
    level, weight, previous, detail = verdict
    return NameVerdict(field_name, weight, what, level, detail, previous)


def dob_field(q: SearchQuery, rec: PersonFields) -> Verdict | None:
    """The date of birth (or expected delivery date) verdict of a record."""
    return birth_field(q, rec.birth_date, rec.expected_delivery_date)


def birth_field(q: SearchQuery, born: date | None, edd: date | None) -> Verdict | None:
    """How a date of birth (or, without one, an expected delivery date) agrees with the query's."""
    if born is not None:
        if q.birth_date is not None:
            if q.birth_date == born:
                return Verdict("birth_date", W_DOB["exact"], "date of birth exact", "exact")
            if swapped_day_month(q.birth_date) == born:
                return Verdict("birth_date", W_DOB["swapped"], "date of birth day/month swapped", "swapped")
            # Most candidates land here (they share a name and a year): compare the digits once.
            diff = differing_digits(q.birth_date, born)
            if len(diff) == 1 or abs((q.birth_date - born).days) == 1:
                return Verdict("birth_date", W_DOB["digit"], "date of birth one digit different", "digit")
            if diff[-1] <= 3 and abs(q.birth_date.year - born.year) == 1:
                # The same day and month a year out (2019 for 2020: two digits, one slip of the year).
                return Verdict("birth_date", W_DOB["year"], "date of birth a year out", "year")
            if _adjacent_digits_transposed(ymd(q.birth_date), ymd(born), diff):
                return Verdict(
                    "birth_date",
                    W_DOB["transposed"],
                    "date of birth two digits transposed",
                    "transposed",
                )
            return Verdict("birth_date", W_DOB["differs"], "date of birth differs", "differs")
        if q.birth_date_from and q.birth_date_to:
            if q.birth_date_from <= born <= q.birth_date_to:
                return Verdict("birth_date", W_DOB["in_range"], "date of birth in range", "in_range")
            return Verdict("birth_date", W_DOB["differs"], "date of birth outside range", "differs")
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
        return Verdict("birth_date", W_DOB["edd_close"], "close to the expected delivery date", "edd_close")
    if gap <= EDD_NEAR_DAYS:
        return Verdict("birth_date", W_DOB["edd_near"], "near the expected delivery date", "edd_near")
    return Verdict("birth_date", W_DOB["edd_differs"], "far from the expected delivery date", "edd_differs")


def _adjacent_digits_transposed(sa: str, sb: str, diff: list[int]) -> bool:
    """Two YYYYMMDD strings differing (at `diff`) only by two neighbouring digits exchanged."""
    return (
        len(diff) == 2
        and diff[1] == diff[0] + 1
        and sa[diff[0]] == sb[diff[1]]
        and (sa[diff[1]] == sb[diff[0]])
    )


def sex_field(q: SearchQuery, rec: PersonFields) -> Verdict | None:
    """Sex agrees or differs; None unless both say female or male."""
    known = {"female", "male"}
    if q.sex in known and rec.sex in known:
        if q.sex == rec.sex:
            return Verdict("sex", W_SEX["agrees"], "sex matches", "agrees")
        return Verdict("sex", W_SEX["differs"], "sex differs", "differs")
    return None


def postcode_field(q: SearchQuery, rec: PersonFields) -> Verdict | None:
    """The best postcode agreement (current address first); never for a shielded child."""
    # A shielded child's address takes no part: neither agreement nor disagreement may
    # reveal anything about where the child lives.
    if rec.shielded or not q.postcode or not rec.postcodes:
        return None
    wanted = parse_postcode(q.postcode)
    if wanted is None:
        return None
    best: Verdict | None = None
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
            best = Verdict("postcode", weight, phrase, level)
    return best or Verdict("postcode", W_POSTCODE["differs"], "postcode differs", "differs")


def identifier_field(q: SearchQuery, rec: PersonFields) -> Verdict | None:
    """The query's identifier agrees or differs; None when the record holds none of that kind."""
    if not (q.identifier_system and q.identifier_value):
        return None
    system = q.identifier_system.strip()
    wanted = normalise_identifier(system, q.identifier_value)
    held = [normalise_identifier(s, v) for s, v in rec.identifiers if s == system]
    if not held:
        return None
    label = _IDENTIFIER_LABELS.get(system, "local identifier")
    if wanted in held:
        return Verdict("identifier", W_IDENTIFIER["agrees"], f"{label} matches", "agrees")
    return Verdict("identifier", W_IDENTIFIER["differs"], f"{label} differs", "differs")
