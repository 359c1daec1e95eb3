"""Property-based tests of the reads in bulk: `$export` at system, Patient and Group level and the
child's type-level `_history`, with bent parameters and Prefer headers (docs/fhir-fuzzing.md). The app,
its callers and the checks on every answer are test_fhir_fuzz.py's."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from interop.sync import CHILD_TABLES
from tests.interop.test_fhir_fuzz import Fuzz, callers, fuzzing
from tests.interop.test_fhir_fuzz import fz as fz  # noqa: F401  (the fixture: the app on each database)

BULK_VALUES = st.one_of(
    st.sampled_from(
        [
            "2026-01-01T00:00:00Z",
            "2026-01-01",
            "yesterday",
            "Patient,EpisodeOfCare",
            "Patient,Location",
            "Flag,,",
            "application/fhir+ndjson",
            "ndjson",
            "application/fhir+json",
            "",
            "9" * 5000,
        ]
    ),
    st.text(max_size=80),
)


def test_bulk_kick_offs_and_the_childs_history_never_answer_5xx(fz: Fuzz) -> None:
    """$export at system, Patient and Group level, and the child's type-level _history, with bent
    parameters and Prefer headers: never 5xx; a refused kick-off keeps nothing; an accepted one is
    cancelled (DELETE on its status URL) so the next may start."""
    locality = (fz.ids.get("Location") or ["x"])[0]
    paths = st.sampled_from(
        [
            "$export",
            "Patient/$export",
            f"Group/{locality}/$export",
            "Group/not-a-group/$export",
            *(f"{kind}/_history" for kind in CHILD_TABLES),
        ]
    )
    names = st.sampled_from(
        ["_since", "_type", "_outputFormat", "_typeFilter", "_count", "_cursor", "patient", "x"]
    )

    @fuzzing(fz, share=0.5)
    @given(
        path=paths,
        items=st.lists(st.tuples(names, BULK_VALUES), max_size=5),
        prefer=st.sampled_from(["respond-async", "", "handling=strict", "respond-async, handling=strict"]),
        caller=callers,
    )
    def run(path: str, items: list[tuple[str, str]], prefer: str, caller: str) -> None:
        before = fz.state()
        r = fz.send("GET", f"/fhir/{path}", caller, params=items or None, headers={"Prefer": prefer})
        if r.status_code == 202:
            status = r.headers["content-location"].removeprefix("http://testserver")
            assert fz.send("DELETE", status, caller).status_code == 202
        elif r.status_code >= 400:
            assert fz.state() == before, r.text

    run()
