"""NHS number, UPN and postcode checks."""

import pytest

from directory.identifiers import (
    is_valid_nhs_number,
    is_valid_upn,
    normalise_identifier,
    normalise_postcode,
    postcode_district,
    postcode_sector,
    upn_check_letter,
)


@pytest.mark.parametrize("value", ["9434765919", "943 476 5919", "943-476-5919", "4010232137"])
def test_valid_nhs_numbers(value: str) -> None:
    assert is_valid_nhs_number(value)


@pytest.mark.parametrize("value", ["9434765918", "123456789", "abcdefghij", "", "94347659190"])
def test_invalid_nhs_numbers(value: str) -> None:
    assert not is_valid_nhs_number(value)


def test_nhs_number_whose_check_would_be_ten_is_invalid() -> None:
    # 9 digits whose weighted sum leaves remainder 1 -> check digit 10 -> never issued.
    body = next(
        f"{n:09d}"
        for n in range(100000000, 100001000)
        if sum(int(d) * (10 - i) for i, d in enumerate(f"{n:09d}")) % 11 == 1
    )
    assert not any(is_valid_nhs_number(body + str(d)) for d in range(10))


def test_upn_check_letter_round_trip() -> None:
    body = "801200001001"
    upn = upn_check_letter(body) + body
    assert is_valid_upn(upn)
    wrong = ("A" if upn[0] != "A" else "B") + body
    assert not is_valid_upn(wrong)
    assert not is_valid_upn("I801200001001")  # I, O and S are never check letters


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("ox41ab", "OX4 1AB"), ("SW1A 1AA", "SW1A 1AA"), ("  m1 1ae ", "M1 1AE"), ("b33 8th", "B33 8TH")],
)
def test_postcodes_normalise(raw: str, canonical: str) -> None:
    assert normalise_postcode(raw) == canonical


@pytest.mark.parametrize("raw", ["OX4", "12345", "QX4 1AB", "OX4 1AAA", "not a postcode"])
def test_bad_postcodes(raw: str) -> None:
    assert normalise_postcode(raw) is None


def test_sector_and_district() -> None:
    assert postcode_sector("OX4 1AB") == "OX4 1"
    assert postcode_district("OX4 1AB") == "OX4"


def test_identifier_errors_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="modulus-11"):
        normalise_identifier("nhs", "9434765918")
    with pytest.raises(ValueError, match="unknown identifier system"):
        normalise_identifier("passport", "X")
    assert normalise_identifier("local:mosaic", " M123 ") == "M123"
