"""Match-quality evaluation: a synthetic, labelled population and corrupted searches for it.

`generate_population` makes households of children (siblings share a family name and an
address; some are twins; some have previous names and addresses). `generate_cases` turns a
child into what a practitioner might type, with one or two known corruptions (typos,
nicknames, swapped day/month, a moved house, a changed surname, missing fields...).
`evaluate` runs the cases through a MatchingEngine and counts top-1 recall and false
"certain" grades. Deterministic for a given seed. Used by tests/search/test_quality.py and
bench/search_quality.py.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from search.matching import MatchingEngine
from search.nicknames import GROUPS, groups_of
from search.normalise import compact, swapped_day_month
from search.port import PersonFields, SearchQuery

# --- name stock --------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    """Whitespace-separated names; an underscore stands for a space inside one name."""
    return tuple(word.replace("_", " ") for word in text.split())


FEMALE = _words(
    """
Olivia Amelia Isla Ava Mia Ivy Lily Isabella Rosie Sophia Grace Freya Willow Florence Emily Ella
Poppy Evie Elsie Charlotte Evelyn Sienna Sofia Daisy Phoebe Sophie Alice Harper Matilda Ruby
Emilia Maya Millie Isabelle Eva Luna Jessica Aria Hallie Esme Erin Imogen Scarlett Layla Chloe
Eliza Holly Lucy Orla Aisha Maryam Fatima Zainab Hannah Eleanor Katherine Elizabeth Margaret
Rebecca Victoria Abigail Alexandra Jennifer Samantha Natalie Rachel Laura Megan Bethany Amy
Caitlin Niamh Siobhan Aoife Zoe Leah Jasmine Georgia Harriet Penelope Beatrice Josephine Susan
Patricia Deborah Caroline Nicola Kayleigh Paige Tamsin Chantelle Shannon Jade Courtney Demi
Mollie Lacey
"""
)
MALE = _words(
    """
Muhammad Noah Oliver George Leo Arthur Oscar Harry Archie Jack Henry Charlie Freddie Theodore
Thomas Finley Theo Alfie Jacob William Isaac Tommy Lucas Elijah Teddy Arlo James Joshua Max
Roman Ezra Albie Alexander Edward Reuben Samuel Daniel Mason Benjamin Rory Louie Ronnie Jude
Hugo Joseph Sebastian Ethan Adam Tobias Liam Dylan Callum Kyle Jayden Ryan Connor Michael
Christopher Matthew Andrew Robert Richard David Stephen Nicholas Jonathan Patrick Anthony Kieran
Declan Ciaran Rhys Owen Gethin Ibrahim Yusuf Omar Hamza Ali Ahmed Zachary Nathan Nathaniel
Gabriel Frederick Alfred Lewis Bradley Harvey Jaxon Kai Brandon Aaron Jason Kenneth Lawrence
Timothy Victor Vincent Dominic
"""
)
SURNAMES = _words(
    """
Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson Thompson
Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson Wood Turner
Martin Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan Allen James Scott
Phillips Watson Davis Parker Price Bennett Young Griffiths Mitchell Kelly Cook Carter Richardson
Bailey Collins Bell Shaw Murphy Miller Cox Richards Khan Marshall Anderson Simpson Ellis Adams
Singh Begum Wilkinson Foster Chapman Powell Webb Rogers Gray Mason Ali Hunt Hussain Campbell
Matthews Owen Palmer Holmes Mills Barnes Knight Lloyd Butler Russell Barker Fisher Stevens
Jenkins Murray Dixon Harvey Graham Pearson Ahmed Fletcher Walsh Kaur Gibson Howard Andrews
Stewart Elliott Reynolds Saunders Payne Fox Ford Pearce Day Brooks West Lawrence Cole Atkinson
Bradley Spencer Gill Dawson Ball Burton O'Brien Watts Rose Booth Perry Ryan Grant Wells
Armstrong Francis Rees Hayes Hart Hudson Newman Barrett Webster Hunter Gregory Carr Lowe Page
Marsh Riley Dunn Woods Parsons Berry Stone Reid Holland Hawkins Harding Porter Robertson Newton
Oliver Reed Kennedy Williamson Bird Gardner Shah Dean Lane Cooke Bates Henderson Parry Burgess
Bishop Walton Burns Nicholson Shepherd Ross Cross Long Freeman Warren Nicholls Hamilton Byrne
Sutton McDonald Yates Hodgson Robson Curtis Hopkins O'Connor Harper Coleman Watkins Moss
McCarthy Chambers O'Neill Griffin Sharp Hardy Wheeler Potter Osborne Johnston Gordon Doyle
Wallace George Jordan Hutchinson Rowe Burke May Pritchard Gilbert Willis Higgins Read Miles
Stevenson Stephenson Hammond Arnold Buckley Walters Hewitt Barber Nowak Kowalski Wisniewski
Nguyen Okafor Adeyemi Mensah Achterberg Smith-Jones Taylor-Brown Lloyd-Webber Ashby-de-la-Zouch
Fernandez-Garcia Da_Silva Dos_Santos
"""
)

_AREAS = ("OX", "SW", "M", "B", "LS", "NE", "CB", "BS", "L", "S", "NG", "LE", "CV", "PO", "EX")
_UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


# Real registers have tens of thousands of family names; these syllables make a long tail
# of plausible ones (Ashworth, Kettleby...) so that large populations are not unrealistically
# full of namesakes.
_HEADS = _words(
    """
