"""Locality -> Group: the children of a local delivery area, as the unit of a Group-level export."""

from __future__ import annotations

from typing import Any

from directory.models import Locality
from interop import systems as S
from interop.mapping.common import fhir_id, meta_of, validated


def group(locality: Locality) -> dict[str, Any]:
    """Locality -> Group (actual, of persons: the children whose record names the locality). Members
    are not listed (a locality holds thousands): `GET /fhir/Group/{id}/$export` exports them."""
    res = {
        "resourceType": "Group",
        "id": fhir_id(locality.id),
        "meta": meta_of(updated=locality.updated_at),
        "identifier": [{"system": S.LOCALITY_CODE, "value": locality.code}],
        "active": True,
        "type": "person",
        "actual": True,
        "name": f"Children of {locality.name}",
        "characteristic": [
            {
                "code": {"text": "local delivery area"},
                "valueReference": {"reference": f"Location/{fhir_id(locality.id)}", "display": locality.name},
                "exclude": False,
            }
        ],
    }
    return validated(res)
