"""`EventStreamResponse` cancelled mid-stream, as uvicorn cancels a response still running at
its graceful shutdown timeout (a second signal during a drain, before `closing` is set): the
cancellation reaches the frame generator, which is closed, and nothing else goes wrong."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncGenerator

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from service.api.sse import EventStreamResponse
from tests.e2e.waiting import until


async def test_a_stream_cancelled_at_the_graceful_timeout_closes_its_generator_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    happened: list[str] = []

    async def frames() -> AsyncGenerator[bytes, None]:
        try:
            yield b": stream open\n\n"
            while True:
                await asyncio.sleep(0.1)
                yield b": keepalive\n\n"
        finally:
            happened.append("generator closed")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        response = EventStreamResponse(
            frames(),
            send_timeout_s=5,
            closing=asyncio.Event(),
            on_close=lambda: happened.append("on_close"),
        )
        await response(scope, receive, send)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, lifespan="off", timeout_graceful_shutdown=1)
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started)
        async with (
            httpx.AsyncClient() as client,
            client.stream("GET", f"http://127.0.0.1:{port}/") as stream,
        ):
            lines = stream.aiter_lines()
            assert await anext(lines) == ": stream open"
            server.should_exit = True
            with pytest.raises(httpx.RemoteProtocolError):
                async for _ in lines:
                    pass
        await asyncio.wait_for(serving, 10)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        sock.close()
    assert happened == ["generator closed", "on_close"]
    assert "already running" not in caplog.text
