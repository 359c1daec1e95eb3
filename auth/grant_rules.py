"""What a grant may say, whoever writes it (admin API, pages, operator CLI): safe subjects, bounded dates.

Subjects are the names people and systems sign in with: local usernames, e-mail addresses and
UPNs from the upstream provider (`preferred_username`), client ids. They are matched exactly,
shown on pages and written to the audit log, so only characters that look like themselves are
taken: ASCII letters and digits, then also `. _ - @ + ' | :`. No whitespace of any kind, no
control or NUL characters, no bidirectional or zero-width marks, no letters from other scripts
(a Cyrillic "а" would make a second subject that reads as the first).

Dates: training and vetting are days already passed and still within their validity (a stale
date would be refused at the first request anyway); a grant runs at most `max_days` from today;
every date and time lies between the years 2000 and 2199, so nothing overflows when it is moved
to UTC or compared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from directory.errors import InvalidInput

SUBJECT_MAX = 200
_SUBJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+'|:\-]*")
EARLIEST_YEAR, LATEST_YEAR = 2000, 2199


def check_subject(value: Any) -> Any:
    """A subject made only of safe characters (see the module docstring), or ValueError saying which."""
    if not isinstance(value, str):
        return value  # pydantic reports the wrong type itself
    value = value.strip(" ")  # a space typed around a name; any other whitespace is refused
    if not value:
        raise ValueError("enter the username, e-mail address or client id")
    if len(value) > SUBJECT_MAX:
        raise ValueError(f"at most {SUBJECT_MAX} characters")
    if not _SUBJECT.fullmatch(value):
        bad = next((c for c in value if not _SUBJECT.fullmatch("a" + c)), value[0])
        raise ValueError(
            "use only letters A-Z, digits and . _ - @ + ' | : (starting with a letter or digit); "
            f"{ascii(bad)} is not allowed"
        )
    return value


def _bounded_time(value: datetime) -> datetime:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"give a date between {EARLIEST_YEAR} and {LATEST_YEAR}")
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def _bounded_day(value: date) -> date:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"give a date between {EARLIEST_YEAR} and {LATEST_YEAR}")
    return value


Subject = Annotated[str, BeforeValidator(check_subject)]
GrantTime = Annotated[datetime, AfterValidator(_bounded_time)]  # always in UTC once validated
GrantDay = Annotated[date, AfterValidator(_bounded_day)]


@dataclass(frozen=True)
class GrantRules:
    """The configured limits every grant is checked against (CHILDINDEX_GRANT_MAX_DAYS and the validities)."""

    max_days: int = 3 * 365
    training_valid_days: int = 365
    vetting_valid_days: int = 3 * 365

    @classmethod
    def of(cls, cfg: Any) -> GrantRules:
        """The rules of an AuthConfig or Settings (both name the same three values)."""
        return cls(
            max_days=cfg.grant_max_days,
            training_valid_days=cfg.training_valid_days,
            vetting_valid_days=cfg.vetting_valid_days,
        )

    def latest_end(self, now: datetime) -> datetime:
        """The latest a grant made or renewed now may run to: the end of the day `max_days` ahead."""
        return datetime.combine((now + timedelta(days=self.max_days)).date(), time.max, tzinfo=UTC)

    def check_checks_dates(self, *, training: date | None, vetting: date | None, today: date) -> None:
        """Training and vetting dates given are in the past and still valid, or InvalidInput says why."""
        for field, label, day, valid in (
            ("training_completed_on", "information-sharing training", training, self.training_valid_days),
            ("vetting_checked_on", "vetting (DBS) check", vetting, self.vetting_valid_days),
        ):
            if day is None:
                continue
            if day > today:
                raise InvalidInput(
                    f"The date of the {label} ({day:%d %B %Y}) is in the future: record the day it was done.",
                    field=field,
                )
            if day < today - timedelta(days=valid):
                raise InvalidInput(
                    f"The {label} ({day:%d %B %Y}) is older than {valid} days, so access would be "
                    "refused at once: record a current one.",
                    field=field,
                )

    def check_period(self, *, valid_from: datetime, valid_until: datetime, now: datetime) -> None:
        """A grant's dates: it ends after it starts, and no later than `max_days` from today."""
        latest = self.latest_end(now)
        if valid_until > latest or valid_from > latest:
            raise InvalidInput(
                f"A grant may run at most {self.max_days} days from today (to {latest:%d %B %Y}); "
                "renew it nearer the time.",
                field="valid_until" if valid_until > latest else "valid_from",
            )
        if valid_until <= valid_from:
            raise InvalidInput("The end date must be after the start date.", field="valid_until")
