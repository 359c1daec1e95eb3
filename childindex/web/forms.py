"""Reading HTML forms: dates from GOV.UK date inputs, pydantic errors as messages beside the fields."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


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


def build(model: type[M], data: dict[str, Any], labels: dict[str, str] | None = None) -> M:
    """Validate into a model; errors become friendly messages keyed by field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "form"
            label = (labels or {}).get(field, field.replace("_", " "))
            if err["type"] in ("uuid_parsing", "uuid_type", "enum", "literal_error"):
                errors.setdefault(field, f"Choose {label}")
            elif err["type"] in ("missing", "string_too_short", "string_type", "none_required"):
                errors.setdefault(field, f"Enter {label}")
            else:
                errors.setdefault(field, f"{label[0].upper()}{label[1:]}: {err['msg']}")
        raise FormErrors(errors) from None
