"""Text, name, phonetic and postcode normalisation shared by blocking and scoring.

Everything here is pure and deterministic: the same input gives the same keys in every
process, which is what lets the index be rebuilt and queried from different machines.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from metaphone import doublemetaphone  # type: ignore[import-untyped]

# Letters that NFKD does not decompose into ASCII plus a combining mark.
_SPECIAL_LETTERS = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "Æ": "ae",
        "œ": "oe",
        "Œ": "oe",
        "ø": "o",
        "Ø": "o",
        "ł": "l",
        "Ł": "l",
        "đ": "d",
        "Đ": "d",
        "ð": "d",
        "Ð": "d",
        "þ": "th",
        "Þ": "th",
        "ı": "i",
    }
)
# Apostrophes vanish (O'Brien -> obrien); every other non-letter separates words.
_APOSTROPHES = re.compile(r"['\u2019\u2018\u02bc`´]")
_NON_LETTERS = re.compile(r"[^a-z]+")

# Family-name particles: kept inside the full name, never a key on their own
# (every "De La Cruz" would otherwise share a key with every "De Souza").
PARTICLES = frozenset(
    {
        "de",
        "da",
        "di",
        "del",
        "della",
        "der",
        "den",
        "van",
        "von",
        "la",
        "le",
        "du",
        "dos",
        "das",
        "al",
        "el",
        "bin",
        "ibn",
        "ben",
        "st",
        "mac",
        "mc",
        "ap",
        "ni",
        "nic",
        "o",
        "y",
    }
)


@lru_cache(maxsize=131072)
def fold(text: str | None) -> str:
    """Lower-case, strip accents and apostrophes, turn other punctuation into single spaces."""
    if not text:
        return ""
    text = _APOSTROPHES.sub("", text.translate(_SPECIAL_LETTERS))
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return _NON_LETTERS.sub(" ", ascii_only).strip()


@lru_cache(maxsize=131072)
def name_parts(name: str | None) -> tuple[str, ...]:
    """Words of a name after folding: "Smith-Jones" -> ("smith", "jones")."""
    return tuple(fold(name).split())


def compact(name: str | None) -> str:
    """The whole name as one token: "Smith-Jones" -> "smithjones", "O'Brien" -> "obrien"."""
    return "".join(name_parts(name))


@lru_cache(maxsize=131072)
def name_forms(name: str | None) -> tuple[str, ...]:
    """Every form a name may be searched by: the whole name, then each non-particle part.

    "Smith-Jones" -> ("smithjones", "smith", "jones"); "de la Cruz" -> ("delacruz", "cruz").
    """
    parts = name_parts(name)
    if not parts:
        return ()
    forms = [compact(name)]
    if len(parts) > 1:
        forms.extend(p for p in parts if p not in PARTICLES and len(p) > 1 and p not in forms)
    return tuple(forms)


@lru_cache(maxsize=65536)
def phonetic(token: str) -> tuple[str, ...]:
    """Double Metaphone codes (primary, then alternate if different) of one folded token."""
    if not token:
        return ()
    primary, alternate = doublemetaphone(token)
    codes = [str(primary)] if primary else []
    if alternate and alternate != primary:
        codes.append(str(alternate))
    return tuple(codes)


def primary_phonetic(token: str) -> str:
    """The primary Double Metaphone code, or the token itself when it has none."""
    codes = phonetic(token)
    return codes[0] if codes else token


# --- postcodes -------------------------------------------------------------------------

_OUTWARD = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")
_INWARD = re.compile(r"^[0-9][A-Z]{2}$")


@dataclass(frozen=True, slots=True)
class Postcode:
    """A UK postcode split into the levels the matcher compares (inward part may be absent)."""

    outward: str
    inward: str | None

    @property
    def full(self) -> str | None:
        """ "OX4 1AB", or None for an outward code alone."""
        return f"{self.outward} {self.inward}" if self.inward else None

    @property
    def sector(self) -> str | None:
        """ "OX4 1": a few thousand addresses."""
        return f"{self.outward} {self.inward[0]}" if self.inward else None

    @property
    def district(self) -> str:
        """ "OX4": the outward code."""
        return self.outward

    @property
    def area(self) -> str:
        """ "OX": the letters before the district number."""
        return re.match(r"[A-Z]+", self.outward).group(0)  # type: ignore[union-attr]


@lru_cache(maxsize=65536)
def parse_postcode(text: str | None) -> Postcode | None:
    """Parse a full UK postcode or an outward code ("ox4 1ab", "OX41AB", "ox4"); None if neither."""
    if not text:
        return None
    squashed = re.sub(r"[^A-Za-z0-9]", "", text).upper()
    if _OUTWARD.match(squashed):
        return Postcode(squashed, None)
    if len(squashed) >= 5:
        outward, inward = squashed[:-3], squashed[-3:]
        if _OUTWARD.match(outward) and _INWARD.match(inward):
            return Postcode(outward, inward)
    return None


def normalise_postcode(text: str | None) -> str | None:
    """Canonical full postcode ("OX4 1AB") or outward code ("OX4"); None if not a postcode."""
    parsed = parse_postcode(text)
    if parsed is None:
        return None
    return parsed.full or parsed.outward


# --- dates ---------------------------------------------------------------------------------


def swapped_day_month(value: date) -> date | None:
    """The date with day and month exchanged, if that is a different valid date."""
    if value.day == value.month or value.day > 12:
        return None
    try:
        return value.replace(month=value.day, day=value.month)
    except ValueError:
        return None


@lru_cache(maxsize=65536)
def ymd(value: date) -> str:
    """The date as its eight YYYYMMDD digits (zero-padded: strftime drops a leading zero of a year)."""
    return f"{value.year:04d}{value.month:02d}{value.day:02d}"


def differing_digits(a: date, b: date) -> list[int]:
    """The positions (0-7) of the YYYYMMDD digits where two dates differ."""
    sa, sb = ymd(a), ymd(b)
    return [i for i in range(8) if sa[i] != sb[i]]


def digit_differences(a: date, b: date) -> int:
    """How many of the eight YYYYMMDD digits differ (a typing slip changes one)."""
    return len(differing_digits(a, b))


# --- identifiers ---------------------------------------------------------------------------


def normalise_identifier(system: str, value: str) -> str:
    """Canonical identifier value: NHS digits only, UPN upper case, local ids trimmed."""
    if system == "nhs":
        return re.sub(r"[\s-]", "", value)
    if system == "upn":
        return value.strip().upper()
    return value.strip()
