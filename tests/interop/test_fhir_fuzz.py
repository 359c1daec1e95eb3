"""No input makes /fhir answer 500 (issue #19): property-based tests with Hypothesis.

Malformed and hostile resources, references, Bundles, search parameters, `$match` bodies and
headers (tests/interop/fhir_strategies.py) go to every /fhir route of the production-mode app, in
process, with real tokens: a connected system's (`system/*.cruds`) and a practitioner's. For each
answer: never 5xx; a status of 400 or more carries a valid OperationOutcome as application/fhir+json;
a refused write (a transaction, a create, an update) changed no row and no version of any record;
every request answers within seconds; and after each run the app still answers a read.

Bounded and reproducible in CI: `derandomize=True` (the same examples every run, no example
database) and CHILDINDEX_PROP_EXAMPLES examples per test on SQLite (default 100), a third of that
on PostgreSQL. To explore locally: CHILDINDEX_PROP_EXAMPLES=2000 CHILDINDEX_PROP_RANDOM=1 (random
examples, shrinking kept in Hypothesis' local database). docs/fhir-fuzzing.md has what ran and what
it found.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from auth.models import SubjectKind
from auth.policy import FHIR_CATALOGUE_TYPES, FHIR_CHILD_TYPES
from childindex.app import create_app
from childindex.settings import Settings
from directory.db import unit_of_work
from directory.models import Role
from interop import systems as S
from interop.sync import CHILD_TABLES
from tests.directory.test_openapi_contract import SYSTEM_SCOPES, built_world
from tests.fixtures.auth_builders import make_grant, token_for
from tests.interop import fhir_strategies as F

EXAMPLES = int(os.environ.get("CHILDINDEX_PROP_EXAMPLES", "100"))
RANDOM = os.environ.get("CHILDINDEX_PROP_RANDOM") == "1"
SLOW = 10.0  # seconds: an answer slower than this counts as a hang
MAX_ENTRIES = 10
FHIR = "application/fhir+json"
FUZZ_SCOPES = (*SYSTEM_SCOPES, "directory.export")  # the systems may read in bulk too ($export, history)
WRITABLE = ("EpisodeOfCare", "PractitionerRole", "Flag", "Consent", "CareTeam")
# What a refused request must not change: every table of the domain (rows, and versions where a
# table keeps them) and the outbox. Audit and sign-in tables are left out: a refusal is audited.
UNWATCHED = {
    "audit_event",
    "audit_subject",
    "audit_head",
    "audit_note",
    "seen_jti",
    "signing_key",
    "refresh_token",
    "authorization_code",
    "notification_cursor",
}


@dataclass
class Fuzz:
    """The app on one database, its callers' headers, the ids that exist and valid resources."""

    database: str
    engine: Engine
    api: TestClient
    callers: dict[str, dict[str, str]]
    ids: dict[str, list[str]]
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    slowest: float = 0.0
    seen: Counter[str] = field(default_factory=Counter)

    def send(self, method: str, url: str, caller: str, **kw: Any) -> httpx.Response:
        """One request, timed, its answer checked (never 5xx; an OperationOutcome from 400 up)."""
        headers = {**self.callers[caller], **kw.pop("headers", {})}
        started = time.perf_counter()
        r: httpx.Response = self.api.request(method, url, headers=headers, **kw)
        took = time.perf_counter() - started
        self.slowest = max(self.slowest, took)
        assert took < SLOW, f"{method} {url[:200]} took {took:.1f}s"
        answered(r)
        self.seen[f"{method} {url.split('?')[0][:40]} {r.status_code}"] += 1
        return r

    def state(self) -> dict[str, tuple[int, int]]:
        """Rows (and the sum of versions) of every watched table."""
        out = {}
        with self.engine.connect() as conn:
            for table in SQLModel.metadata.sorted_tables:
                if table.name in UNWATCHED:
                    continue
                versions: Any = (
                    sa.func.coalesce(sa.func.sum(table.c.version), 0)
                    if "version" in table.c
                    else sa.literal(0)
                )
                row = conn.execute(sa.select(sa.func.count(), versions).select_from(table)).one()
                out[table.name] = (int(row[0]), int(row[1]))
        return out


OUTCOME = get_fhir_model_class("OperationOutcome")


