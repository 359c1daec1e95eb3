"""A lane of worker threads of its own for the routes that may wait on the search backend.

A sync route runs in the process's shared pool of worker threads (anyio's default limiter: 40).
A search that waits on an Elasticsearch node that has stopped answering holds its thread until
the client gives up (30 s): forty such searches, from the pages or from FHIR `Patient/$match`,
and every other sync route of the process (a child's card, a record's change, the admin pages,
`/fhir` reads) waited behind them. The routes that search run their work here instead: a lane
as wide as the shared pool (`CHILDINDEX_REQUEST_THREADS`, 4 by default: CPU-bound searches go
fastest with a few), so at most that many of them wait on the node at once, the rest wait on the
event loop holding no thread, and the shared pool stays for everything else. (The JSON API's search
awaits the node on the loop and needs no thread: search/api.py.) The database pool counts the
lane's threads as well as the shared ones (directory.db.pool_sizes).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from directory.http.deps import ending_its_unit

T = TypeVar("T")

_LANES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter]
_LANES = weakref.WeakKeyDictionary()


def search_lane() -> anyio.CapacityLimiter:
    """This event loop's lane, as wide as its shared pool (set at start-up: childindex/app.py); a
    limiter waits on the loop it was first used on, so one lane per loop."""
    loop = asyncio.get_running_loop()
    lane = _LANES.get(loop)
    if lane is None:  # (no await between the look and the keep: one lane a loop)
        width = int(anyio.to_thread.current_default_thread_limiter().total_tokens)
        lane = _LANES[loop] = anyio.CapacityLimiter(width)
    return lane


async def in_search_lane(work: Callable[..., T], /, *args: Any) -> T:
    """`work(*args)` in a thread of the search lane. The request's unit of work, if its route has one
    (a `get_session` dependency), ends in that thread, as a `UnitOfWorkRoute`'s sync endpoint's
    does (directory.http.deps.get_session says why)."""
    return await anyio.to_thread.run_sync(partial(ending_its_unit(work), *args), limiter=search_lane())
