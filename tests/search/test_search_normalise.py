"""Normalisation, phonetics, postcodes, dates and identifier checks."""

from __future__ import annotations

from datetime import date

import pytest

from search.nicknames import GROUPS, are_equivalent, formal_names, groups_of
from search.normalise import (
    compact,
    digit_differences,
    fold,
    name_forms,
    normalise_identifier,
    normalise_postcode,
    parse_postcode,
    phonetic,
    swapped_day_month,
)


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("O'Brien", "obrien"),
        ("O’Brien", "obrien"),
        ("  ZOË  ", "zoe"),
        ("Siân", "sian"),
        ("Łukasz Wiśniewski", "lukasz wisniewski"),
        ("Smith-Jones", "smith jones"),
        ("Jean-Luc  d'Arcy", "jean luc darcy"),
        ("Strauß", "strauss"),
        ("Ægir", "aegir"),
        ("", ""),
        (None, ""),
        ("--", ""),
    ],
)
def test_fold(raw: str | None, folded: str) -> None:
    assert fold(raw) == folded


def test_name_forms_split_double_barrelled_and_drop_particles() -> None:
    assert name_forms("Smith-Jones") == ("smithjones", "smith", "jones")
    assert name_forms("Smith Jones") == ("smithjones", "smith", "jones")
    assert name_forms("de la Cruz") == ("delacruz", "cruz")
    assert name_forms("O'Brien") == ("obrien",)
    assert name_forms("") == ()
    assert compact("Mc Donald") == "mcdonald"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("smith", "smyth"),
        ("catherine", "kathryn"),
        ("stephen", "steven"),
        ("mohammed", "muhammad"),
        ("obrien", "obrian"),
        ("phillips", "philips"),
    ],
)
def test_phonetic_codes_agree_for_sound_alikes(a: str, b: str) -> None:
    assert set(phonetic(a)) & set(phonetic(b))


def test_phonetic_codes_differ_for_different_names() -> None:
    assert not set(phonetic("smith")) & set(phonetic("jones"))
    assert phonetic("") == ()


@pytest.mark.parametrize(
    ("raw", "full", "sector", "district"),
    [
        ("ox4 1ab", "OX4 1AB", "OX4 1", "OX4"),
        ("OX41AB", "OX4 1AB", "OX4 1", "OX4"),
        (" sw1a 1aa ", "SW1A 1AA", "SW1A 1", "SW1A"),
        ("M1 1AE", "M1 1AE", "M1 1", "M1"),
        ("ec1a-1bb", "EC1A 1BB", "EC1A 1", "EC1A"),
        ("B33 8TH", "B33 8TH", "B33 8", "B33"),
    ],
)
def test_postcode_levels(raw: str, full: str, sector: str, district: str) -> None:
    pc = parse_postcode(raw)
    assert pc is not None
    assert (pc.full, pc.sector, pc.district) == (full, sector, district)
    assert normalise_postcode(raw) == full


def test_outward_code_alone_and_nonsense() -> None:
    pc = parse_postcode("ox4")
    assert pc is not None and pc.full is None and pc.district == "OX4" and pc.area == "OX"
    assert normalise_postcode("ox4") == "OX4"
    for bad in ("", None, "hello", "12345", "OX4 1A", "4OX 1AB"):
        assert parse_postcode(bad) is None


def test_swapped_day_month() -> None:
    assert swapped_day_month(date(2015, 3, 7)) == date(2015, 7, 3)
    assert swapped_day_month(date(2015, 3, 13)) is None  # no 13th month
    assert swapped_day_month(date(2015, 5, 5)) is None  # same date
    assert swapped_day_month(date(2016, 2, 30 - 1)) is None  # 29 > 12


def test_digit_differences() -> None:
    assert digit_differences(date(2015, 3, 7), date(2015, 3, 7)) == 0
    assert digit_differences(date(2015, 3, 7), date(2016, 3, 7)) == 1
    assert digit_differences(date(2015, 3, 17), date(2015, 3, 7)) == 1


def test_identifier_normalisation() -> None:
    assert normalise_identifier("nhs", "943 476 5919") == "9434765919"
    assert normalise_identifier("upn", " a123456789012 ") == "A123456789012"
    assert normalise_identifier("local:mosaic", " M-7 ") == "M-7"


def test_nickname_table_is_large_and_well_formed() -> None:
    assert len(GROUPS) >= 250
    for group in GROUPS:
        assert len(group) >= 2
        assert all(name == compact(name) for name in group)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("alex", "alexander"),
        ("alex", "alexandra"),
        ("sasha", "alexander"),
        ("bill", "william"),
        ("will", "william"),
        ("billy", "william"),
        ("liam", "william"),
        ("kate", "katherine"),
        ("katie", "catherine"),
        ("kathryn", "catherine"),
        ("liz", "elizabeth"),
        ("beth", "elizabeth"),
        ("jack", "john"),
        ("harry", "henry"),
        ("peggy", "margaret"),
        ("alfie", "alfred"),
        ("bob", "robert"),
        ("ted", "edward"),
        ("sam", "samantha"),
        ("mo", "mohammed"),
        ("muhammad", "mohammed"),
    ],
)
def test_nicknames_are_equivalent(a: str, b: str) -> None:
    assert are_equivalent(a, b)
    assert are_equivalent(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("alexander", "alexandra"),
        ("john", "sean"),
        ("samuel", "samantha"),
        ("william", "robert"),
        ("charles", "charlotte"),
    ],
)
def test_different_names_are_not_equivalent(a: str, b: str) -> None:
    assert not are_equivalent(a, b)


def test_formal_names() -> None:
    assert "william" in formal_names("bill")
    assert groups_of("zzzz") == frozenset()