def answered(r: httpx.Response) -> None:
    """Never 5xx; from 400 up, a valid OperationOutcome as FHIR JSON; any other body is FHIR JSON."""
    assert r.status_code < 500, (
        f"{r.status_code} for {r.request.method} {str(r.request.url)[:300]}: {r.text[:2000]}"
    )
    if r.status_code >= 400:
        assert r.headers.get("content-type", "").startswith(FHIR), (r.status_code, r.headers, r.text[:500])
        body = r.json()
        assert body.get("resourceType") == "OperationOutcome", body
        OUTCOME.model_validate(body)
        assert body["issue"] and all(i.get("diagnostics") for i in body["issue"]), body
    elif r.content:
        assert r.headers.get("content-type", "").startswith(FHIR), (r.status_code, r.headers)
        assert isinstance(r.json().get("resourceType"), str), r.text[:500]
    for entry in (r.json().get("entry") or []) if r.content and r.status_code == 200 else []:
        outcome = (entry.get("response") or {}).get("outcome")
        if outcome is not None:
            OUTCOME.model_validate(outcome)


def fuzzing(fz: Fuzz, share: float = 1.0) -> Callable[[Any], Any]:
    """Hypothesis settings for this database: fewer examples on PostgreSQL, deterministic in CI."""
    examples = max(5, int(EXAMPLES * share * (1 if fz.database == "sqlite" else 1 / 3)))
    return settings(
        max_examples=examples,
        derandomize=not RANDOM,
        database=settings.get_profile("default").database if RANDOM else None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
        print_blob=True,
    )


