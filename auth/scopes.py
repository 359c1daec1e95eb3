"""The one rule that decides which scopes are known (may be registered for a client, granted, and
asked for at sign-in).

A scope is known when it is one the server advertises (auth.config.SUPPORTED_SCOPES, published in
the metadata and smart-configuration), or a SMART v2 scope ``system|user/<Type>.<letters>`` (letters an
ordered subset of ``cruds``) or v1 scope (``.read``, ``.write``) whose every permission some /fhir
route's policy accepts. The FHIR routes' policies are where each interaction's scope is decided
(auth/policy.py), and the CapabilityStatement is built from the same tables, so whatever it
advertises can be granted: system/Flag.cu as much as system/Subscription.crds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from auth.config import SUPPORTED_SCOPES
from auth.policy import ROUTE_POLICIES, Policy

_SMART = re.compile(r"^(system|user)/([A-Z][A-Za-z]+)\.(c?r?u?d?s?|read|write)$")
_V1 = {"read": "rs", "write": "cud"}


def _served() -> dict[str, set[str]]:
    """Per FHIR resource type, the permission letters some route asks for (from its policy's hint)."""
    out: dict[str, set[str]] = {}
    for policy in ROUTE_POLICIES.values():
        if not isinstance(policy, Policy):
            continue
        for hint in policy.hint:
            found = _SMART.match(hint.replace("{context}", "system"))
            if found and len(found.group(3)) == 1:
                out.setdefault(found.group(2), set()).add(found.group(3))
    return out


def is_known(scope: str) -> bool:
    """Whether the scope is advertised, or a SMART scope on a served type granting only what is served."""
    if scope in SUPPORTED_SCOPES:
        return True
    found = _SMART.match(scope)
    if not found or not found.group(3):
        return False
    letters = set(_V1.get(found.group(3), found.group(3)))
    served = _served().get(found.group(2), set())
    if found.group(3) in _V1:
        return bool(letters & served)
    return letters <= served


def unknown(scopes: Iterable[str]) -> list[str]:
    """The scopes among these that are not known, sorted (empty when all are)."""
    return sorted({s for s in scopes if not is_known(s)})
