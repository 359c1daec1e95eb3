"""Hypothesis strategies for hostile FHIR input: JSON of every shape, references, resources bent out
of shape from valid ones, Bundles, search parameters and headers (tests/interop/test_fhir_fuzz.py).

Each strategy mixes values a client could send by mistake (a number where a string goes, a missing
element, a reference without a type) with values an attacker would try (huge strings, deep
nesting, path traversal in references, circular `urn:uuid:` references, control characters)."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

from hypothesis import strategies as st

from interop import params as P

FOREIGN = "http://other.example/fhir"
HUGE = 70_000  # longer than any limit of ours, shorter than the body limit

# Strings that are not plain: unicode of every category (surrogates cannot be JSON-encoded by
# the client and are left out), control characters, and the separators the parsers split on.
text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\u202e\u0000\ufeff",
            "😀" * 5,
            "Ω≈ç√∫",
            "a|b|c",
            "|",
            "||",
            ",",
            ",,,",
            "$",
            "%",
            "%00",
            "%2F..%2F",
            "../../etc/passwd",
            "'; DROP TABLE child; --",
            "\\",
            '"',
            "null",
            "NaN",
            "-1",
            "0",
            "1e309",
            "9" * 40,
            "²",
            "٣",
            "2020-02-30",
            "0000-00-00",
            "9999-12-31",
            "2020-13-01T25:61:61Z",
            "2020-01-01T00:00:00+99:00",
            "gt9999-12-31",
            "lt0001-01-01",
            "x" * 300,
        ]
    ),
)
huge_text = st.sampled_from(["a" * HUGE, "😀" * (HUGE // 4), "/" * HUGE, "Patient/" + "1" * HUGE])
numbers = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 2**31, 2**63, -(2**63) - 1, 10**400]),
    st.floats(allow_nan=False, allow_infinity=False),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(text, st.sampled_from(["reference"])), inner, max_size=4),
    ),
    max_leaves=12,
)


def deep(levels: int, leaf: Any = "x") -> Any:
    """A value nested `levels` deep, objects and lists in turn."""
    out = leaf
    for i in range(levels):
        out = {"extension": [out]} if i % 2 else [out]
    return out


def deep_raw(levels: int) -> bytes:
    """A JSON body nested deeper than Python's json module parses (it recurses)."""
    return b'{"resourceType":"Bundle","type":"batch","entry":' + b"[" * levels + b"]" * levels + b"}"


hostile = st.one_of(
    json_values,
    huge_text,
    st.sampled_from([deep(60), deep(300), {"resourceType": "Patient"}, [None], {}, []]),
).map(copy.deepcopy)  # each draw its own copy: a later change to it must not change the next draw