def _templates(fz: Fuzz) -> dict[str, dict[str, Any]]:
    """A valid resource of every type the server writes, as it answers them (and a Patient)."""
    out = {}
    for kind in (*WRITABLE, "Patient"):
        r = fz.api.get(f"/fhir/{kind}/{fz.ids[kind][0]}", headers=fz.callers["system"])
        assert r.status_code == 200, (kind, r.text)
        out[kind] = r.json()
    child, hv = fz.ids["Patient"][0], fz.ids["Practitioner"][0]
    out["Flag"] = {
        "resourceType": "Flag",
        "status": "active",
        "code": {"coding": [{"system": S.FLAG_CODE, "code": "caf-signalled"}]},
        "subject": {"reference": f"Patient/{child}"},
        "author": {"reference": f"Practitioner/{hv}"},
        "extension": [{"url": S.EXT_NO_SIGNIFICANT_HARM, "valueBoolean": True}],
    }
    out["Subscription"] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "fuzz",
        "criteria": "Flag?code=caf-signalled",
        "channel": {"type": "rest-hook", "endpoint": "https://ehr.example.nhs.uk/hook", "payload": FHIR},
    }
    out["Parameters"] = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "resource",
                "resource": {
                    "resourceType": "Patient",
                    "name": [{"family": "Smith", "given": ["Olivia"]}],
                    "birthDate": "2015-01-01",
                },
            },
            {"name": "count", "valueInteger": 5},
            {"name": "onlyCertainMatches", "valueBoolean": False},
        ],
    }
    return out


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fz(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[Fuzz]:
    """The production-mode app on SQLite or PostgreSQL, a small world and two callers."""
    engine, ids = built_world(request, tmp_path_factory, sqlite_template, "prop")
    app = create_app(
        Settings(
            environment="production",
            database_url="sqlite://",
            issuer="http://testserver",
            secret_key="prop-secret-key",
            indexer_interval_seconds=0,
            search_resident=False,
            search_rate_per_minute=1_000_000,
            trawl_distinct_children=1_000_000,
            fhir_max_bundle_entries=MAX_ENTRIES,
        ),
        engine=engine,
    )
    state = app.state.auth
    system = token_for(
        state,
        "fuzz-system",
        kind=SubjectKind.CLIENT,
        role=Role.SYSTEM,
        scopes=FUZZ_SCOPES,
        client_id="fuzz-system",
    )
    # the community trust's own system (ODS RNU), whose writes of its services reach the domain's rules
    with unit_of_work(engine) as s:
        make_grant(
            s,
            "fuzz-trust",
            kind=SubjectKind.CLIENT,
            role=Role.SYSTEM,
            scopes=FUZZ_SCOPES,
            organisation="RNU",
        )
    trust = token_for(
        state,
        "fuzz-trust",
        kind=SubjectKind.CLIENT,
        role=Role.SYSTEM,
        scopes=FUZZ_SCOPES,
        client_id="fuzz-trust",
    )
    person = token_for(state, "fuzz-practitioner")  # a practitioner's own scopes: reads and searches
    purpose = {"X-Purpose-Of-Use": "direct-care", "Accept": FHIR}
    with TestClient(app, raise_server_exceptions=False) as api:
        fuzz = Fuzz(
            database=request.param,
            engine=engine,
            api=api,
            callers={
                "system": {"Authorization": f"Bearer {system}", **purpose},
                "trust": {"Authorization": f"Bearer {trust}", **purpose},
                "person": {"Authorization": f"Bearer {person}", **purpose},
            },
            ids=ids,
        )
        fuzz.templates = _templates(fuzz)
        yield fuzz
        still_answers(fuzz)
        print(f"\n{request.param}: slowest answer {fuzz.slowest:.2f}s; answers {sorted(fuzz.seen.items())}")
    if request.param == "sqlite":
        engine.dispose()


def still_answers(fz: Fuzz) -> None:
    """After a run the app answers as before: the CapabilityStatement and a child's record."""
    assert fz.api.get("/fhir/metadata").status_code == 200
    r = fz.api.get(f"/fhir/Patient/{fz.ids['Patient'][0]}", headers=fz.callers["system"])
    assert r.status_code == 200, r.text


callers = st.sampled_from(["system", "trust", "trust", "person"])


def _ids(fz: Fuzz, kind: str) -> st.SearchStrategy[str]:
    known = fz.ids.get(kind) or []
    real = st.sampled_from(known) if known else st.just(str(uuid.uuid4()))
    return st.one_of(
        real,
        real,  # half the time one that exists, so that requests reach the record's rules
        st.just(str(uuid.uuid4())),
        F.text,
        st.sampled_from(["..", "%2e%2e", "_history", "_search", "$match", "x" * 5000]),
    )


def test_malformed_resources_are_refused_with_an_outcome_and_change_nothing(fz: Fuzz) -> None:
    """Create and update of every type the server writes (and PUT Patient), with bodies bent from
    valid ones: a refused write leaves every row and version as it was."""

    @fuzzing(fz)
    @given(data=st.data(), kind=st.sampled_from([*WRITABLE, "Patient"]), caller=callers, hdrs=F.headers())
    def run(data: st.DataObject, kind: str, caller: str, hdrs: dict[str, str]) -> None:
        template = dict(fz.templates[kind])
        update = kind == "Patient" or data.draw(st.booleans(), label="update")
        if not update:
            template = {k: v for k, v in template.items() if k not in ("id", "meta")}
        body = data.draw(st.one_of(F.bent(template, fz.ids), F.hostile), label="body")
        raw = data.draw(F.raw_body(body), label="raw")
        hdrs["Content-Type"] = data.draw(st.one_of(st.just(FHIR), F.content_type), label="content-type")
        before = fz.state()
        if update:
            rid = data.draw(_ids(fz, kind), label="id")
            if isinstance(body, dict) and data.draw(st.booleans(), label="same id"):
                body["id"] = rid
                raw = data.draw(F.raw_body(body), label="raw")
            r = fz.send("PUT", f"/fhir/{kind}/{quote(rid, safe='')}", caller, content=raw, headers=hdrs)
        else:
            r = fz.send("POST", f"/fhir/{kind}", caller, content=raw, headers=hdrs)
        if r.status_code >= 400:
            assert fz.state() == before, r.text

    run()


def test_malformed_bundles_are_refused_whole_or_answered_per_entry(fz: Fuzz) -> None:
    """Transaction and batch Bundles of malformed entries: a refused transaction changes nothing."""
    kinds = st.sampled_from(WRITABLE)
    entries = kinds.flatmap(lambda k: st.one_of(F.bent(fz.templates[k], fz.ids), F.hostile))

    @fuzzing(fz)
    @given(bundle=F.bundles(entries, fz.ids, MAX_ENTRIES), caller=callers, hdrs=F.headers())
    def run(bundle: dict[str, Any], caller: str, hdrs: dict[str, str]) -> None:
        before = fz.state()
        hdrs["Content-Type"] = FHIR
        r = fz.send("POST", "/fhir", caller, json=bundle, headers=hdrs)
        if r.status_code >= 400:
            assert fz.state() == before, r.text
        elif bundle.get("type") == "transaction":  # all or nothing: every entry went through
            assert all(e["response"]["status"].startswith("2") for e in r.json()["entry"]), r.text

    run()


def test_bundles_linked_by_urn_references_resolve_or_are_refused_whole(fz: Fuzz) -> None:
    """Entries that reference each other by `urn:uuid:` fullUrl, in order, out of order, in a
    circle, unresolved, duplicated: resolved, or refused with nothing kept (a transaction)."""

    @fuzzing(fz)
    @given(bundle=F.linked_bundles(fz.templates, list(WRITABLE)), caller=callers)
    def run(bundle: dict[str, Any], caller: str) -> None:
        before = fz.state()
        r = fz.send("POST", "/fhir", caller, json=bundle, headers={"Content-Type": FHIR})
        if r.status_code >= 400:
            assert fz.state() == before, r.text

    run()


def test_search_parameters_of_every_type_never_answer_5xx(fz: Fuzz) -> None:
    """Every search parameter of every type, with modifiers, prefixes, the result parameters,
    unknown ones, repeated and empty; by GET and POST _search; type and system _history too."""
    kinds = st.sampled_from([*FHIR_CHILD_TYPES, *FHIR_CATALOGUE_TYPES, "AuditEvent", "Subscription"])

    @fuzzing(fz, share=2)
    @given(data=st.data(), kind=kinds, caller=callers, hdrs=F.headers())
    def run(data: st.DataObject, kind: str, caller: str, hdrs: dict[str, str]) -> None:
        items = data.draw(F.search_items(kind, fz.ids), label="items")
        how = data.draw(st.sampled_from(["get", "post", "history", "system-history"]), label="how")
        # a query longer than a client sends in an address (httpx refuses one over 64 KB) goes in the body
        if (how == "post" or len(urlencode(items)) > 60_000) and kind != "Subscription":
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
            form = urlencode(items).encode()
            fz.send("POST", f"/fhir/{kind}/_search", caller, content=form, headers=hdrs)
        elif len(urlencode(items)) > 60_000:
            return
        elif how == "history" and (kind in FHIR_CATALOGUE_TYPES or kind in CHILD_TABLES):
            fz.send("GET", f"/fhir/{kind}/_history", caller, params=items, headers=hdrs)
        elif how == "system-history":
            fz.send("GET", "/fhir/_history", caller, params=items, headers=hdrs)
        else:
            fz.send("GET", f"/fhir/{kind}", caller, params=items, headers=hdrs)

    run()


def test_reads_vreads_and_histories_with_odd_ids_never_answer_5xx(fz: Fuzz) -> None:
    """Read, vread, instance history and Subscription delete with ids of every shape."""
    kinds = st.sampled_from([*FHIR_CHILD_TYPES, *FHIR_CATALOGUE_TYPES, "AuditEvent", "Subscription"])

    @fuzzing(fz)
    @given(data=st.data(), kind=kinds, caller=callers, hdrs=F.headers())
    def run(data: st.DataObject, kind: str, caller: str, hdrs: dict[str, str]) -> None:
        rid = quote(data.draw(_ids(fz, kind), label="id"), safe="")
        vid = quote(
            data.draw(st.one_of(st.sampled_from(["1", "2", "0", "-1", "999999999"]), F.text)), safe=""
        )
        how = data.draw(st.sampled_from(["read", "vread", "history", "delete"]), label="how")
        if how == "read":
            fz.send("GET", f"/fhir/{kind}/{rid}", caller, headers=hdrs)
        elif how == "vread" and kind in ("Patient", "EpisodeOfCare"):
            fz.send("GET", f"/fhir/{kind}/{rid}/_history/{vid}", caller, headers=hdrs)
        elif how == "history" and kind in ("Patient", "EpisodeOfCare"):
            fz.send("GET", f"/fhir/{kind}/{rid}/_history", caller, headers=hdrs)
        elif how == "delete" and kind == "Subscription":
            fz.send("DELETE", f"/fhir/Subscription/{rid}", caller, headers=hdrs)
        else:
            fz.send("GET", f"/fhir/{kind}/{rid}", caller, params={"_format": "json"}, headers=hdrs)

    run()


def test_match_and_subscription_bodies_never_answer_5xx(fz: Fuzz) -> None:
    """`Patient/$match` with Parameters bodies and Subscription creates, bent out of shape."""

    @fuzzing(fz)
    @given(data=st.data(), caller=callers, hdrs=F.headers())
    def run(data: st.DataObject, caller: str, hdrs: dict[str, str]) -> None:
        kind = data.draw(st.sampled_from(["Parameters", "Subscription"]), label="kind")
        body = data.draw(st.one_of(F.bent(fz.templates[kind], fz.ids), F.hostile), label="body")
        hdrs["Content-Type"] = FHIR
        url = "/fhir/Patient/$match" if kind == "Parameters" else "/fhir/Subscription"
        before = fz.state()
        r = fz.send("POST", url, caller, content=data.draw(F.raw_body(body), label="raw"), headers=hdrs)
        if r.status_code >= 400:
            assert fz.state() == before, r.text

    run()


# What the runs found (each answered 500 before its fix): plain examples, so that each stays fixed.

BUNDLE_SHAPES: dict[str, dict[str, Any]] = {  # "FLAG": a valid Flag, so that only the shape is wrong
    "request is a string": {"request": "GET Patient", "resource": "FLAG"},
    "request is a list": {"request": [{"method": "GET"}]},
    "fullUrl is an object": {"fullUrl": {"a": 1}, "request": {"method": "GET", "url": "Patient/x"}},
    "fullUrl is a list": {"fullUrl": [1], "request": {"method": "POST", "url": "Flag"}, "resource": "FLAG"},
    "method is a number": {"request": {"method": 1, "url": "Flag"}, "resource": "FLAG"},
    "ifMatch is a number": {
        "request": {"method": "PUT", "url": "FLAG-URL", "ifMatch": 1},
        "resource": "FLAG",
    },
    "ifNoneExist is an object": {
        "request": {"method": "POST", "url": "Flag", "ifNoneExist": {"_id": "x"}},
        "resource": "FLAG",
    },
}


@pytest.mark.parametrize("shape", BUNDLE_SHAPES)
@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_a_bundle_entry_of_the_wrong_shape_is_400_naming_it(fz: Fuzz, shape: str, kind: str) -> None:
    """Was: 500 (AttributeError on a request that is not an object, TypeError on a fullUrl that
    cannot be a key, on an If-Match or If-None-Exist that is not a string)."""
    flag = {**fz.templates["Flag"], "id": fz.ids["Flag"][0]}
    entry = json.loads(
        json.dumps(BUNDLE_SHAPES[shape])
        .replace('"FLAG"', json.dumps(flag))
        .replace("FLAG-URL", f"Flag/{flag['id']}")
    )
    consent = {k: v for k, v in fz.templates["Consent"].items() if k not in ("id", "meta")}
    good = {"resource": consent, "request": {"method": "POST", "url": "Consent"}}
    h = {"Content-Type": FHIR}
    alone = {"resourceType": "Bundle", "type": kind, "entry": [good]}
    assert fz.send("POST", "/fhir", "system", json=alone, headers=h).json()["entry"][0]["response"][
        "status"
    ] == ("201 Created")  # the good entry goes through on its own
    before = fz.state()
    bundle = {"resourceType": "Bundle", "type": kind, "entry": [good, entry]}
    r = fz.send("POST", "/fhir", "system", json=bundle, headers=h)
    assert r.status_code == 400, r.text
    issue = r.json()["issue"][0]
    assert issue["code"] == "structure" and issue["diagnostics"].startswith("Entry 1:"), issue
    assert issue["expression"][0].startswith("Bundle.entry[1]"), issue
    assert fz.state() == before  # the good entry before it was not kept either


def test_a_number_too_long_to_read_is_400_not_json(fz: Fuzz) -> None:
    """Was: 500 (ValueError: Python reads at most 4,300 digits of an integer)."""
    before = fz.state()
    raw = b'{"resourceType":"Flag","status":"active","priority":' + b"9" * 5000 + b"}"
    r = fz.send("POST", "/fhir/Flag", "system", content=raw, headers={"Content-Type": FHIR})
    assert r.status_code == 400 and "not valid JSON" in r.json()["issue"][0]["diagnostics"], r.text
    assert fz.state() == before


@pytest.mark.parametrize(
    ("url", "body"),
    [
        (
            "/fhir/Patient/$match",
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "resource", "resource": {"resourceType": "X"}}],
            },
        ),
        ("/fhir/Subscription", {"resourceType": "Subscription", "contained": [{"resourceType": "X"}]}),
    ],
    ids=["$match", "contained"],
)
def test_a_nested_resource_of_an_unknown_type_is_400(fz: Fuzz, url: str, body: dict[str, Any]) -> None:
    """Was: 500 (KeyError out of fhir_core for a resource inside a resource whose type it does not know)."""
    r = fz.send("POST", url, "system", json=body, headers={"Content-Type": FHIR})
    assert r.status_code == 400, r.text


