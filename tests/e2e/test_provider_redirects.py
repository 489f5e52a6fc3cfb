"""A provider's redirect is never followed: it would carry the key to another host."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from signaling.ids import CallId
from signaling.provider import CallNotFound, ProviderClient, ProviderRejected
from signaling.realtime.sideband import Sideband, SidebandRefused
from tests.e2e.conftest import Serve
from tests.unit.sdp_samples import AIORTC_OFFER

KEY = "sk-proj-redirected0123456789abcdefghijkl"


def _elsewhere(seen: list[str]) -> Starlette:
    """The host a redirect names: it records every Authorization header it is sent."""

    async def anything(request: Request) -> Response:
        seen.append(request.headers.get("authorization", ""))
        return Response(status_code=200)

    async def sideband(websocket: WebSocket) -> None:
        seen.append(websocket.headers.get("authorization", ""))
        await websocket.close()

    return Starlette(
        routes=[
            Route("/{path:path}", anything, methods=["GET", "POST"]),
            WebSocketRoute("/v1/realtime", sideband),
        ]
    )


def _redirecting(to: str, status: int = 307) -> Starlette:
    async def redirect(request: Request) -> Response:
        return Response(status_code=status, headers={"location": f"{to}{request.url.path}"})

    async def sideband(websocket: WebSocket) -> None:
        location = f"{to.replace('http', 'ws')}/v1/realtime?{websocket.url.query}"
        await websocket.send_denial_response(
            Response(status_code=302, headers={"location": location})
        )

    return Starlette(
        routes=[
            Route("/{path:path}", redirect, methods=["GET", "POST"]),
            WebSocketRoute("/v1/realtime", sideband),
        ]
    )


async def test_a_call_creation_answered_with_a_redirect_is_refused_and_not_followed(
    serve: Serve,
) -> None:
    seen: list[str] = []
    provider = ProviderClient(await serve(_redirecting(await serve(_elsewhere(seen)))), KEY)
    try:
        with pytest.raises(ProviderRejected) as refused:
            await provider.create_call(AIORTC_OFFER, None)
    finally:
        await provider.aclose()
    assert refused.value.status == 307
    assert seen == []


async def test_a_hang_up_answered_with_a_redirect_is_not_taken_for_done(serve: Serve) -> None:
    seen: list[str] = []
    provider = ProviderClient(await serve(_redirecting(await serve(_elsewhere(seen)))), KEY)
    try:
        with pytest.raises(ProviderRejected) as refused:
            await provider.hangup(CallId("rtc_redirected"))
    finally:
        await provider.aclose()
    assert not isinstance(refused.value, CallNotFound)
    assert seen == []


async def test_a_sideband_handshake_answered_with_a_redirect_is_a_refusal(serve: Serve) -> None:
    seen: list[str] = []
    redirecting = await serve(_redirecting(await serve(_elsewhere(seen))))
    sideband = Sideband(f"{redirecting.replace('http', 'ws')}/v1/realtime?call_id=rtc_1", KEY)
    with pytest.raises(SidebandRefused) as refused:
        await sideband.connect()
    assert refused.value.status == 302
    assert seen == []
