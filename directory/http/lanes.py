"""Lanes of worker threads of their own for the requests that wait on a service outside the process.

A sync route runs in the process's shared pool of threads (`CHILDINDEX_REQUEST_THREADS`, 4 by
default, set at start-up: childindex/app.py). A request that waits on another service holds its
thread for as long as that service takes, up to the client's timeout: four searches waiting on an
Elasticsearch node that has stopped answering (30 s), or four sign-ins waiting on a stalled
identity provider (10 s), and every other sync route of the process (a child's card, a record's
change, the admin pages, `/fhir` reads) waited behind them. Such requests run their blocking part
in a lane instead, so at most the lane's width of them wait at once; the rest wait on the event
loop holding no thread, and the shared pool stays for everything else.

- The search lane (`in_search_lane`), as wide as the shared pool (CPU-bound searches go fastest
  with a few): the pages' searches, FHIR `Patient/$match`, an API search doing blocking I/O. (The
  JSON API's search awaits the node on the loop and needs no thread: search/api.py.)
- The upstream lane (`in_upstream_lane`, directory.db.UPSTREAM_THREADS wide): the requests that wait
  on the identity provider (a sign-in's return, a token of the external issuer whose keys must be
  fetched first) or on the national demographics service (a trace). One slow service outside
  cannot then hold up the searches either.

The database pool counts every lane's threads as well as the shared ones (directory.db.pool_sizes).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from directory.db import UPSTREAM_THREADS
from directory.http.deps import ending_its_unit

T = TypeVar("T")

_LANES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, anyio.CapacityLimiter]]
_LANES = weakref.WeakKeyDictionary()


def _lane(name: str, width: int) -> anyio.CapacityLimiter:
    """This event loop's lane `name` (a limiter waits on the loop it was first used on: one per loop)."""
    lanes = _LANES.setdefault(asyncio.get_running_loop(), {})
    lane = lanes.get(name)
    if lane is None:  # (no await between the look and the keep: one lane of a name a loop)
        lane = lanes[name] = anyio.CapacityLimiter(width)
    return lane


def search_lane() -> anyio.CapacityLimiter:
    """This event loop's search lane, as wide as its shared pool."""
    return _lane("search", int(anyio.to_thread.current_default_thread_limiter().total_tokens))


def upstream_lane() -> anyio.CapacityLimiter:
    """This event loop's upstream lane."""
    return _lane("upstream", UPSTREAM_THREADS)


async def in_search_lane(work: Callable[..., T], /, *args: Any) -> T:
    """`work(*args)` in a thread of the search lane. The request's unit of work, if its route has one
    (a `get_session` dependency), ends in that thread, as a `UnitOfWorkRoute`'s sync endpoint's
    does (directory.http.deps.get_session says why)."""
    return await anyio.to_thread.run_sync(partial(ending_its_unit(work), *args), limiter=search_lane())


async def in_upstream_lane(work: Callable[..., T], /, *args: Any) -> T:
    """`work(*args)` in a thread of the upstream lane, its unit of work ended there (as above)."""
    return await anyio.to_thread.run_sync(partial(ending_its_unit(work), *args), limiter=upstream_lane())
