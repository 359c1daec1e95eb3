"""The conformance cases of search parameters, _include / _revinclude, operations and the system-level
interactions (transaction, batch, history-system), merged into `CASES` by conformance_cases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from fhirpy.base.exceptions import OperationOutcome

from interop import params as P
from interop import systems as S
from tests.interop.conformance_bulk import BULK
from tests.interop.conformance_cases import (
    IDS,
    INTERACTIONS,
    Case,
    Ref,
    bundle,
    full_child,
    matches,
    read_json,
)
from tests.interop.conformance_server import Conf
from tests.interop.conformance_versions import VERSIONS
from tests.interop.test_fhir_api import _episode

Params = Callable[[Conf], dict[str, str]]


def found_by(kind: str, params: Params, expect: Ref | None = None, client: str = "fhir") -> Case:
    """A fhirpy search with these parameters finds the expected resource (by default the type's own)."""

    def case(c: Conf) -> None:
        wanted = f"{kind}/{(expect or IDS[kind])(c)}"  # first: an AuditEvent's is the newest one
        got = matches(bundle(c, kind, params(c), client))
        assert wanted in got, got

    return case


def token(res: dict[str, Any], element: str) -> str:
    """'system|code' of the first coding of a CodeableConcept (or a list of them, or a Coding list)."""
    value = res[element]
    first = value[0] if isinstance(value, list) else value
    if "value" in first:  # an Identifier
        return f"{first['system']}|{first['value']}"
    coding = first["coding"][0] if "coding" in first else first
    return f"{coding['system']}|{coding['code']}"


def dob(c: Conf) -> str:
    """The world child's birthDate, as read."""
    return str(read_json(c, "Patient", str(c.world.child))["birthDate"])


def child(c: Conf) -> str:
    return f"Patient/{c.world.child}"


def full(c: Conf) -> str:
    return f"Patient/{full_child(c)['Patient']}"


def yesterday() -> str:
    return (date.today() - timedelta(days=1)).isoformat()


def read(kind: str, c: Conf) -> dict[str, Any]:
    return read_json(c, kind, IDS[kind](c))


def in_full(kind: str) -> Ref:
    return lambda c: full_child(c)[kind]


SEARCHES: dict[tuple[str, str], Case] = {
    ("Patient", "search:_id"): found_by("Patient", lambda c: {"_id": str(c.world.child)}),
    ("Patient", "search:identifier"): found_by(
        "Patient", lambda c: {"identifier": f"{S.NHS_NUMBER}|{c.world.nhs}"}
    ),
    ("Patient", "search:family"): found_by("Patient", lambda c: {"family": "smi", "birthdate": dob(c)}),
    ("Patient", "search:given"): found_by("Patient", lambda c: {"given": "Oliv", "birthdate": dob(c)}),
    ("Patient", "search:name"): found_by("Patient", lambda c: {"name": "olivia", "birthdate": dob(c)}),
    ("Patient", "search:birthdate"): found_by(
        "Patient", lambda c: {"family": "Smith", "birthdate": f"eq{dob(c)[:7]}"}
    ),
    ("Patient", "search:gender"): found_by(
        "Patient", lambda c: {"family": "Smith", "birthdate": dob(c), "gender": "female"}
    ),
    ("Patient", "search:address-postalcode"): found_by(
        "Patient", lambda c: {"family": "Smith", "address-postalcode": "OX4 1AB"}
    ),
    ("EpisodeOfCare", "search:_id"): found_by("EpisodeOfCare", lambda c: {"_id": str(c.world.involvement)}),
    ("EpisodeOfCare", "search:patient"): found_by("EpisodeOfCare", lambda c: {"patient": child(c)}),
    ("EpisodeOfCare", "search:status"): found_by(
        "EpisodeOfCare", lambda c: {"patient": child(c), "status": "active"}
    ),
    ("EpisodeOfCare", "search:date"): found_by(
        "EpisodeOfCare", lambda c: {"patient": child(c), "date": f"ge{date.today() - timedelta(days=200)}"}
    ),
    ("EpisodeOfCare", "search:organization"): found_by(
        "EpisodeOfCare", lambda c: {"patient": child(c), "organization": f"Organization/{c.world.trust}"}
    ),
    ("EpisodeOfCare", "search:care-manager"): found_by(
        "EpisodeOfCare", lambda c: {"patient": child(c), "care-manager": f"Practitioner/{c.world.hv}"}
    ),
    ("EpisodeOfCare", "search:type"): found_by(
        "EpisodeOfCare", lambda c: {"patient": child(c), "type": token(read("EpisodeOfCare", c), "type")}
    ),
    ("RelatedPerson", "search:patient"): found_by("RelatedPerson", lambda c: {"patient": child(c)}),
    ("Practitioner", "search:_id"): found_by("Practitioner", lambda c: {"_id": str(c.world.hv)}),
    ("Practitioner", "search:name"): found_by("Practitioner", lambda c: {"name": "Hannah"}),
    ("Practitioner", "search:active"): found_by("Practitioner", lambda c: {"active": "true", "name": "Vale"}),
    ("PractitionerRole", "search:practitioner"): found_by(
        "PractitionerRole", lambda c: {"practitioner": f"Practitioner/{c.world.hv}"}
    ),
    ("PractitionerRole", "search:organization"): found_by(
        "PractitionerRole", lambda c: {"organization": f"Organization/{c.world.trust}", "_count": "100"}
    ),
    ("PractitionerRole", "search:role"): found_by(
        "PractitionerRole", lambda c: {"role": token(read("PractitionerRole", c), "code"), "_count": "100"}
    ),
    ("PractitionerRole", "search:active"): found_by(
        "PractitionerRole", lambda c: {"active": "true", "organization": f"Organization/{c.world.trust}"}
    ),
    ("Organization", "search:identifier"): found_by(
        "Organization", lambda c: {"identifier": f"{S.ODS_CODE}|RNU"}
    ),
    ("Organization", "search:name"): found_by("Organization", lambda c: {"name": "Demoshire"}),
    ("Organization", "search:type"): found_by(
        "Organization", lambda c: {"type": token(read("Organization", c), "type"), "_count": "100"}
    ),
    ("HealthcareService", "search:organization"): found_by(
        "HealthcareService", lambda c: {"organization": f"Organization/{c.world.trust}"}
    ),
    ("HealthcareService", "search:service-type"): found_by(
        "HealthcareService", lambda c: {"service-type": token(read("HealthcareService", c), "type")}
    ),
    ("HealthcareService", "search:coverage-area"): found_by(
        "HealthcareService", lambda c: {"coverage-area": f"Location/{c.world.locality}"}
    ),
    ("HealthcareService", "search:characteristic"): found_by(
        "HealthcareService",
        lambda c: {"characteristic": token(read("HealthcareService", c), "characteristic"), "_count": "100"},
    ),
    ("Location", "search:identifier"): found_by(
        "Location", lambda c: {"identifier": token(read("Location", c), "identifier")}
    ),
    ("Location", "search:name"): found_by("Location", lambda c: {"name": read("Location", c)["name"]}),
    ("AuditEvent", "search:patient"): found_by(
        "AuditEvent", lambda c: {"patient": child(c)}, client="auditor"
    ),
    ("AuditEvent", "search:date"): found_by(
        "AuditEvent", lambda c: {"patient": child(c), "date": f"ge{yesterday()}"}, client="auditor"
    ),
    ("AuditEvent", "search:subtype"): found_by(
        "AuditEvent",
        lambda c: {"patient": child(c), "subtype": token(read_audit(c), "subtype")},
        client="auditor",
    ),
}
for _kind in ("Flag", "CareTeam", "Consent", "CarePlan"):
    SEARCHES[(_kind, "search:_id")] = found_by(
        _kind, lambda c, k=_kind: {"patient": full(c), "_id": full_child(c)[k]}, in_full(_kind)
    )
    SEARCHES[(_kind, "search:patient")] = found_by(_kind, lambda c: {"patient": full(c)}, in_full(_kind))
    SEARCHES[(_kind, "search:status")] = found_by(
        _kind,
        lambda c, k=_kind: {"patient": full(c), "status": read_json(c, k, full_child(c)[k])["status"]},
        in_full(_kind),
    )
SEARCHES[("Flag", "search:code")] = found_by(
    "Flag", lambda c: {"patient": full(c), "code": f"{S.FLAG_CODE}|caf-in-progress"}, in_full("Flag")
)
SEARCHES[("CareTeam", "search:subject")] = found_by(
    "CareTeam", lambda c: {"subject": full(c)}, in_full("CareTeam")
)
SEARCHES[("CarePlan", "search:subject")] = found_by(
    "CarePlan", lambda c: {"subject": full(c)}, in_full("CarePlan")
)
for _kind in ("Practitioner", "PractitionerRole", "Organization", "HealthcareService", "Location"):
    SEARCHES[(_kind, "search:_lastUpdated")] = found_by(
        _kind, lambda c: {"_lastUpdated": f"ge{yesterday()}", "_count": "100"}
    )
    SEARCHES.setdefault((_kind, "search:_id"), found_by(_kind, lambda c, k=_kind: {"_id": IDS[k](c)}))

# _lastUpdated on the child's resources only narrows a search that names its patients
SEARCHES[("Patient", "search:_lastUpdated")] = found_by(
    "Patient", lambda c: {"identifier": f"{S.NHS_NUMBER}|{c.world.nhs}", "_lastUpdated": f"ge{yesterday()}"}
)
SEARCHES[("RelatedPerson", "search:_lastUpdated")] = found_by(
    "RelatedPerson", lambda c: {"patient": child(c), "_lastUpdated": f"ge{yesterday()}"}
)
for _kind in ("EpisodeOfCare", "Flag", "CareTeam", "Consent", "CarePlan"):
    SEARCHES[(_kind, "search:_lastUpdated")] = found_by(
        _kind, lambda c: {"patient": full(c), "_lastUpdated": f"ge{yesterday()}"}, in_full(_kind)
    )


def read_audit(c: Conf) -> dict[str, Any]:
    """An AuditEvent read by the auditor."""
    return dict(c.auditor.reference("AuditEvent", IDS["AuditEvent"](c)).to_resource())


# --------------------------------------------------------------------------- _include, _revinclude

ANCHORS: dict[str, Params] = {  # a search of the type that has something to include
    "Patient": lambda c: {"_id": full_child(c)["Patient"]},
    "EpisodeOfCare": lambda c: {"patient": child(c), "_id": str(c.world.involvement)},
    "Flag": lambda c: {"patient": full(c)},
    "CareTeam": lambda c: {"patient": full(c)},
    "CarePlan": lambda c: {"patient": full(c)},
    "Consent": lambda c: {"patient": full(c)},
    "RelatedPerson": lambda c: {"patient": full(c)},
    "Practitioner": lambda c: {"_id": str(c.world.hv)},
    "PractitionerRole": lambda c: {"_id": str(c.world.hv)},
    "HealthcareService": lambda c: {"_id": str(c.world.hv_service)},
}
GP_ANCHOR: Params = lambda c: {"_id": str(c.world.child)}  # noqa: E731 (the world child has a GP)


def included(kind: str, what: str) -> Case:
    """The search answers the included (or reverse-included) resources with search mode 'include'."""
    reverse = what.startswith("_revinclude:")
    source, param = what.split(":", 1)[1].split(":")
    target = source if reverse else P.INCLUDES[kind][param]
    anchor = GP_ANCHOR if what == "_include:Patient:general-practitioner" else ANCHORS[kind]

    def case(c: Conf) -> None:
        name = "_revinclude" if reverse else "_include"
        found = bundle(c, kind, {**anchor(c), name: f"{source}:{param}"})
        assert matches(found), found
        assert any(r.startswith(f"{target}/") for r in matches(found, "include")), found

    return case


# --------------------------------------------------------------------------- operations, system level


def match(c: Conf) -> None:
    """Patient/$match (fhirpy execute): the world child is found, with a score and a grade."""
    from search.indexer import drain

    drain(c.engine, c.app.state.search_backend, wait=True)
    patient = {
        "resourceType": "Patient",
        "name": [{"family": "Smith", "given": ["Olivia"]}],
        "birthDate": dob(c),
        "gender": "female",
        "address": [{"postalCode": "OX4 1AB"}],
    }
    body = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient}]}
    found = c.fhir.execute("Patient/$match", method="post", data=body)
    assert found["type"] == "searchset", found
    best = found["entry"][0]
    assert best["resource"]["id"] == str(c.world.child) and best["search"]["score"] > 0, found
    # its typed parameters: count (an integer, at most that many), onlyCertainMatches (a boolean)
    typed = [{"name": "count", "valueInteger": 1}, {"name": "onlyCertainMatches", "valueBoolean": True}]
    body["parameter"] = [body["parameter"][0], *typed]
    found = c.fhir.execute("Patient/$match", method="post", data=body)
    assert [e["resource"]["id"] for e in found["entry"]] == [str(c.world.child)], found
    body["parameter"][2] = {"name": "onlyCertainMatches", "valueString": "true"}
    with pytest.raises(OperationOutcome) as refused:
        c.fhir.execute("Patient/$match", method="post", data=body)
    assert refused.value.resource["issue"][0]["code"] in ("invalid", "value"), refused.value.resource


