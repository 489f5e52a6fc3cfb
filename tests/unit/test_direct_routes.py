"""Routes served directly: their endpoint answers, its exceptions go to the app's handlers as
the exception middleware would send them, and every other request goes on to the app."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from service.api.direct import DirectRoutes


class Refused(Exception):
    pass


class Unexpected(Exception):
    pass


async def _start(request: Request) -> Response:
    match request.headers.get("x-case"):
        case "refused":
            raise Refused
        case "unexpected":
            raise Unexpected
    return PlainTextResponse("direct", status_code=201)


async def _on_refused(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("refused", status_code=422)


async def _on_anything(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("anything", status_code=500)


async def _inner(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("inner")(scope, receive, send)


_APP = DirectRoutes(
    _inner,
    routes=[Route("/v1/calls", _start, methods=["POST"])],
    handlers={Refused: _on_refused, Exception: _on_anything},
)


def _request(method: str, path: str, case: str = "") -> tuple[int, bytes]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"x-case", case.encode())],
        "query_string": b"",
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(_APP(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_a_served_route_is_answered_by_its_endpoint() -> None:
    assert _request("POST", "/v1/calls") == (201, b"direct")


def test_an_exception_with_a_handler_is_answered_by_it() -> None:
    assert _request("POST", "/v1/calls", "refused") == (422, b"refused")


def test_an_exception_handled_only_as_any_exception_propagates() -> None:
    with pytest.raises(Unexpected):
        _request("POST", "/v1/calls", "unexpected")


def test_other_methods_and_paths_go_on_to_the_app() -> None:
    assert _request("GET", "/v1/calls") == (200, b"inner")
    assert _request("POST", "/v1/calls/rtc_1") == (200, b"inner")


def test_a_route_with_path_parameters_cannot_be_served_directly() -> None:
    with pytest.raises(ValueError, match="cannot be served directly"):
        DirectRoutes(_inner, routes=[Route("/v1/calls/{call_id}", _start)], handlers={})
