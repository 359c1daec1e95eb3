"""What the input guard (childindex/guard.py) costs a request, in process.

    python bench/input_guard.py --n 20000

Runs the same ASGI request through an empty app with and without the guard in front, the app
reading the whole body as a route would, and prints the difference per request: for the search
path's POST (a ~120-byte JSON body and the headers a client sends), for a GET with a query
string, and for a FHIR transaction Bundle of 100 entries (over the depth limit's bracket count,
so the guard walks it). Best of five runs of N requests each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from childindex.guard import InputGuard, Refusal

SEARCH = json.dumps(
    {"given": "Olivia", "family": "Smith", "birth_date": "2015-03-01", "postcode": "OX4 1AB", "limit": 10}
).encode()
BUNDLE = json.dumps(
    {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{i:032x}",
                "resource": {
                    "resourceType": "EpisodeOfCare",
                    "status": "active",
                    "patient": {"reference": "Patient/0b5c7a36-2f5d-4d71-9a47-0d6c1f1e2a3b"},
                    "period": {"start": "2026-01-01"},
                    "extension": [{"url": "https://x/level-of-need", "valueCoding": {"code": "2"}}],
                },
                "request": {"method": "POST", "url": "EpisodeOfCare"},
            }
            for i in range(100)
        ],
    }
).encode()
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"authorization", b"Bearer " + b"x" * 700),
    (b"x-purpose-of-use", b"considering-caf"),
    (b"content-type", b"application/json"),
    (b"accept", b"*/*"),
    (b"user-agent", b"bench"),
]


async def inner(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that reads the body to the end, as a route does, and answers 200."""
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _refuse(_: Any, r: Refusal) -> Response:
    return Response(r.message, status_code=r.status)


async def per_request(app: Any, method: str, path: str, query: bytes, body: bytes, n: int) -> float:
    """Mean seconds per request over n requests."""
    scope = {"type": "http", "method": method, "path": path, "query_string": query, "headers": HEADERS}

    async def send(_: Any) -> None:
        return None

    started = time.perf_counter()
    for _ in range(n):

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        await app(dict(scope), receive, send)
    return (time.perf_counter() - started) / n


async def main() -> None:
    """Print the guard's cost per request for each case."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    guarded = InputGuard(
        inner,
        max_json_depth=64,
        max_body_bytes=1024 * 1024,
        surfaces=[("/fhir", 5 * 1024 * 1024, _refuse)],
        default=_refuse,
    )
    cases = [
        ("search POST", "POST", "/api/v1/children/search", b"", SEARCH, args.n),
        ("search GET", "GET", "/api/v1/children/search", b"family=Smith&birth_date=2015-03-01", b"", args.n),
        ("FHIR Bundle, 100 entries", "POST", "/fhir", b"", BUNDLE, max(1, args.n // 100)),
    ]
    for label, method, path, query, body, n in cases:
        bare = min([await per_request(inner, method, path, query, body, n) for _ in range(5)])
        with_guard = min([await per_request(guarded, method, path, query, body, n) for _ in range(5)])
        print(f"{label} ({len(body)} bytes): +{(with_guard - bare) * 1e6:.2f} µs per request")


if __name__ == "__main__":
    asyncio.run(main())
