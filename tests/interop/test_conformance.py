"""The FHIR conformance suite: what the CapabilityStatement advertises, exercised over real HTTP.

One case per advertised (resource type, interaction), search parameter, _include / _revinclude and
operation, GENERATED from the CapabilityStatement: advertising something that `CASES`
(tests/interop/conformance_searches.py) has no entry for fails its case. Each case drives the running
server (uvicorn on loopback) with fhirpy or fhirclient, both from PyPI and unmodified, holding the
token a registered system got with private_key_jwt; every answer they receive is then checked against
R4 4.0.1 in strict mode and the Bundle invariants (tests/interop/r4_check.py). docs/conformance.md."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirpy.base.exceptions import BaseFHIRError
from sqlalchemy.engine import Engine

from interop.capability import capability_statement
from tests.interop.conformance_cases import IDS
from tests.interop.conformance_searches import CASES
from tests.interop.conformance_server import Conf, build, database, free_port, serving
from tests.interop.test_onboarding import advertised_scopes


def advertised(capability: dict[str, Any]) -> list[tuple[str, str]]:
    """Everything a CapabilityStatement says the server does, as (type or 'system', what) pairs:
    'read', 'search-type', …; 'search:<param>'; '$<operation>'; '_include:<T:p>', '_revinclude:<T:p>';
    and what its flags promise (`_flags`)."""
    rest = capability["rest"][0]
    out = [("system", i["code"]) for i in rest.get("interaction", [])]
    out += [("system", f"search:{p['name']}") for p in rest.get("searchParam", [])]
    out += [("system", f"${op['name']}") for op in rest.get("operation", [])]
    for res in rest["resource"]:
        kind = res["type"]
        out += [(kind, i["code"]) for i in res.get("interaction", [])]
        out += [(kind, f"search:{p['name']}") for p in res.get("searchParam", [])]
        out += [(kind, f"${op['name']}") for op in res.get("operation", [])]
        out += [(kind, f"_include:{x}") for x in res.get("searchInclude", [])]
        out += [(kind, f"_revinclude:{x}") for x in res.get("searchRevInclude", [])]
        out += [(kind, flag) for flag in _flags(res)]
    return out


def _flags(res: dict[str, Any]) -> list[str]:
    """What a resource's flags promise beyond its interactions ('conditional-create',
    'versioned-update', 'readHistory', 'update-create', 'conditional-update', 'conditional-read:<how>',
    'conditional-delete:<how>')."""
    out = [name for key, name in _PROMISES if res.get(key)]
    if res.get("versioning") == "versioned-update":
        out.append("versioned-update")
    for key, name in (("conditionalRead", "conditional-read"), ("conditionalDelete", "conditional-delete")):
        if res.get(key, "not-supported") != "not-supported":
            out.append(f"{name}:{res[key]}")
    return out


_PROMISES = (
    ("conditionalCreate", "conditional-create"),
    ("conditionalUpdate", "conditional-update"),
    ("updateCreate", "update-create"),
    ("readHistory", "readHistory"),
)


# At collection, from the same function /fhir/metadata answers with (test_the_cases_are_what_the_
# running_server_advertises checks that the live statement lists exactly these).
ADVERTISED = advertised(capability_statement(base="http://collect/fhir", issuer="http://collect"))


def system_scopes(root: str) -> list[str]:
    """Every system scope the server advertises (as the onboarding test derives them) but AuditEvent's,
    which are for auditors: the trust's system is registered with, and asks for, all of them."""
    metadata, smart = (requests.get(f"{root}/fhir/{p}", timeout=10).json() for p in WELL_KNOWN)
    wanted = [s for s in advertised_scopes(metadata, smart) if not s.startswith("system/AuditEvent.")]
    return [*wanted, "directory.export"]  # reads in bulk: $export and the child's type-level _history


