"""Audit log entry -> AuditEvent (read-only, for auditors), and back for round-trip checks."""

from __future__ import annotations

from typing import Any

from directory.models import AuditEvent
from interop import systems as S
from interop.mapping.common import meta_of, ref_id, ref_to, validated

_PURPOSE = {
    "considering-caf": ("TREAT", "treatment"),
    "direct-care": ("TREAT", "treatment"),
    "caf-coordination": ("CAREMGT", "care management"),
    "safeguarding-concern": ("PUBHLTH", "public health"),
    "administration": ("HOPERAT", "healthcare operations"),
    "audit": ("HSYSADMIN", "health system administration"),
}
_OUTCOME = {"success": "0", "too-many": "4", "refused": "4", "denied": "8", "alert": "0"}


def _agent(e: AuditEvent) -> dict[str, Any]:
    """Who acted: subject, role, organisation, client and purpose of use."""
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {"system": S.PARTICIPATION_TYPE, "code": "IRCP" if e.actor_role == "system" else "AUT"}
            ]
        },
        "who": {"identifier": {"system": S.SUBJECT, "value": e.actor_subject}, "display": e.actor_subject},
        "name": e.actor_organisation,
        "requestor": True,
        "role": [{"text": e.actor_role}],
    }
    if e.client_id:
        agent["altId"] = e.client_id
    if e.purpose:
        code, display = _PURPOSE.get(e.purpose, ("TREAT", "treatment"))
        agent["purposeOfUse"] = [
            {"coding": [{"system": S.V3_ACT_REASON, "code": code, "display": display}], "text": e.purpose}
        ]
    return agent


def audit_event(e: AuditEvent) -> dict[str, Any]:
    """An audit log entry -> AuditEvent (read-only, for auditors); carries the chain hash."""
    action = "R" if (".read" in e.action or e.action.startswith("search")) else "E"
    if e.action.endswith((".create", ".record", ".register", ".signal")):
        action = "C"
    agent = _agent(e)
    res: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(e.seq),
        "meta": meta_of(updated=e.at),  # an entry never changes
        "type": {"system": S.AUDIT_EVENT_TYPE, "code": "rest", "display": "Restful Operation"},
        "subtype": [{"system": S.AUDIT_ACTION, "code": e.action}],
        "action": action,
        "recorded": e.at.isoformat(),
        "outcome": _OUTCOME.get(e.outcome, "4"),
        "outcomeDesc": e.outcome,
        "agent": [agent],
        "source": {
            "observer": {"display": "childindex"},
            "type": [{"system": S.AUDIT_SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "entity": [
            {
                "type": {"system": S.AUDIT_ENTITY_TYPE, "code": "4", "display": "Other"},
                "name": "hash-chain",
                "detail": [
                    {"type": "prev_hash", "valueString": e.prev_hash},
                    {"type": "hash", "valueString": e.hash},
                ],
            }
        ],
    }
    if e.request_id:
        res["entity"][0]["detail"].append({"type": "request_id", "valueString": e.request_id})
    if e.target_type == "child" and e.target_id:
        res["entity"].insert(
            0,
            {
                "what": ref_to("Patient", e.target_id),
                "type": {"system": S.AUDIT_ENTITY_TYPE, "code": "1", "display": "Person"},
            },
        )
    return validated(res)


def audit_event_in(resource: dict[str, Any]) -> dict[str, Any]:
    """AuditEvent -> its audit fields (for round-trip checks; the log is never written from FHIR)."""
    validated(resource)
    agent = resource["agent"][0]
    purpose = ((agent.get("purposeOfUse") or [{}])[0]).get("text")
    target = None
    details: dict[str, str] = {}
    for entity in resource.get("entity") or []:
        if entity.get("what"):
            target = str(ref_id(entity["what"], "Patient", where="AuditEvent.entity.what"))
        for d in entity.get("detail") or []:
            details[d["type"]] = d.get("valueString")
    return {
        "seq": int(resource["id"]),
        "action": resource["subtype"][0]["code"],
        "actor_subject": agent["who"]["identifier"]["value"],
        "actor_role": agent["role"][0]["text"],
        "actor_organisation": agent.get("name"),
        "client_id": agent.get("altId"),
        "purpose": purpose,
        "outcome": resource.get("outcomeDesc"),
        "target_id": target,
        "prev_hash": details.get("prev_hash"),
        "hash": details.get("hash"),
        "request_id": details.get("request_id"),
    }
