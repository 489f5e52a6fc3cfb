"""`callbridge serve`'s HTTP/1.1 protocol: requests the parser refuses are answered 400
problem+json, as every other error, a lost connection reaches a call start even when a
pipelined request came after it, and a call whose answer could not be written is hung up.

Both are the server's doing, not the app's, so these run against `callbridge serve` itself, with
the server configuration users get.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from service.api.http_protocol import HttpProtocol
from service.app import create_app
from service.settings import Settings
from tests.e2e.conftest import Serve
from tests.e2e.faulty_provider import FaultyProvider
from tests.e2e.hostile import RawConnection, assert_problem, request_head
from tests.e2e.processes import Process, free_port
from tests.e2e.waiting import until
from tests.unit.sdp_samples import AIORTC_OFFER


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("parser") / "serve.log"
    service = Process(["serve"], {"CALLBRIDGE_PORT": str(port)}, log).start()
    url = f"http://127.0.0.1:{port}"
    try:
        service.wait_http(f"{url}/healthz")
        yield url
    finally:
        service.stop()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /v1/calls HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /v1/calls HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ],
    ids=["negative-length", "bad-chunk-size", "header-without-colon", "tls-hello"],
)
async def test_a_request_the_http_parser_refuses_is_a_problem(
    service_url: str, request_bytes: bytes
) -> None:
    connection = await RawConnection.open(service_url)
    try:
        await connection.send(request_bytes)
        response = await connection.response()
    finally:
        await connection.close()
    assert_problem(response.status, response.headers["content-type"], response.json(), 400)
    assert response.headers["connection"] == "close"


async def test_a_call_start_whose_client_left_behind_a_pipelined_request_is_hung_up(
    serve: Serve, tmp_path: Path
) -> None:
    provider = FaultyProvider(script=["held"])
    port = free_port()
    settings = {
        "CALLBRIDGE_PROVIDER": "openai",
        "CALLBRIDGE_PROVIDER_URL": await serve(provider.app()),
        "CALLBRIDGE_API_KEY": "sk-test-pipelined-start-0123456789",
        "CALLBRIDGE_PORT": str(port),
    }
    service = Process(["serve"], settings, tmp_path / "serve.log").start()
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(service.wait_http, f"{url}/healthz")
        offer = AIORTC_OFFER.encode()
        start = request_head(
            "POST",
            "/v1/calls",
            {"Content-Type": "application/sdp", "Content-Length": str(len(offer))},
        )
        connection = await RawConnection.open(url)
        await connection.send(start + offer + request_head("GET", "/healthz", {}))
        await asyncio.wait_for(provider.holding.wait(), 10)
        await connection.close()
        provider.release.set()
        await until(lambda: provider.hangups == provider.created == ["rtc_fault0"])
    finally:
        provider.release.set()
        service.stop()


class _InTestServer(uvicorn.Server):
    """`callbridge serve`'s server in the test's event loop, leaving the test's signals alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def test_a_call_answer_dropped_because_its_client_left_is_hung_up(serve: Serve) -> None:
    provider = FaultyProvider()
    settings = Settings(
        port=0,
        provider="openai",
        provider_url=await serve(provider.app()),
        api_key="sk-test-dropped-answer-0123456789",
    )
    app = create_app(settings)
    listener = socket.socket()
    # A small send buffer: the responses below fill it, and uvicorn's own buffer, for sure.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_config=None, http=HttpProtocol, timeout_graceful_shutdown=1)
    server = _InTestServer(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        await until(lambda: server.started)
        # Enough pipelined OpenAPI documents, never read, that the last one fills uvicorn's
        # buffer past its 64 KiB mark (RFC 9112 §9.3.2: they are answered in order): the call
        # start behind them is served, and its answer waits for the client to read.
        document = len(json.dumps(app.openapi()))
        count = math.ceil((64 + 16) * 1024 / document)
        offer = AIORTC_OFFER.encode()
        start = request_head(
            "POST",
            "/v1/calls",
            {"Content-Type": "application/sdp", "Content-Length": str(len(offer))},
        )
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        client.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(client, listener.getsockname())
        documents = request_head("GET", "/openapi.json", {}) * count
        await loop.sock_sendall(client, documents + start + offer)
        await until(lambda: list(app.state.manager.sessions) == provider.created == ["rtc_fault0"])
        client.close()
        await until(lambda: provider.hangups == ["rtc_fault0"])
    finally:
        server.should_exit = True
        await serving
