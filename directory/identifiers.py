"""Checks for the identifiers and codes a child record carries: NHS number, UPN, UK postcode."""

from __future__ import annotations

import re

NHS_NUMBER_SYSTEM = "nhs"
UPN_SYSTEM = "upn"
LOCAL_PREFIX = "local:"
_FOREIGN_SYSTEM = re.compile(r"^(?:https?://|urn:)[^\s]{1,240}$")


def is_foreign_system(system: str) -> bool:
    """Whether a system is another organisation's identifier system, kept as the absolute URI it
    was sent with (a FHIR Patient's identifier.system the directory does not declare)."""
    return bool(_FOREIGN_SYSTEM.match(system))


_UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"  # 23 letters: I, O, S excluded by the DfE
_POSTCODE = re.compile(
    r"^(GIR ?0AA|[A-PR-UWYZ][0-9][0-9A-HJKPSTUW]? ?[0-9][ABD-HJLNP-UW-Z]{2}"
    r"|[A-PR-UWYZ][A-HK-Y][0-9][0-9ABEHMNPRVWXY]? ?[0-9][ABD-HJLNP-UW-Z]{2})$"
)


def nhs_check_digit(first_nine: str) -> int | None:
    """Return the modulus-11 check digit for nine digits, or None when no valid digit exists."""
    total = sum(int(d) * (10 - i) for i, d in enumerate(first_nine))
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def normalise_nhs_number(value: str) -> str:
    """Strip spaces and dashes from an NHS number."""
    return re.sub(r"[\s-]", "", value)


def is_valid_nhs_number(value: str) -> bool:
    """True when the value is ten digits whose last is the modulus-11 check digit."""
    digits = normalise_nhs_number(value)
    if not re.fullmatch(r"\d{10}", digits):
        return False
    return nhs_check_digit(digits[:9]) == int(digits[9])


def upn_check_letter(body: str) -> str:
    """Return the check letter for the 12 characters after a UPN's first letter."""
    weights = range(2, 14)
    total = 0
    for weight, char in zip(weights, body, strict=True):
        total += weight * (_UPN_LETTERS.index(char) if char.isalpha() else int(char))
    return _UPN_LETTERS[total % 23]


def is_valid_upn(value: str) -> bool:
    """True for a 13-character Unique Pupil Number whose first letter is its check letter."""
    upn = value.strip().upper()
    if not re.fullmatch(r"[A-HJ-NP-RT-Z]\d{11}[0-9A-HJ-NP-RT-Z]", upn):
        return False
    return upn_check_letter(upn[1:]) == upn[0]


def normalise_postcode(value: str) -> str | None:
    """Return a UK postcode in canonical form ("OX4 1AB"), or None when it is not one."""
    compact = re.sub(r"\s+", "", value).upper()
    if len(compact) < 5 or len(compact) > 7:
        return None
    formatted = f"{compact[:-3]} {compact[-3:]}"
    return formatted if _POSTCODE.match(formatted) else None


def postcode_sector(postcode: str) -> str:
    """The sector of a canonical postcode: "OX4 1AB" -> "OX4 1"."""
    return postcode[:-2]


def postcode_district(postcode: str) -> str:
    """The district (outward code) of a canonical postcode: "OX4 1AB" -> "OX4"."""
    return postcode.split(" ")[0]


def normalise_identifier(system: str, value: str) -> str:
    """Return the stored form of an identifier value, or raise ValueError naming what is wrong."""
    if system == NHS_NUMBER_SYSTEM:
        digits = normalise_nhs_number(value)
        if not is_valid_nhs_number(digits):
            raise ValueError(
                f"'{value}' is not a valid NHS number: it must be 10 digits and pass the "
                "modulus-11 check; check it against the child's health record"
            )
        return digits
    if system == UPN_SYSTEM:
        upn = value.strip().upper()
        if not is_valid_upn(upn):
            raise ValueError(
                f"'{value}' is not a valid Unique Pupil Number: it must be 13 characters, "
                "a check letter then 11 digits and a final digit or letter"
            )
        return upn
    if (system.startswith(LOCAL_PREFIX) and len(system) > len(LOCAL_PREFIX)) or is_foreign_system(system):
        cleaned = value.strip()
        if not cleaned or len(cleaned) > 64:
            raise ValueError("a local or foreign identifier must have between 1 and 64 characters")
        return cleaned
    raise ValueError(
        f"unknown identifier system '{system}': use 'nhs', 'upn' or 'local:<name of the system>'"
    )
