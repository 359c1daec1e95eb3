"""Conformance cases for what Bulk Data export advertises (the system, Patient and Group `$export`
operations, Group's read and search) and the child's type-level `_history`, which are for systems
granted reads in bulk (`directory.export`).

A kick-off, a status answer and an NDJSON file are not FHIR JSON answers, so the export is driven
with a `requests` session of its own (not the recorder's); every line of every file is held to the
same R4 checks as the recorder's answers."""

from __future__ import annotations

import json
import time
from typing import Any

import requests

from auth.policy import FHIR_CHILD_TYPES
from tests.interop.conformance_cases import IDS, history_type, read, search_type
from tests.interop.conformance_server import Conf
from tests.interop.r4_check import last_updated_problems, r4_problems

Case = Any


def _session(c: Conf) -> requests.Session:
    s = requests.Session()
    s.headers.update({"Authorization": str(c.fhir.authorization), "X-Purpose-Of-Use": "direct-care"})
    return s


def export(path: str) -> Case:
    """Kick off an export (Prefer: respond-async), poll its status URL until the manifest, read each
    NDJSON file (every line valid R4 with meta.lastUpdated, the first as a read shows it), then
    DELETE it (the files go)."""

    def case(c: Conf) -> None:
        s = _session(c)
        kick = s.get(
            f"{c.base}/{path(c)}", headers={"Prefer": "respond-async", "Accept": "application/fhir+json"}
        )
        assert kick.status_code == 202, kick.text
        status = kick.headers["Content-Location"]
        for _ in range(600):
            polled = s.get(status)
            if polled.status_code != 202:
                break
            assert polled.headers.get("X-Progress") and polled.headers.get("Retry-After"), polled.headers
            time.sleep(0.1)
        assert polled.status_code == 200, polled.text
        manifest = polled.json()
        assert manifest["requiresAccessToken"] is True and manifest["request"].endswith(path(c)), manifest
        assert manifest["output"], manifest
        for out in manifest["output"]:
            got = s.get(out["url"], headers={"Accept": "application/fhir+ndjson"})
            assert got.status_code == 200 and got.headers["content-type"].startswith(
                "application/fhir+ndjson"
            )
            lines = [json.loads(line) for line in got.text.splitlines()]
            assert len(lines) == out["count"] and {x["resourceType"] for x in lines} == {out["type"]}
            for line in lines:
                assert r4_problems(line) == [] and last_updated_problems(line) == [], line
            # each line is what a read of it shows (read through fhirpy, whose answers are checked)
            first = lines[0]
            read = c.fhir.reference(first["resourceType"], first["id"]).to_resource().serialize()
            assert read == first, (read, first)
        assert s.delete(status).status_code == 202
        assert s.get(manifest["output"][0]["url"]).status_code == 404

    return case


IDS["Group"] = lambda c: str(c.world.locality)
BULK: dict[tuple[str, str], Case] = {
    ("system", "$export"): export(lambda c: "$export"),
    ("Patient", "$export"): export(lambda c: "Patient/$export"),
    ("Group", "$export"): export(lambda c: f"Group/{IDS['Group'](c)}/$export"),
    ("Group", "read"): read("Group"),
    ("Group", "search-type"): search_type("Group", lambda c: {}),
    **{(kind, "history-type"): history_type(kind) for kind in FHIR_CHILD_TYPES},
}
