"""Notification subscriptions <-> Subscription (rest-hook): the criteria this server can deliver."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from interop import systems as S
from interop.mapping.common import MappingError, extension_value, fhir_id, meta_of, validated

# What a rest-hook Subscription may ask for: exactly the events interop/notify.py delivers.
SUBSCRIPTION_CRITERIA: dict[tuple[str, str], str] = {
    ("Flag", "caf-signalled"): "caf-signalled",
    ("Flag", "caf-in-progress"): "caf-started",
    ("Flag", "caf-closed"): "caf-closed",  # also a signal withdrawn
    ("Flag", "lead-professional-in-place"): "lead-professional-changed",
    ("AuditEvent", "shielded-record-viewed"): "shielded-record-viewed",
}
_CRITERIA_PARAM = {"Flag": "code", "AuditEvent": "subtype"}
SIGNATURE_HEADER_NAME = S.SIGNATURE_HEADER
_CRITERIA_SYSTEM = {"Flag": S.FLAG_CODE, "AuditEvent": S.SUBSCRIPTION_EVENT}
CRITERIA_HELP = (
    "Supported criteria: Flag?code= one or more (comma-separated) of caf-signalled, caf-in-progress, "
    "caf-closed, lead-professional-in-place; or AuditEvent?subtype=shielded-record-viewed."
)


@dataclass(frozen=True)
class SubscriptionIn:
    """A rest-hook Subscription read back: the events it asks for and where to post them."""

    events: list[str]
    criteria: str
    endpoint: str
    reason: str
    secret: str | None


def subscription_events(criteria: str) -> list[str]:
    """The notify.py event codes a criteria string asks for; MappingError when it asks for more."""
    kind, _, query = criteria.strip().partition("?")
    name, eq, values = query.partition("=")
    if kind not in _CRITERIA_PARAM or not eq or name != _CRITERIA_PARAM[kind] or "&" in values or not values:
        raise MappingError(
            f"This server cannot notify on '{criteria}'. {CRITERIA_HELP}",
            where="Subscription.criteria",
            code="not-supported",
        )
    events = []
    for token in values.split(","):
        system, bar, code = token.partition("|")
        if not bar:
            system, code = "", token
        event = SUBSCRIPTION_CRITERIA.get((kind, code))
        if event is None or (system and system != _CRITERIA_SYSTEM[kind]):
            raise MappingError(
                f"This server cannot notify on '{token}'. {CRITERIA_HELP}",
                where="Subscription.criteria",
                code="not-supported",
            )
        events.append(event)
    return sorted(set(events))


def subscription_in(resource: dict[str, Any]) -> SubscriptionIn:
    """Subscription -> what notify.subscribe takes (rest-hook only; the notification is id-only)."""
    validated(resource)
    channel = resource.get("channel") or {}
    if channel.get("type") != "rest-hook":
        raise MappingError(
            "Only rest-hook channels are supported.", where="Subscription.channel.type", code="not-supported"
        )
    if channel.get("payload") not in (None, S.FHIR_JSON, "application/json"):
        raise MappingError(
            f"Notifications are sent as {S.FHIR_JSON} (an id-only history Bundle).",
            where="Subscription.channel.payload",
            code="not-supported",
        )
    if channel.get("header"):
        raise MappingError(
            "Custom headers are not sent: give a signing secret in the extension "
            f"{S.EXT_SIGNING_SECRET} and check the {SIGNATURE_HEADER_NAME} header instead.",
            where="Subscription.channel.header",
            code="not-supported",
        )
    if resource.get("status") not in ("requested", "active"):
        raise MappingError(
            "Create a Subscription with status requested (or active).", where="Subscription.status"
        )
    if resource.get("end"):
        raise MappingError(
            "Subscriptions here do not end by date: delete it instead.",
            where="Subscription.end",
            code="not-supported",
        )
    endpoint = channel.get("endpoint")
    if not endpoint:
        raise MappingError(
            "Give the endpoint to post to.", where="Subscription.channel.endpoint", code="required"
        )
    criteria = str(resource.get("criteria", ""))
    secret = extension_value(resource, S.EXT_SIGNING_SECRET, "valueString")
    return SubscriptionIn(
        events=subscription_events(criteria),
        criteria=criteria,
        endpoint=str(endpoint),
        reason=str(resource.get("reason", "")),
        secret=secret,
    )


def subscription(sub: Any) -> dict[str, Any]:
    """A notify subscription -> Subscription (the signing secret is never shown)."""
    res = {
        "resourceType": "Subscription",
        "id": fhir_id(sub.id),
        "meta": meta_of(updated=sub.updated_at),
        "status": "active" if sub.status == "active" else "off",
        "reason": sub.reason or "childindex notifications",
        "criteria": sub.criteria or "",
        "channel": {"type": "rest-hook", "endpoint": sub.endpoint, "payload": S.FHIR_JSON},
    }
    return validated(res)
