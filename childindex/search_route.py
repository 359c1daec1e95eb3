"""POST /api/v1/children/search answered ahead of the routers: the search is the hot path."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette._exception_handler import wrap_app_handling_exceptions
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from directory.http.deps import current_actor
from search.api import SearchCriteria, answer_search
from search.api import router as search_router


class _LeanSearch:
    """POST /api/v1/children/search answered ahead of the routers, for the search is the hot path
    (docs/performance.md, issue #21: matching a route among the included routers, FastAPI's request
    wrapper and its dependency solving were about a tenth of a search's CPU).

    It does what the FastAPI route (`search_children`, still in the schema) does, in its order
    where an order shows: the caller from the token under the route's own policy (`scope["route"]`
    is that route, so its policy, rate limit and metrics label are the same), then the search;
    every exception goes to the app's handlers as before. A body it does not take as it is (not
    `application/json`, not valid criteria) is handed to the FastAPI route unchanged, which
    answers it as it always has (a 422 naming the field, a 401 first when unsigned): only a
    well-formed search takes the short way.
    """

    def __init__(self, route: APIRoute) -> None:
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"], scope["endpoint"] = self.route, self.route.endpoint
        request = Request(scope, receive, send)
        body = await request.body()
        criteria = _well_formed(request.headers.get("content-type"), body)
        if criteria is None:
            await self.route.app(scope, _replay(body, receive), send)
            return

        async def answer(scope: Scope, receive: Receive, send: Send) -> None:
            actor = await current_actor(request)
            response = await answer_search(request, actor, criteria)
            await response(scope, receive, send)

        await wrap_app_handling_exceptions(answer, request)(scope, receive, send)


def _well_formed(content_type: str | None, body: bytes) -> SearchCriteria | None:
    if not body or (content_type or "").partition(";")[0].strip().lower() != "application/json":
        return None
    try:
        return SearchCriteria.model_validate_json(body)
    except ValidationError:
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the body already read, once, then is the server's again."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def install_lean_search(app: FastAPI) -> None:
    """Put the short way for POST searches first among the app's routes (see `_LeanSearch`)."""
    post = next(r for r in search_router.routes if isinstance(r, APIRoute) and r.name == "search_children")
    if any(isinstance(r, Route) and isinstance(r.app, _LeanSearch) for r in app.router.routes):
        raise ValueError("the short way for searches is installed already")
    lean = Route(post.path, _LeanSearch(post), methods=["POST"], name=post.name, include_in_schema=False)
    app.router.routes.insert(0, lean)