def test_fifty_hostile_requests_at_once_are_each_refused_and_the_app_keeps_answering(fz: Fuzz) -> None:
    """The same refused transaction (a good create, then an entry of the wrong shape), a create with
    a nested resource of an unknown type and a search with every bad parameter, fifty at once: each
    is refused as alone, nothing is kept, and a read in the middle of them is answered."""
    good = {"resource": fz.templates["Flag"], "request": {"method": "POST", "url": "Flag"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [good, {"request": "x"}]}
    contained = {**fz.templates["Consent"], "contained": [{"resourceType": "X"}]}
    contained.pop("id", None)
    h = {"Content-Type": FHIR}
    calls: list[Callable[[], httpx.Response]] = [
        lambda: fz.send("POST", "/fhir", "system", json=bundle, headers=h),
        lambda: fz.send("POST", "/fhir/Consent", "system", json=contained, headers=h),
        lambda: fz.send(
            "GET", "/fhir/Patient", "system", params={"birthdate": "gt9999-12-31", "_count": "²"}
        ),
    ]
    before = fz.state()
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(calls[i % len(calls)]) for i in range(50)]
        read = fz.send("GET", f"/fhir/Patient/{fz.ids['Patient'][0]}", "system")
        statuses = Counter(f.result().status_code for f in futures)
    assert statuses == {400: 50}, statuses
    assert read.status_code == 200
    assert fz.state() == before


