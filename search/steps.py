"""A computation written once as steps that yield the reads it needs (a generator: each `yield`
hands out a request and is sent back its answer), run either by calling each read or by awaiting
it. The matching engine and the Elasticsearch backend use it, so a search reads the same way
whether its backend is called from a worker thread or awaited on the event loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import TypeVar

Ask = TypeVar("Ask")
Answer = TypeVar("Answer")
Result = TypeVar("Result")


def run_steps(steps: Generator[Ask, Answer, Result], read: Callable[[Ask], Answer]) -> Result:
    """Run `steps`, answering each request with `read(request)`; its return value."""
    try:
        ask = next(steps)
        while True:
            ask = steps.send(read(ask))
    except StopIteration as done:
        result: Result = done.value
        return result


async def await_steps(
    steps: Generator[Ask, Answer, Result], read: Callable[[Ask], Awaitable[Answer]]
) -> Result:
    """`run_steps`, awaiting each `read(request)`."""
    try:
        ask = next(steps)
        while True:
            ask = steps.send(await read(ask))
    except StopIteration as done:
        result: Result = done.value
        return result
