"""A kick-off's parameters, checked before anything is written: `Prefer: respond-async`,
`_outputFormat`, `_since` (the catalogue history's instant parser), `_type` (each type known and
permitted by auth.policy.may_export); other parameters ignored unless `Prefer: handling=strict`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from auth.policy import FHIR_CHILD_TYPES, may_export
from directory.models import Actor
from interop import params as P
from interop.outcome import FhirError
from interop.sync import parse_since

OUTPUT_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")
EXPORT_TYPES = FHIR_CHILD_TYPES
"""What an export holds: the child's resources (the catalogue's stay in sync with `_history`)."""
KNOWN = ("_outputFormat", "_since", "_type")


@dataclass(frozen=True)
class Kickoff:
    """What one kick-off asks for."""

    types: tuple[str, ...]
    since: datetime | None


def _one(items: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in items if k == name]
    if len(values) > 1:
        raise FhirError(400, "invalid", f"{name} may be given once.", where=name)
    return values[0] if values else None


def parse_kickoff(
    items: Sequence[tuple[str, str]], *, prefer: str, actor: Actor, scopes: frozenset[str] | None
) -> Kickoff:
    """The kick-off's parameters (400 OperationOutcome naming the first one that is wrong)."""
    prefs = {p.strip().lower() for p in prefer.split(",")}
    if "respond-async" not in prefs:
        raise FhirError(
            400, "invalid", "A Bulk Data export runs in the background: send 'Prefer: respond-async'."
        )
    if "handling=strict" in {p.replace(" ", "") for p in prefs}:
        unknown = sorted({k for k, _ in items if k not in KNOWN})
        if unknown:
            raise FhirError(
                400, "not-supported", f"Unknown parameter {unknown[0]} {P.STRICT_REFUSAL}", where=unknown[0]
            )
    fmt = _one(items, "_outputFormat")
    if fmt is not None and fmt not in OUTPUT_FORMATS:
        raise FhirError(
            400,
            "not-supported",
            f"_outputFormat '{fmt[:64]}' is not supported: use {', '.join(OUTPUT_FORMATS)}.",
            where="_outputFormat",
        )
    since = parse_since(_one(items, "_since"))
    raw = _one(items, "_type")
    asked = [t.strip() for t in raw.split(",")] if raw is not None else []
    unknown = [t for t in asked if t not in EXPORT_TYPES]
    if unknown:
        raise FhirError(
            400,
            "not-supported",
            f"_type: this server does not export {', '.join(repr(t[:64]) for t in unknown[:5])}; it exports "
            f"{', '.join(EXPORT_TYPES)} (the catalogue's types through their _history).",
            where="_type",
        )
    if asked:
        refused = [t for t in asked if not may_export(actor, scopes, t)]
        if refused:
            raise FhirError(
                400,
                "forbidden",
                f"_type: your access token does not let you export {', '.join(refused)}: it needs "
                f"directory.export and system/{refused[0]}.rs (or a wider scope granting the same).",
                where="_type",
            )
        return Kickoff(tuple(dict.fromkeys(asked)), since)
    types = tuple(t for t in EXPORT_TYPES if may_export(actor, scopes, t))
    if not types:
        raise FhirError(
            403,
            "forbidden",
            "Your access token lets you export nothing: it needs directory.export and the read scope "
            "of each type to export (system/Patient.rs, system/EpisodeOfCare.rs, ...).",
        )
    return Kickoff(types, since)
