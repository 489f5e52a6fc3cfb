"""Serving a few busy routes' endpoints without the framework's routing and dependency layers.

FastAPI reaches an endpoint through its exception middleware, an exit-stack middleware, the
router's match over every route, the route's request wrapper and dependency resolution: per
request, more work than a call start's own checks. `DirectRoutes` answers the routes given to it
itself, with the same endpoint, the same exception handlers and the same answers; the routes
stay registered with the app, so the OpenAPI document is unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Any], Response | Awaitable[Response]]


class DirectRoutes:
    """ASGI middleware calling `routes`' endpoints directly.

    Each route must have a fixed path (no parameters) and an endpoint that takes only the
    request and returns a `Response`. An exception it raises is answered by the handler
    `handlers` (the app's `exception_handlers`) maps it to, as the exception middleware would;
    one with no handler, or a 500 handler only, propagates to the server-error middleware. (A
    handler that is a plain function runs on the event loop: the app's are all coroutines.)
    """

    def __init__(
        self,
        app: ASGIApp,
        routes: list[Route],
        handlers: Mapping[Any, Handler],
    ) -> None:
        self.app = app
        self._endpoints: dict[tuple[str, str], Endpoint] = {}
        for route in routes:
            if route.param_convertors or not route.methods:
                raise ValueError(f"{route.path} cannot be served directly")
            for method in route.methods:
                self._endpoints[(method, route.path)] = route.endpoint
        self._handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = (
            self._endpoints.get((scope["method"], scope["path"]))
            if scope["type"] == "http"
            else None
        )
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        started = False

        async def sender(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            response = await endpoint(request)
            await response(scope, receive, sender)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            if started:
                raise RuntimeError("handled exception, but the response had started") from exc
            answer = handler(request, exc)
            if inspect.isawaitable(answer):
                answer = await answer
            await answer(scope, receive, sender)
            # Reused exception instances accumulate tracebacks across requests.
            exc.__traceback__ = None

    def _handler(self, exc: Exception) -> Handler | None:
        # The lookup of starlette's exception middleware; `Exception` and 500 belong to the
        # server-error middleware, outside.
        if (
            isinstance(exc, HTTPException)
            and exc.status_code != 500
            and exc.status_code in self._handlers
        ):
            return self._handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in self._handlers:
                return self._handlers[cls]
        return None