WELL_KNOWN = ("metadata", ".well-known/smart-configuration")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def conf(
    request: pytest.FixtureRequest, sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Conf]:
    """One running server per database for the whole module, with its registered system."""
    postgres: Engine | None = None
    if request.param == "postgres":
        postgres = request.getfixturevalue("postgres_engine")
    folder = tmp_path_factory.mktemp(f"conformance-{request.param}")
    with (
        database(request.param, sqlite_template, folder, postgres) as engine,
        serving(engine, free_port()) as (root, app),
    ):
        yield build(engine, folder, root, app, system_scopes(root))


@pytest.fixture
def checked(conf: Conf) -> Iterator[Conf]:
    """The module's server for one case; afterwards, every answer the clients got must be R4."""
    conf.recorder.answers.clear()
    yield conf
    problems = conf.recorder.problems(conf.base)
    assert not problems, "\n".join(problems)


def test_the_cases_are_what_the_running_server_advertises(checked: Conf) -> None:
    """The live CapabilityStatement (read with fhirclient's strict R4 model) lists what was collected."""
    statement = CapabilityStatement.read_from("metadata", checked.server)
    assert statement.fhirVersion == "4.0.1"
    live = advertised(statement.as_json())
    assert sorted(live) == sorted(ADVERTISED)
    assert len(live) == len(set(live)), "something is advertised twice"


@pytest.mark.parametrize(("kind", "what"), ADVERTISED, ids=[f"{k}-{w}" for k, w in ADVERTISED])
def test_advertised(checked: Conf, kind: str, what: str) -> None:
    """Exercise one advertised thing through a stock client (the table says how)."""
    case = CASES.get((kind, what))
    assert case is not None, (
        f"The CapabilityStatement advertises {what} on {kind} but the conformance suite does not "
        f"exercise it: add ({kind!r}, {what!r}) and how to exercise it to INTERACTIONS "
        "(tests/interop/conformance_cases.py) or SEARCHES, INCLUDES or OPERATIONS "
        "(tests/interop/conformance_searches.py)"
    )
    case(checked)
    assert checked.recorder.answers, "the case sent nothing to the server"


def test_every_case_is_advertised() -> None:
    """A case for something the server no longer advertises is dead: remove it (or advertise it)."""
    assert sorted(set(CASES) - set(ADVERTISED)) == []


# What a type may be asked and how (`{id}`: a resource of the type the world holds).
INTERACTION_REQUESTS = {
    "create": ("post", "{kind}"),
    "update": ("put", "{kind}/{id}"),
    "patch": ("patch", "{kind}/{id}"),
    "delete": ("delete", "{kind}/{id}"),
    "history-instance": ("get", "{kind}/{id}/_history"),
    "vread": ("get", "{kind}/{id}/_history/1"),
    "history-type": ("get", "{kind}/_history"),
}
TYPES = [
    r["type"] for r in capability_statement(base="http://c/fhir", issuer="http://c")["rest"][0]["resource"]
]


@pytest.mark.parametrize("kind", TYPES)
def test_what_is_not_advertised_is_refused(checked: Conf, kind: str) -> None:
    """The other way round: each interaction a type does not advertise is refused (405, or 404 where the
    path names nothing), with an OperationOutcome, and changes nothing."""
    offered = {what for k, what in ADVERTISED if k == kind}
    rid = IDS[kind](checked)
    client = checked.auditor if kind == "AuditEvent" else checked.fhir
    before = client.reference(kind, rid).to_resource().serialize()
    for interaction, (method, path) in INTERACTION_REQUESTS.items():
        if interaction in offered:
            continue
        url = path.format(kind=kind, id=rid)
        with pytest.raises(BaseFHIRError):
            client.execute(url, method=method, data={"resourceType": kind, "id": rid})
        answer = checked.recorder.answers[-1]
        assert answer.status in (404, 405), (interaction, answer)
        assert answer.body["resourceType"] == "OperationOutcome", (interaction, answer)
    assert client.reference(kind, rid).to_resource().serialize() == before