def test_every_fhir_route_without_a_good_token_answers_an_outcome(fz: Fuzz) -> None:
    """Every /fhir route and method, with no token, a malformed one, another scheme, or a token
    signed by someone else, and hostile query parameters and bodies: 401 or 403 (or the public
    answer of metadata and discovery), always as an OperationOutcome, never 5xx."""
    paths = fz.api.app.openapi()["paths"]  # type: ignore[attr-defined]
    routes = sorted((m.upper(), path) for path, ops in paths.items() if path.startswith("/fhir") for m in ops)
    assert len(routes) > 50, routes  # every type's read, search, writes, history, $match, Bundle...
    forged = fz.callers["system"]["Authorization"][:-8] + "AAAAAAAA"
    authorization = st.sampled_from(
        [
            "",
            "Bearer",
            "Bearer ",
            "Bearer x.y.z",
            "Basic Zm9vOmJhcg==",
            "bearer " + "a" * 5000,
            forged,
            "Bearer \u00e9",
        ]
    )

    @fuzzing(fz)
    @given(
        route=st.sampled_from(routes),
        auth=authorization,
        rid=st.one_of(st.just("x"), F.text),
        items=F.search_items("Patient", fz.ids),
        body=F.hostile,
        hdrs=F.headers(),
    )
    def run(
        route: tuple[str, str],
        auth: str,
        rid: str,
        items: list[tuple[str, str]],
        body: Any,
        hdrs: dict[str, str],
    ) -> None:
        method, path = route
        url = re.sub(r"\{[^}]+\}", quote(rid, safe="") or "x", path)
        if auth.isascii():
            hdrs["Authorization"] = auth
        hdrs["Content-Type"] = FHIR
        query = urlencode(items)[:8000]
        started = time.perf_counter()
        r = fz.api.request(method, f"{url}?{query}", headers=hdrs, content=json.dumps(body).encode())
        assert time.perf_counter() - started < SLOW
        if path.endswith("/smart-configuration") and r.status_code == 200:
            assert r.headers["content-type"].startswith("application/json")  # SMART's JSON, not FHIR's
        else:
            answered(r)
        public = path.endswith(("/metadata", "/smart-configuration"))
        assert r.status_code in (400, 401, 403, 404, 405, 406, 413, 415) or (
            public and r.status_code == 200
        ), (
            method,
            url[:200],
            r.status_code,
            r.text[:300],
        )

    run()
