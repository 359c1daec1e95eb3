"""Blocking keys: the few exact keys a record is indexed under and a query looks candidates up by.

A backend only turns keys into candidates (search.embedded, search.resident, search.elasticsearch);
the keys themselves are made here, the same for every backend, from the same name forms and
phonetic codes the scorer compares (search.normalise, search.nicknames).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from string import ascii_lowercase

from search.nicknames import groups_of
from search.normalise import (
    name_forms,
    normalise_identifier,
    parse_postcode,
    phonetic,
    primary_phonetic,
    swapped_day_month,
)
from search.port import PersonFields, SearchQuery


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
        for i in giv_initials:
            keys[f"gi|{i}|{ds}"] = None  # survives a new family name and a slip in the given name
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
    full = parse_postcode(q.postcode)
    if full is not None and full.full and not q.given:
        # a family name at a full postcode (no date of birth): every child indexed at that postcode,
        # whatever their given name's initial (a few households), for the scorer to weigh
        for initial in ascii_lowercase:
            keys[f"pg|{full.full.replace(' ', '')}|{initial}"] = None
    if q.given and q.family:
        keys.update(_keys([q.family], [q.given], dates, years, postcodes))
    if q.identifier_system and q.identifier_value:
        keys[identifier_key(q.identifier_system, q.identifier_value)] = None
    return list(keys)