def transaction(c: Conf) -> None:
    """A transaction Bundle (fhirpy, POST to the base): an involvement created, its entry 201."""
    episode = _episode(c.world, patient={"reference": f"Patient/{c.new_child()}"})
    sent = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:7f6c1a52-53f4-4c1b-9b9a-0d2b1f0e7a11",
                "resource": episode,
                "request": {"method": "POST", "url": "EpisodeOfCare"},
            }
        ],
    }
    got = c.fhir.execute("", method="post", data=sent)
    assert got["type"] == "transaction-response", got
    answer = got["entry"][0]["response"]
    assert answer["status"].startswith("201"), got
    created = got["entry"][0]["resource"]  # R4: the location and version of what was created
    assert f"EpisodeOfCare/{created['id']}" in answer["location"] and answer["etag"] == 'W/"1"', got


def batch(c: Conf) -> None:
    """A batch Bundle of two reads (the only requests a Bundle may carry here), each answered."""
    sent = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{c.world.child}"}},
            {"request": {"method": "GET", "url": f"EpisodeOfCare/{c.world.involvement}"}},
        ],
    }
    got = c.fhir.execute("", method="post", data=sent)
    assert got["type"] == "batch-response", got
    assert [e["response"]["status"][:3] for e in got["entry"]] == ["200", "200"], got


