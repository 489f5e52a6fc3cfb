"""Which methods each path answers, derived from the routes themselves (RFC 9110 §9, §10.2.1).

One middleware answers, for every path, what the routing layer would get wrong or leave out:
404 for a path no route serves, whatever the method (the static mount must not turn a POST into
405); `OPTIONS` with `Allow` where no route defines it; 405 with `Allow` for a method the path
does not take, and for `CONNECT` to a host, where none works; and `Allow` on every 405 and
`OPTIONS` answer lists exactly the methods that work there. A route listed in `refused` exists
only to refuse its method in a protocol's own order (WHIP's trickle-ICE `PATCH`, RFC 9725
§4.3.1), so it is never advertised. `HEAD` is answered wherever `GET` is (RFC 9110 §9.3.2): the
`GET` route runs and only its header section is sent. `OPTIONS *` (the asterisk-form target,
RFC 9112 §3.2.4) asks about the server as a whole (RFC 9110 §9.3.7): its `Allow` lists every
method some path takes; the asterisk with any other method is 400, as it is only for `OPTIONS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.problems import problem_response

_STATIC_METHODS = frozenset({"GET", "HEAD"})

# The path uvicorn gives a request whose target is the asterisk form (RFC 9112 §3.2.4).
_ASTERISK = "*"


def static_paths(directory: Path) -> frozenset[str]:
    """The URL paths a `StaticFiles(html=True)` mount at `/` serves from `directory`."""
    files = {f"/{p.relative_to(directory).as_posix()}" for p in directory.rglob("*") if p.is_file()}
    if "/index.html" in files:
        files.add("/")
    return frozenset(files)


class MethodTable:
    """The methods each path of an app answers, from its routes."""

    def __init__(
        self,
        routes: list[Route],
        *,
        refused: Mapping[str, frozenset[str]],
        static: frozenset[str],
    ) -> None:
        self._routes = routes
        self._refused = refused
        self._static = static

    def allowed(self, path: str) -> frozenset[str]:
        """Methods that work on `path` (empty when no route serves it); OPTIONS included."""
        routes = [route for route in self._routes if route.path_regex.match(path)]
        return self._methods(routes, static=path in self._static)

    def anywhere(self) -> frozenset[str]:
        """Methods that work on some path (empty when no route serves any); OPTIONS included."""
        return self._methods(self._routes, static=bool(self._static))

    def _methods(self, routes: list[Route], *, static: bool) -> frozenset[str]:
        methods: set[str] = set()
        for route in routes:
            if route.methods:
                methods |= route.methods - self._refused.get(route.path, frozenset())
        if static:
            methods |= _STATIC_METHODS
        if "GET" in methods:
            methods.add("HEAD")
        if methods:
            methods.add("OPTIONS")
        return frozenset(methods)

    def routed(self, path: str, method: str) -> bool:
        """Whether a route of the app itself handles `method` on `path` (refusals included)."""
        return any(
            route.methods is not None
            and method in route.methods
            and route.path_regex.match(path) is not None
            for route in self._routes
        )


def allow_header(methods: frozenset[str]) -> str:
    """The `Allow` value for `methods`."""
    return ", ".join(sorted(methods))


class _HeadAnswered(OSError):
    """Raised at a `GET` route's next write once its `HEAD` answer is complete; an `OSError`,
    which is how a streaming response learns that its client is gone."""


class MethodRouting:
    """ASGI middleware answering 404, 405 and `OPTIONS` from a `MethodTable` (see module doc)."""

    def __init__(self, app: ASGIApp, table: MethodTable) -> None:
        self.app = app
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if (
            scope["method"] == "HEAD"
            and not self.table.routed(path, "HEAD")
            and self.table.routed(path, "GET")
        ):
            await self._head(scope, receive, send)
            return
        await self._route(scope, receive, send)

    async def _head(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer `HEAD` with the header section the `GET` route sends, and no content."""
        answered = False

        async def header_only(message: Message) -> None:
            nonlocal answered
            if answered:
                raise _HeadAnswered("the HEAD answer is complete")
            if message["type"] == "http.response.body":
                answered = True
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        try:
            await self._route({**scope, "method": "GET"}, receive, header_only)
        except (_HeadAnswered, ClientDisconnect):
            # An endless `GET` (an event stream) is stopped after its header section.
            if not answered:
                raise

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path == _ASTERISK:
            await self._server_wide(scope, receive, send)
            return
        allowed = self.table.allowed(path)
        allow = allow_header(allowed)
        if method == "CONNECT" and not path.startswith("/"):
            # An authority-form target (RFC 9112 §3.2.3) names a host to open a tunnel to, which
            # this server, no proxy, does for none (RFC 9110 §9.3.6): no method works there.
            response = problem_response(
                405, "CONNECT is not allowed: this server is no proxy", headers={"Allow": ""}
            )
            await response(scope, receive, send)
            return
        if not allowed:
            response = problem_response(404, "no such resource", instance=path)
            await response(scope, receive, send)
            return
        if method == "OPTIONS" and not self.table.routed(path, method):
            await Response(status_code=204, headers={"Allow": allow})(scope, receive, send)
            return
        if method not in allowed and not self.table.routed(path, method):
            response = problem_response(
                405,
                f"{method} is not allowed here",
                headers={"Allow": allow},
                instance=path,
            )
            await response(scope, receive, send)
            return

        async def with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and (
                message["status"] == 405 or method == "OPTIONS"
            ):
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"allow"]
                headers.append((b"allow", allow.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_allow)

    async def _server_wide(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a request for the asterisk-form target, which is the server's as a whole."""
        method: str = scope["method"]
        if method == "OPTIONS":
            allow = allow_header(self.table.anywhere())
            response = Response(status_code=204, headers={"Allow": allow})
        else:
            response = problem_response(400, "the request target * is only for OPTIONS")
        await response(scope, receive, send)