def references(ids: dict[str, list[str]]) -> st.SearchStrategy[str]:
    """References: well-formed ones to records that exist, and every kind of malformed one."""
    kinds = [k for k in ids if k[0].isupper() and ids[k]]
    real = st.sampled_from(kinds).flatmap(lambda k: st.sampled_from([f"{k}/{i}" for i in ids[k]]))
    rid = st.one_of(st.sampled_from([i for k in kinds for i in ids[k]]), st.just(str(uuid.uuid4())))
    kind = st.sampled_from([*kinds, "Patient", "Group", "patient", "", "Unknown", "Patient/Patient"])
    shapes = st.tuples(kind, rid).flatmap(
        lambda kr: st.sampled_from(
            [
                kr[1],  # no slash
                f"{kr[0]}/",
                f"/{kr[0]}/{kr[1]}",
                f"{kr[0]}/../{kr[1]}",
                f"{kr[0]}/{kr[1]}#frag",
                f"#{kr[1]}",
                f"{kr[0]}/{kr[1]}?x=1",
                f"{kr[0]}/{kr[1]}/_history/1",
                f"{kr[0]}/{kr[1]}/",
                f"{kr[0]}//{kr[1]}",
                f"urn:uuid:{kr[1]}",
                f"urn:oid:{kr[1]}",
                f"{FOREIGN}/{kr[0]}/{kr[1]}",
                f"http://testserver/fhir/{kr[0]}/{kr[1]}",
                f"http://testserver/fhir/{kr[0]}/{kr[1]}/../../x",
                f"HTTP://TESTSERVER/fhir/{kr[0]}/{kr[1]}",
                f"http://testserver/fhir/../fhir/{kr[0]}/{kr[1]}",
                f"https://testserver/fhir/{kr[0]}/{kr[1]}",
                f"{kr[0]}/{kr[1]}%2F..",
                f"{kr[0]}/{kr[1] * 50}",
                f"{kr[0]}/{kr[1].upper()}",
                f"{kr[0]}/{{{kr[1]}}}",
            ]
        )
    )
    return st.one_of(real, shapes, text, huge_text)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indexes) into a JSON tree, to eight levels down."""
    out: list[tuple[Any, ...]] = []
    if len(prefix) >= 8:
        return out
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        out.append((*prefix, key))
        out.extend(_paths(value, (*prefix, key)))
    return out


def _set(node: Any, path: tuple[Any, ...], value: Any, *, delete: bool = False) -> None:
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value


@st.composite
def bent(draw: st.DrawFn, template: dict[str, Any], ids: dict[str, list[str]]) -> dict[str, Any]:
    """A resource from a valid one (sometimes unchanged), with up to four elements changed: a value
    of another type, removed, an extra element, a reference bent, the resourceType changed, something
    contained."""
    res = copy.deepcopy(template)
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 4]))):
        paths = _paths(res)
        how = draw(st.sampled_from(["value", "delete", "extra", "reference", "type", "contained", "id"]))
        if how == "value" and paths:
            _set(res, draw(st.sampled_from(paths)), draw(hostile))
        elif how == "delete" and paths:
            _set(res, draw(st.sampled_from(paths)), None, delete=True)
        elif how == "extra":
            res[draw(st.one_of(text, st.sampled_from(["meta", "text", "implicitRules", "_status"])))] = draw(
                hostile
            )
        elif how == "reference":
            refs = [p for p in paths if p[-1] == "reference"]
            if refs:
                _set(res, draw(st.sampled_from(refs)), draw(references(ids)))
        elif how == "type":
            res["resourceType"] = draw(st.one_of(st.sampled_from([*P.SEARCH_PARAMS, "Bundle", "X"]), scalars))
        elif how == "contained":
            res["contained"] = draw(
                st.sampled_from(
                    [
                        [copy.deepcopy(template)],
                        [{"resourceType": "Patient", "id": "p1"}],
                        [{"resourceType": "NotAType", "id": "p1"}],
                        [None],
                        "x",
                    ]
                ).map(copy.deepcopy)
            )
        elif how == "id":
            res["id"] = draw(st.one_of(text, numbers, st.none()))
        if not isinstance(res, dict):
            break
    return res


def raw_body(resource: Any) -> st.SearchStrategy[bytes]:
    """The body as sent: the JSON, or JSON bent at the byte level (NaN, truncated, not UTF-8)."""
    encoded = json.dumps(resource).encode()
    return st.sampled_from(
        [
            encoded,
            encoded.replace(b"}", b',"n":NaN}', 1),
            encoded.replace(b"}", b',"n":Infinity}', 1),
            encoded[: len(encoded) // 2],
            encoded + b"\xff",
            b"\xef\xbb\xbf" + encoded,
            encoded.replace(b'"resourceType"', b'"resourceType":"X","resourceType"', 1),
            encoded.replace(b"}", b',"n":' + b"9" * 5000 + b"}", 1),  # past int()'s 4,300 digits
        ]
    )


def bundles(
    entries: st.SearchStrategy[Any], ids: dict[str, list[str]], limit: int
) -> st.SearchStrategy[dict[str, Any]]:
    """Transaction and batch Bundles of hostile entries (and of entries that are not objects)."""
    full_url = st.one_of(
        st.sampled_from(["urn:uuid:a", "urn:uuid:b", "urn:uuid:c", ""]),
        references(ids),
        st.none(),
        json_values,
    )
    request = st.one_of(
        st.fixed_dictionaries(
            {
                "method": st.one_of(
                    st.sampled_from(["POST", "PUT", "GET", "DELETE", "PATCH", "HEAD", "post", ""]), scalars
                ),
                "url": st.one_of(references(ids), st.sampled_from(list(P.SEARCH_PARAMS)), scalars),
            },
            optional={
                "ifMatch": st.one_of(st.sampled_from(['W/"1"', '"1"', "*", 'W/"x"']), scalars),
                "ifNoneExist": st.one_of(
                    st.sampled_from(["identifier=x", "_id=1", "patient=Patient/x"]), scalars
                ),
                "ifNoneMatch": scalars,
                "ifModifiedSince": scalars,
            },
        ),
        scalars,
        st.sampled_from([[], [{"method": "GET"}], "GET Patient"]),
    )
    entry = st.one_of(
        st.fixed_dictionaries(
            {"resource": entries, "request": request}, optional={"fullUrl": full_url, "search": json_values}
        ),
        json_values,
    )
    return st.fixed_dictionaries(
        {
            "resourceType": st.one_of(st.just("Bundle"), st.just("Bundle"), scalars),
            "type": st.one_of(st.sampled_from(["transaction", "batch", "collection", "searchset"]), scalars),
            "entry": st.one_of(
                st.lists(entry, max_size=6),
                st.lists(entry, min_size=limit + 1, max_size=limit + 2),
                json_values,
            ),
        },
        optional={"id": scalars, "meta": json_values},
    )


def _values(kind: str) -> st.SearchStrategy[str]:
    if kind == "date":
        return st.one_of(
            st.tuples(st.sampled_from(["", *P.PREFIXES, "xx", "sa", "eb", "ap"]), text).map("".join),
            st.dates().map(str),
            st.datetimes().map(lambda d: d.isoformat() + "Z"),
            text,
        )
    if kind == "token":
        return st.one_of(st.tuples(text, st.sampled_from(["|", "", "||"]), text).map("".join), text)
    return text


RESULTS = [
    "_count",
    "_offset",
    "_since",
    "_lastUpdated",
    "_include",
    "_revinclude",
    "_elements",
    "_summary",
    "_total",
    "_sort",
    "_format",
    "_cursor",
    "_type",
    "_contained",
    "_has:Flag:patient:code",
]
MODIFIERS = [
    "",
    ":exact",
    ":contains",
    ":missing",
    ":not",
    ":text",
    ":below",
    ":above",
    ":of-type",
    ":identifier",
    ":Patient",
    ":iterate",
    ":",
    "::",
]


@st.composite
def search_items(draw: st.DrawFn, kind: str, ids: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Search parameters of `kind`: every declared one with modifiers and prefixes, the result
    parameters, unknown ones; repeated, empty, unicode."""
    declared = P.SEARCH_PARAMS.get(kind, {})
    names = st.one_of(st.sampled_from([*declared, *RESULTS] or RESULTS), text)
    item = st.tuples(names, st.sampled_from(MODIFIERS)).flatmap(
        lambda nm: st.tuples(
            st.just(nm[0] + nm[1]),
            st.one_of(
                _values(declared.get(nm[0], "string")),
                references(ids) if declared.get(nm[0]) == "reference" else text,
                st.sampled_from(
                    [
                        "Patient:patient",
                        "EpisodeOfCare:patient",
                        "*",
                        "Flag:patient:Patient",
                        "id,meta,name",
                        "true",
                        "count",
                        "data",
                        "text",
                        "-1",
                        "0",
                        "100",
                        "101",
                        "100000",
                        "xml",
                        "json",
                        "2020-01-01T00:00:00Z",
                        "2020-01-01T00:00:00",
                    ]
                ),
            ),
        )
    )
    return draw(st.lists(item, max_size=8))