def history_system(c: Conf) -> None:
    """The system-level _history since yesterday: the catalogue's changes, the world's among them."""
    got = c.fhir.execute(
        "_history", method="get", params={"_since": f"{yesterday()}T00:00:00Z", "_count": "100"}
    )
    assert got["type"] == "history", got
    assert f"Organization/{c.world.trust}" in {
        f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in got.get("entry", [])
    }, got


OPERATIONS: dict[tuple[str, str], Case] = {
    ("Patient", "$match"): match,
    ("system", "transaction"): transaction,
    ("system", "batch"): batch,
    ("system", "history-system"): history_system,
}


INCLUDED = [  # (type, what) each exercised by `included`
    ("Patient", "_include:Patient:general-practitioner"),
    ("Patient", "_revinclude:CareTeam:patient"),
    ("Patient", "_revinclude:CareTeam:subject"),
    ("Patient", "_revinclude:CarePlan:patient"),
    ("Patient", "_revinclude:CarePlan:subject"),
    ("Patient", "_revinclude:Consent:patient"),
    ("Patient", "_revinclude:EpisodeOfCare:patient"),
    ("Patient", "_revinclude:Flag:patient"),
    ("Patient", "_revinclude:RelatedPerson:patient"),
    ("EpisodeOfCare", "_include:EpisodeOfCare:patient"),
    ("EpisodeOfCare", "_include:EpisodeOfCare:care-manager"),
    ("EpisodeOfCare", "_include:EpisodeOfCare:organization"),
    ("Flag", "_include:Flag:patient"),
    ("CareTeam", "_include:CareTeam:participant"),
    ("CareTeam", "_include:CareTeam:patient"),
    ("CareTeam", "_include:CareTeam:subject"),
    ("CarePlan", "_include:CarePlan:patient"),
    ("CarePlan", "_include:CarePlan:subject"),
    ("Consent", "_include:Consent:patient"),
    ("RelatedPerson", "_include:RelatedPerson:patient"),
    ("Practitioner", "_revinclude:PractitionerRole:practitioner"),
    ("PractitionerRole", "_include:PractitionerRole:practitioner"),
    ("PractitionerRole", "_include:PractitionerRole:organization"),
    ("HealthcareService", "_include:HealthcareService:organization"),
    ("HealthcareService", "_include:HealthcareService:coverage-area"),
]
INCLUDES: dict[tuple[str, str], Case] = {(k, w): included(k, w) for k, w in INCLUDED}

# The table the generated test reads: every advertised (type, what) needs an entry here.
CASES: dict[tuple[str, str], Case] = {
    **INTERACTIONS,
    **SEARCHES,
    **INCLUDES,
    **OPERATIONS,
    **VERSIONS,
    **BULK,
}
