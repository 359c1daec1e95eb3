"""Reading HTML forms: dates from GOV.UK date inputs, pydantic errors as plain messages beside the fields.

One rule for every form (issue #20): everything is validated in one round (`collect`, `build(errors=)`)
and a validator's own text never reaches a page (`plain_message`)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import date
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class FormErrors(Exception):
    """Field -> message, shown in the error summary and beside each field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


async def _form(request: Request) -> dict[str, Any]:
    data = await request.form()
    out: dict[str, Any] = {}
    for key in data:
        values = [str(v) for v in data.getlist(key)]
        out[key] = values if len(values) > 1 or key.endswith("[]") else values[0]
    return out


FormData = Annotated[dict[str, Any], Depends(_form)]


def text(form: dict[str, Any], key: str) -> str | None:
    """A stripped text field, or None when empty."""
    value = form.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    value = (value or "").strip()
    return value or None


def many(form: dict[str, Any], key: str) -> list[str]:
    """Every value of a repeated field (checkboxes)."""
    value = form.get(key)
    if value is None:
        return []
    return [v for v in (value if isinstance(value, list) else [value]) if v]


def date_field(form: dict[str, Any], prefix: str, label: str, *, required: bool = False) -> date | None:
    """A date from a GOV.UK date input (prefix-day, prefix-month, prefix-year)."""
    parts = [text(form, f"{prefix}-{p}") for p in ("day", "month", "year")]
    if not any(parts):
        if required:
            raise FormErrors({prefix: f"Enter {label}"})
        return None
    missing = [name for name, value in zip(("a day", "a month", "a year"), parts, strict=True) if not value]
    if missing:
        raise FormErrors({prefix: f"{label[0].upper()}{label[1:]} must include {' and '.join(missing)}"})
    try:
        day, month, year = (int(p or "") for p in parts)
        if year < 1000:
            raise ValueError
        return date(year, month, day)
    except ValueError:
        raise FormErrors({prefix: f"{label[0].upper()}{label[1:]} must be a real date"}) from None


def _cap(label: str) -> str:
    return f"{label[0].upper()}{label[1:]}" if label else label


# The one translation of a validator's error into words a person can act on (issue #20): keyed by
# pydantic's error type, never by its message, so no "Input should be ..." ever reaches a page.
_ENTER = frozenset({"missing", "string_type", "none_required", "string_too_short", "too_short"})
_CHOOSE = frozenset(
    {"uuid_parsing", "uuid_type", "enum", "literal_error", "bool_parsing", "bool_type", "is_instance_of"}
)
_NUMBER = frozenset({"int_parsing", "int_type", "float_parsing", "float_type", "int_from_float"})
_DATE = frozenset({"date_parsing", "date_type", "date_from_datetime_parsing", "datetime_parsing"})


def plain_message(err: dict[str, Any], label: str, *, chosen: bool = False) -> str:
    """A validator error (pydantic's `errors()` item) in plain words about the field called `label`.

    `chosen`: the field is picked from options (radios, a list), so any problem with it reads
    "Choose ..."; otherwise the message says what to enter. Unknown kinds get a plain fallback.
    """
    kind = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    if chosen or kind in _CHOOSE:
        return f"Choose {label}"
    if kind in _ENTER:
        return f"Enter {label}"
    most = ctx.get("max_length")
    if kind == "string_too_long":
        return f"{_cap(label)} must be {most} characters or fewer" if most else f"{_cap(label)} is too long"
    if kind == "too_long":  # a list: too many chosen
        return f"Choose no more than {most} for {label}" if most else f"Choose fewer for {label}"
    if kind in _NUMBER:
        return f"Enter {label} as a whole number, like 2"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return f"Enter {label} within the range shown"
    if kind in _DATE:
        return f"{_cap(label)} must be a real date"
    if kind == "value_error":
        # Our own validators' messages ("give the reason the record is shielded") are written as
        # advice already; the bounds on dates name the field.
        said = str(err.get("msg", "")).removeprefix("Value error, ").strip()
        if said.startswith("dates must fall"):
            return f"{_cap(label)} must fall{said.removeprefix('dates must fall')}"
        if said and "should" not in said and "valid" not in said:
            return _cap(said)
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return "This form had something it should not; go back and try again"
    return f"Check {label}: it is not in a form we can use"


def collect(errors: dict[str, str], call: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Call a field reader (date_field, build...) keeping its problems in `errors` instead of
    stopping at the first: every form reports every problem in one round. None on a problem."""
    try:
        return call(*args, **kwargs)
    except FormErrors as exc:
        for key, message in exc.errors.items():
            errors.setdefault(key, message)
        return None


def build(
    model: type[M],
    data: dict[str, Any],
    labels: dict[str, str] | None = None,
    *,
    chosen: Collection[str] = (),
    errors: dict[str, str] | None = None,
    keys: dict[str, str] | None = None,
) -> M:
    """Validate into a model; errors become plain messages keyed by the form's field.

    `labels` names each field for the messages; `chosen` lists the fields picked from options.
    `errors` are problems the form already found (a date that is not a date...): they are reported
    with these, in one round, and a field they cover (mapped through `keys`, model field -> form
    field) is not reported twice.
    """
    found: dict[str, str] = dict(errors or {})
    keys = keys or {}
    try:
        result = model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "form"
            key = keys.get(field, field)
            if key in found:
                continue
            label = (labels or {}).get(field, field.replace("_", " "))
            found[key] = plain_message(dict(err), label, chosen=field in chosen)
        raise FormErrors(found) from None
    if found:
        raise FormErrors(found)
    return result