accept = st.sampled_from(
    [
        "application/fhir+json",
        "application/fhir+xml",
        "application/xml",
        "text/html",
        "*/*;q=0",
        "application/fhir+json;q=0, application/fhir+xml",
        "application/fhir+json; fhirVersion=3.0",
        ";;;",
        "",
        "\u00e9",
    ]
)
content_type = st.sampled_from(
    [
        "application/fhir+json",
        "application/json",
        "application/fhir+json; charset=latin-1",
        "application/fhir+xml",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "",
    ]
)
prefer = st.sampled_from(
    [
        "return=minimal",
        "return=representation",
        "return=OperationOutcome",
        "handling=strict",
        "handling=lenient",
        "respond-async",
        "handling=strict, return=minimal",
        "x" * 500,
    ]
)
if_match = st.one_of(
    st.sampled_from(
        ['W/"1"', '"1"', "1", "*", 'W/"0"', 'W/"999999999"', 'W/"9999999999"', 'W/""', 'W/"1", W/"2"']
    ),
    text,
)
if_none_exist = st.one_of(
    st.sampled_from(
        [
            "identifier=x",
            "_id=" + str(uuid.uuid4()),
            "patient=Patient/x",
            "?",
            "&&",
            "_count=0",
            "unknown=1",
            "patient:missing=true",
        ]
    ),
    text,
)


@st.composite
def headers(draw: st.DrawFn) -> dict[str, str]:
    """FHIR's request headers, each present or not, with odd values."""
    out: dict[str, str] = {}
    for name, values in (
        ("Accept", accept),
        ("Prefer", prefer),
        ("If-Match", if_match),
        ("If-None-Exist", if_none_exist),
        ("If-None-Match", if_match),
        ("If-Modified-Since", text),
    ):
        if draw(st.integers(0, 3)) == 0:
            value = draw(values)
            try:
                value.encode("ascii")
            except UnicodeEncodeError:
                continue  # not sendable as an HTTP header
            if "\n" not in value and "\r" not in value and "\x00" not in value:
                out[name] = value
    return out


@st.composite
def linked_bundles(draw: st.DrawFn, templates: dict[str, dict[str, Any]], kinds: list[str]) -> dict[str, Any]:
    """A transaction or batch of valid creates whose references point at each other by `urn:uuid:`
    fullUrls: forwards, backwards, at themselves, in a circle, at a fullUrl no entry has, and
    with fullUrls used twice."""
    n = draw(st.integers(1, 4))
    urls = [f"urn:uuid:{i}" for i in range(n)]
    entries = []
    for i in range(n):
        kind = draw(st.sampled_from(kinds))
        resource = {k: v for k, v in copy.deepcopy(templates[kind]).items() if k not in ("id", "meta")}
        for path in [p for p in _paths(resource) if p[-1] == "reference"]:
            if draw(st.booleans()):
                target = draw(st.sampled_from([*urls, "urn:uuid:nobody", f"urn:uuid:{uuid.uuid4()}"]))
                _set(resource, path, target)
        full_url = draw(st.sampled_from([urls[i], urls[i], urls[0], "", f"{urls[i]}#x"]))
        entries.append(
            {"fullUrl": full_url, "resource": resource, "request": {"method": "POST", "url": kind}}
        )
    return {
        "resourceType": "Bundle",
        "type": draw(st.sampled_from(["transaction", "batch"])),
        "entry": entries,
    }