Ash Bar Black Brad Brom Cal Carl Chad Cole Dal Dun Eld Fair Farn Gar Glen Hal Hart Hol Kett
Kirk Lang Lind Mar Mid Mor New North Oak Pen Rad Red Roth Shel South Stan Thorn Wal West Whit
Wyn
"""
)
_TAILS = _words(
    """
by bridge brook burn bury combe croft dale den don field ford gate ham hill hurst ington ley
low more over ridge shaw stead stock ston thorpe ton well wick wood worth
"""
)
LONG_TAIL_SHARE = 0.4
"""Share of households whose family name comes from the long tail."""


def _surname_pool() -> list[str]:
    return list(SURNAMES)


def _long_tail_surname(rng: random.Random) -> str:
    return rng.choice(_HEADS) + rng.choice(_TAILS)


def _family_name(rng: random.Random, surnames: Sequence[str]) -> str:
    if rng.random() < LONG_TAIL_SHARE:
        return _long_tail_surname(rng)
    return _weighted(rng, surnames, 10)


def _random_postcode(rng: random.Random) -> str:
    area = rng.choice(_AREAS)
    unit = rng.choice(_UNIT_LETTERS) + rng.choice(_UNIT_LETTERS)
    return f"{area}{rng.randint(1, 30)} {rng.randint(0, 9)}{unit}"


def _nhs_number(rng: random.Random) -> str:
    while True:
        digits = [rng.randint(0, 9) for _ in range(9)]
        check = 11 - sum(d * (10 - i) for i, d in enumerate(digits)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            return "".join(map(str, digits)) + str(check)


def _weighted(rng: random.Random, items: Sequence[str], offset: int) -> str:
    # Zipf-like: the first names in each list are the most common, as in real registers.
    # The offset flattens the head: the top family name is about 3% of children and the
    # top given name about 5% of each sex -- more concentrated than the real registers,
    # whose long tail a list this short cannot have, so the test is the harder for it.
    weights = [1.0 / (rank + offset) for rank in range(len(items))]
    return rng.choices(items, weights=weights)[0]


# --- population --------------------------------------------------------------------------------


def generate_population(n: int, *, seed: int = 1, today: date = date(2026, 1, 1)) -> list[PersonFields]:
    """n children in households; no two share given name, family name and date of birth."""
    rng = random.Random(seed)
    surnames = _surname_pool()
    people: list[PersonFields] = []
    seen: set[tuple[str, str, date | None]] = set()
    counter = 0
    while len(people) < n:
        family = _family_name(rng, surnames)
        postcode = _random_postcode(rng)
        previous_postcodes = (_random_postcode(rng),) if rng.random() < 0.2 else ()
        first_born = today - timedelta(days=rng.randint(0, 19 * 365))
        size = rng.choices((1, 2, 3, 4), weights=(45, 35, 15, 5))[0]
        born = first_born
        used_given: set[str] = set()
        for child_index in range(size):
            if len(people) >= n:
                break
            sex = rng.choice(("female", "male"))
            pool = FEMALE if sex == "female" else MALE
            given = _weighted(rng, pool, 8)
            if given in used_given:
                continue
            used_given.add(given)
            if child_index > 0:
                twin = rng.random() < 0.04
                born = born if twin else born + timedelta(days=rng.randint(300, 1500))
            birth_date: date | None = born
            edd: date | None = None
            if born > today:
                birth_date, edd = None, born
            families: tuple[str, ...] = (family,)
            if rng.random() < 0.05:
                families = (family, _family_name(rng, surnames))
            givens: tuple[str, ...] = (given,)
            key = (given, family, birth_date)
            if key in seen:
                continue
            seen.add(key)
            counter += 1
            identifiers: list[tuple[str, str]] = []
            if rng.random() < 0.9:
                identifiers.append(("nhs", _nhs_number(rng)))
            people.append(
                PersonFields(
                    child_id=f"{seed:08x}{counter:024x}",
                    given_names=givens,
                    family_names=families,
                    birth_date=birth_date,
                    expected_delivery_date=edd,
                    sex=sex,
                    postcodes=(postcode, *previous_postcodes),
                    identifiers=tuple(identifiers),
                    shielded=rng.random() < 0.01,
                )
            )
    return people


# --- corruptions -------------------------------------------------------------------------------

Corruption = Callable[[SearchQuery, PersonFields, random.Random], SearchQuery | None]
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _typo(text: str, rng: random.Random) -> str:
    """One keyboard slip: insert, delete, substitute or transpose a letter."""
    for _ in range(20):
        chars = list(text)
        letters = [i for i, c in enumerate(chars) if c.isalpha()]
        if len(letters) < 3:
            return text
        i = rng.choice(letters[1:])  # people rarely get the first letter wrong
        kind = rng.choice(("insert", "delete", "substitute", "transpose"))
        if kind == "insert":
            chars.insert(i, rng.choice(_LETTERS))
        elif kind == "delete":
            del chars[i]
        elif kind == "substitute":
            chars[i] = rng.choice(_LETTERS.replace(chars[i].lower(), ""))
        elif i + 1 < len(chars) and chars[i + 1].isalpha() and chars[i] != chars[i + 1]:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        else:
            continue
        result = "".join(chars)
        if compact(result) != compact(text):
            return result
    return text


def _typo_given(q: SearchQuery, rec: PersonFields, rng: random.Random) -> SearchQuery | None:
    return replace(q, given=_typo(q.given, rng)) if q.given else None


def _typo_family(q: SearchQuery, rec: PersonFields, rng: random.Random) -> SearchQuery | None:
    return replace(q, family=_typo(q.family, rng)) if q.family else None


def _nickname(q: SearchQuery, rec: PersonFields, rng: random.Random) -> SearchQuery | None:
    name = compact(q.given)
    others = sorted({n for g in groups_of(name) for n in GROUPS[g]} - {name})
    return replace(q, given=rng.choice(others).title()) if others else None


def _dob_swap(q: SearchQuery, rec: PersonFields, rng: random.Random) -> SearchQuery | None:
    swapped = swapped_day_month(q.birth_date) if q.birth_date else None
    return replace(q, birth_date=swapped) if swapped else None


def _dob_digit(q: SearchQuery, rec: PersonFields, rng: random.Random) -> SearchQuery | None:
    if not q.birth_date:
        return None
    text = q.birth_date.strftime("%Y%m%d")
    for _ in range(50):
        i = rng.choice((2, 3, 4, 5, 6, 7))  # century digits are never mistyped in practice
        candidate = text[:i] + rng.choice("0123456789".replace(text[i], "")) + text[i + 1 :]
        try:
            slipped = date(int(candidate[:4]), int(candidate[4:6]), int(candidate[6:]))
        except ValueError:
            continue
        if abs((slipped - q.birth_date).days) < 25 * 365:
            return replace(q, birth_date=slipped)
    return None


def _moved(q: SearchQuery, rec: PersonFields, rng: random.Random) -> SearchQuery | None:
    return replace(q, postcode=_random_postcode(rng))


def _surname_change(q: SearchQuery, rec: PersonFields, rng: random.Random) -> SearchQuery | None:
    pool = [s for s in _surname_pool() if compact(s) not in {compact(f) for f in rec.family_names}]
    return replace(q, family=rng.choice(pool))


def _missing(q: SearchQuery, rec: PersonFields, rng: random.Random) -> SearchQuery | None:
    return replace(q, sex=None, postcode=None)


def _date_range(q: SearchQuery, rec: PersonFields, rng: random.Random) -> SearchQuery | None:
    if not q.birth_date:
        return None
    start = q.birth_date - timedelta(days=rng.randint(0, 365))
    return replace(q, birth_date=None, birth_date_from=start, birth_date_to=start + timedelta(days=365))


def _name_order(q: SearchQuery, rec: PersonFields, rng: random.Random) -> SearchQuery | None:
    return replace(q, given=q.family, family=q.given) if q.given and q.family else None


def _spelling(q: SearchQuery, rec: PersonFields, rng: random.Random) -> SearchQuery | None:
    family = (q.family or "").replace("'", "").replace("-", " ").upper()
    return replace(q, family=family or None, given=(q.given or "").lower() or None)


CORRUPTIONS: dict[str, Corruption] = {
    "typo_given": _typo_given,
    "typo_family": _typo_family,
    "nickname": _nickname,
    "dob_swap": _dob_swap,
    "dob_digit": _dob_digit,
    "moved": _moved,
    "surname_change": _surname_change,
    "missing": _missing,
    "date_range": _date_range,
    "name_order": _name_order,
    "spelling": _spelling,
}
# Pairs that make no sense together (both rewrite the same field).
_CLASHES = {
    frozenset({"dob_swap", "dob_digit"}),
    frozenset({"dob_swap", "date_range"}),
    frozenset({"dob_digit", "date_range"}),
    frozenset({"moved", "missing"}),
    frozenset({"typo_family", "surname_change"}),
    frozenset({"typo_given", "nickname"}),
    frozenset({"spelling", "surname_change"}),
}
# name_order last: it moves whatever the other corruptions did to the names.
_ORDER = [*(k for k in CORRUPTIONS if k != "name_order"), "name_order"]


@dataclass(frozen=True)
class Case:
    """One labelled search: the query, the child it was made from and what was done to it."""

    query: SearchQuery
    target: str
    corruptions: tuple[str, ...]


def base_query(rec: PersonFields, rng: random.Random) -> SearchQuery:
    """What a practitioner who knows the child would type, before any mistake."""
    return SearchQuery(
        given=rec.given_names[0],
        family=rec.family_names[0],
        birth_date=rec.birth_date,
        sex=rec.sex if rng.random() < 0.7 else None,
        postcode=rec.postcodes[0] if rec.postcodes and rng.random() < 0.6 else None,
    )


def generate_cases(
    population: Sequence[PersonFields], n: int, *, corruptions: int, seed: int = 2
) -> list[Case]:
    """n searches for children with a birth date, each with `corruptions` distinct corruptions."""
    rng = random.Random(seed)
    born = [p for p in population if p.birth_date is not None]
    cases: list[Case] = []
    while len(cases) < n:
        rec = rng.choice(born)
        names = _pick(rng, corruptions)
        q: SearchQuery | None = base_query(rec, rng)
        for name in sorted(names, key=_ORDER.index):
            q = CORRUPTIONS[name](q, rec, rng) if q is not None else None
        if q is not None:
            cases.append(Case(q, rec.child_id, tuple(sorted(names))))
    return cases


def _pick(rng: random.Random, k: int) -> list[str]:
    while True:
        names = rng.sample(list(CORRUPTIONS), k)
        if not any(frozenset(pair) in _CLASHES for pair in _pairs(names)):
            return names


def _pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]


# --- evaluation --------------------------------------------------------------------------------


@dataclass
class QualityReport:
    """Outcome counts for a set of cases."""

    cases: int = 0
    top1: int = 0
    found: int = 0
    false_certain: int = 0
    target_certain: int = 0
    too_many: int = 0
    tied_first: int = 0
    seconds: float = 0.0
    by_corruption: Counter[str] = field(default_factory=Counter)
    top1_by_corruption: Counter[str] = field(default_factory=Counter)
    misses: list[tuple[Case, str]] = field(default_factory=list)

    @property
    def recall_top1(self) -> float:
        """Share of cases whose child is ranked first."""
        return self.top1 / self.cases if self.cases else 0.0

    @property
    def false_certain_rate(self) -> float:
        """Share of cases where a different child was graded certain."""
        return self.false_certain / self.cases if self.cases else 0.0


def evaluate(engine: MatchingEngine, cases: Sequence[Case], *, keep_misses: int = 20) -> QualityReport:
    """Run every case through the engine and count what came back."""
    report = QualityReport()
    started = time.perf_counter()
    for case in cases:
        result = engine.search(case.query)
        report.cases += 1
        for name in case.corruptions:
            report.by_corruption[name] += 1
        if result.too_many:
            report.too_many += 1
        ids = [m.child_id for m in result.matches]
        if case.target in ids:
            report.found += 1
        if ids and ids[0] == case.target:
            report.top1 += 1
            for name in case.corruptions:
                report.top1_by_corruption[name] += 1
        else:
            if case.target in ids and result.matches[ids.index(case.target)].score == (
                result.matches[0].score
            ):
                # The query cannot tell them apart: a different child scores exactly the same.
                report.tied_first += 1
            if len(report.misses) < keep_misses:
                top = result.matches[0].explanation if result.matches else "no match"
                report.misses.append((case, top))
        if any(m.grade == "certain" and m.child_id != case.target for m in result.matches):
            report.false_certain += 1
        if any(m.grade == "certain" and m.child_id == case.target for m in result.matches):
            report.target_certain += 1
    report.seconds = time.perf_counter() - started
    return report


def format_report(title: str, report: QualityReport) -> str:
    """A plain-text table of one report."""
    lines = [
        f"{title}: {report.cases} searches in {report.seconds:.1f}s "
        f"({1000 * report.seconds / max(report.cases, 1):.1f} ms each)",
        f"  top-1 recall        {report.recall_top1:8.2%}",
        f"  tied with the first {report.tied_first / max(report.cases, 1):8.2%}",
        f"  found in results    {report.found / max(report.cases, 1):8.2%}",
        f"  graded certain      {report.target_certain / max(report.cases, 1):8.2%}",
        f"  false certain       {report.false_certain_rate:8.3%}",
        f"  too many matches    {report.too_many / max(report.cases, 1):8.2%}",
        "  by corruption (top-1 recall, cases):",
    ]
    for name in sorted(report.by_corruption):
        total = report.by_corruption[name]
        lines.append(f"    {name:<16} {report.top1_by_corruption[name] / total:8.2%}  {total:6d}")
    return "\n".join(lines)


# --- planted duplicates (the duplicates report's benchmark and tests) ---------------------------

PLANTED_SLIPS = (
    "typo_given",
    "typo_family",
    "nickname",
    "dob_digit",
    "dob_swap",
    "moved",
    "missing",
    "spelling",
    "surname_change",
    "none",
)


def plant_duplicates(
    population: list[PersonFields], n: int, *, seed: int
) -> tuple[list[PersonFields], set[tuple[str, str]]]:
    """n duplicates of randomly chosen born children as a second feed makes them (no NHS number, one
    slip: PLANTED_SLIPS), and the planted (first, second) id pairs. For the duplicates report."""
    rng = random.Random(seed)
    born = [p for p in population if p.birth_date is not None]
    planted: set[tuple[str, str]] = set()
    copies: list[PersonFields] = []
    for index, rec in enumerate(rng.sample(born, n)):
        q = SearchQuery(
            given=rec.given_names[0],
            family=rec.family_names[0],
            birth_date=rec.birth_date,
            sex=rec.sex,
            postcode=rec.postcodes[0] if rec.postcodes else None,
        )
        slip = rng.choice(PLANTED_SLIPS)
        if slip != "none":
            q = CORRUPTIONS[slip](q, rec, rng) or q
        copy = replace(
            rec,
            child_id=f"dup{index:029x}",
            given_names=(q.given or rec.given_names[0],),
            family_names=(q.family or rec.family_names[0],),
            birth_date=q.birth_date,
            sex=q.sex,
            postcodes=(q.postcode,) if q.postcode else (),
            identifiers=(),  # the feed had no NHS number: why it was not matched
        )
        copies.append(copy)
        planted.add((min(rec.child_id, copy.child_id), max(rec.child_id, copy.child_id)))
    return copies, planted
