"""What every mapper shares: MappingError, validation with the R4B models, references, telecom,
extensions, dates and meta. Pure functions, no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from directory.bounds import DATE_RANGE, date_in_bounds
from interop import systems as S

LEVEL_DISPLAY = {1: "Universal", 2: "Additional / targeted", 3: "Complex", 4: "Acute / statutory"}
"""The words of each level of need (1-4)."""


class MappingError(ValueError):
    """A FHIR resource that does not fit the domain; `where` is a FHIRPath, `code` an issue type."""

    def __init__(self, message: str, *, where: str | None = None, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.code = code


def validated(resource: dict[str, Any]) -> dict[str, Any]:
    """Validate a resource with the fhir.resources R4B model of its type; return its JSON form."""
    kind = resource.get("resourceType")
    if not isinstance(kind, str):
        raise MappingError("The resource has no resourceType.", where="resourceType")
    try:
        model = get_fhir_model_class(kind)
    except KeyError:
        raise MappingError(f"'{kind}' is not a FHIR resource type.", where="resourceType") from None
    try:
        obj = model.model_validate(resource)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "__root__")
        raise MappingError(
            f"{kind} is not valid FHIR: {first.get('msg', 'invalid')}", where=f"{kind}.{where}".rstrip(".")
        ) from None
    except (TypeError, AttributeError, KeyError):
        # fhir.resources' own validators (url, uri) fail this way on a value of the wrong JSON type,
        # and fhir_core's with KeyError on a nested resource (contained, Parameters) of an unknown type
        raise MappingError(f"{kind} is not valid FHIR: a value has the wrong type.", where=kind) from None
    out: dict[str, Any] = obj.model_dump(mode="json", exclude_none=True)
    return out


def ref_to(kind: str, id_: uuid.UUID | str | None, display: str | None = None) -> dict[str, Any] | None:
    """A Reference to 'Kind/id' (with a display when given); None when there is no id."""
    if id_ is None:
        return None
    out: dict[str, Any] = {"reference": f"{kind}/{fhir_id(id_)}"}
    if display:
        out["display"] = display
    return out


def fhir_id(id_: uuid.UUID | str) -> str:
    """The FHIR id of a domain id."""
    return str(id_)


def ref_id(reference: Any, kind: str, *, where: str) -> uuid.UUID:
    """The uuid in a reference 'Kind/<uuid>' (also accepts absolute URLs ending so)."""
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        raise MappingError(f"Give a reference to a {kind}.", where=where)
    parts = reference["reference"].rstrip("/").split("/")
    # a PractitionerRole shares its practitioner's id here, so it may stand for the Practitioner
    same = len(parts) >= 2 and (
        parts[-2] == kind or (kind == "Practitioner" and parts[-2] == "PractitionerRole")
    )
    if not same:
        raise MappingError(f"The reference must point at a {kind} ('{kind}/<id>').", where=where)
    try:
        return uuid.UUID(parts[-1])
    except ValueError:
        raise MappingError(f"No {kind} has the id '{parts[-1]}'.", where=where, code="not-found") from None


def telecom_of(phone: str | None, email: str | None, use: str = "work") -> list[dict[str, Any]]:
    """ContactPoints for a phone number and an email address (either may be missing)."""
    out: list[dict[str, Any]] = []
    if phone:
        out.append({"system": "phone", "value": phone, "use": use})
    if email:
        out.append({"system": "email", "value": email, "use": use})
    return out


def phone_email(telecom: Iterable[dict[str, Any]] | None) -> tuple[str | None, str | None]:
    """The first phone number and the first email address among ContactPoints."""
    phone = email = None
    for t in telecom or []:
        if t.get("system") == "phone" and phone is None:
            phone = t.get("value")
        elif t.get("system") == "email" and email is None:
            email = t.get("value")
    return phone, email


def extension(url: str, **value: Any) -> dict[str, Any]:
    """An extension with its value (e.g. valueBoolean=True)."""
    return {"url": url, **value}


def extension_value(resource: dict[str, Any], url: str, key: str) -> Any:
    """The value (`key`, e.g. 'valueBoolean') of a resource's extension with this url, or None."""
    for ext in resource.get("extension") or []:
        if ext.get("url") == url:
            return ext.get(key)
    return None


def parse_date(value: Any, where: str) -> date | None:
    """A date (YYYY-MM-DD) within the directory's bounds, or None when absent; MappingError otherwise."""
    if value is None:
        return None
    try:
        parsed = date.fromisoformat(str(value)[:10])
    except ValueError:
        raise MappingError(f"'{value}' is not a date (YYYY-MM-DD).", where=where) from None
    if not date_in_bounds(parsed):
        raise MappingError(f"'{value}': dates must fall {DATE_RANGE}.", where=where)
    return parsed


def meta_of(
    version: int | None = None, *, restricted: bool = False, updated: datetime | None = None
) -> dict[str, Any]:
    """A meta element: versionId, lastUpdated, and the restricted-confidentiality label."""
    meta: dict[str, Any] = {}
    if version is not None:
        meta["versionId"] = str(version)
    if updated is not None:
        meta["lastUpdated"] = updated.isoformat()
    if restricted:
        meta["security"] = [{"system": S.V3_CONFIDENTIALITY, "code": "R", "display": "restricted"}]
    return meta


def is_restricted(resource: dict[str, Any]) -> bool:
    """Whether a resource is labelled restricted (or very restricted)."""
    for sec in (resource.get("meta") or {}).get("security") or []:
        if sec.get("system") == S.V3_CONFIDENTIALITY and sec.get("code") in {"R", "V"}:
            return True
    return False
