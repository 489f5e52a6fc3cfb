"""`callbridge serve`'s HTTP/1.1 protocol: requests the parser refuses are answered 400
problem+json, as every other error, and only after the responses owed to the requests before
them; a lost connection reaches a call start even when a pipelined request came after it, a call
whose answer could not be written is hung up, a request head past its cap is answered 431, a
request that does not arrive in time 408, one without a single valid `Host` 400, and a request
asking to switch protocols is served as plain HTTP (a `CONNECT` refused), without a warning.

Both are the server's doing, not the app's, so these run against `callbridge serve` itself, with
the server configuration users get.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from service.api.host_field import BAD_HOST_DETAIL, HOSTS_DETAIL, NO_HOST_DETAIL
from service.api.http_protocol import (
    MAX_HEADER_FIELDS,
    MAX_PIPELINED,
    MAX_REQUEST_TARGET_BYTES,
    VERSION_DETAIL,
    HttpProtocol,
    limited_protocol,
)
from service.app import create_app
from service.settings import Settings
from tests.e2e.conftest import Serve
from tests.e2e.faulty_provider import FaultyProvider
from tests.e2e.hostile import RawConnection, RawResponse, assert_problem, request_head
from tests.e2e.processes import Process, free_port
from tests.e2e.waiting import until
from tests.unit.sdp_samples import AIORTC_OFFER

READ_TIMEOUT_S = 0.5
"""The read timeout of the servers below: short, so that a test waits little for it."""

HEAD_CAP = 16384
"""The head cap of the in-test servers below."""

NOT_HTTP = b"garbage line\r\n\r\n"
"""Bytes the parser refuses, sent after valid requests in the same write (and so read)."""


@dataclass
class Served:
    """`callbridge serve` running, and the lines it logs (JSON)."""

    url: str
    process: Process

    def lines(self) -> list[dict[str, Any]]:
        """Every line logged so far."""
        return [json.loads(line) for line in self.process.output().splitlines()]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    port = free_port()
    log = tmp_path_factory.mktemp("parser") / "serve.log"
    env = {
        "CALLBRIDGE_PORT": str(port),
        "CALLBRIDGE_REQUEST_READ_TIMEOUT_S": str(READ_TIMEOUT_S),
        "CALLBRIDGE_LOG_FORMAT": "json",
        "CALLBRIDGE_LOG_LEVEL": "INFO",
    }
    service = Process(["serve"], env, log).start()
    url = f"http://127.0.0.1:{port}"
    try:
        service.wait_http(f"{url}/healthz")
        yield Served(url, service)
    finally:
        service.stop()


@pytest.fixture(scope="module")
def service_url(served: Served) -> str:
    return served.url


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


@contextlib.asynccontextmanager
async def _serving_a_held_start(
    serve: Serve, tmp_path: Path
) -> AsyncIterator[tuple[str, FaultyProvider]]:
    """A `callbridge serve` process whose provider holds each call creation until released,
    its URL and the provider."""
    provider = FaultyProvider(script=["held"])
    port = free_port()
    settings = {
        "CALLBRIDGE_PROVIDER": "openai",
        "CALLBRIDGE_PROVIDER_URL": await serve(provider.app()),
        "CALLBRIDGE_API_KEY": "sk-test-held-start-0123456789",
        "CALLBRIDGE_PORT": str(port),
    }
    service = Process(["serve"], settings, tmp_path / "serve.log").start()
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(service.wait_http, f"{url}/healthz")
        yield url, provider
    finally:
        provider.release.set()
        service.stop()


def _call_start_request() -> bytes:
    offer = AIORTC_OFFER.encode()
    head = request_head(
        "POST", "/v1/calls", {"Content-Type": "application/sdp", "Content-Length": str(len(offer))}
    )
    return head + offer


async def test_a_call_start_whose_client_left_behind_a_pipelined_request_is_hung_up(
    serve: Serve, tmp_path: Path
) -> None:
    async with _serving_a_held_start(serve, tmp_path) as (url, provider):
        connection = await RawConnection.open(url)
        await connection.send(_call_start_request() + request_head("GET", "/healthz", {}))
        await asyncio.wait_for(provider.holding.wait(), 10)
        await connection.close()
        provider.release.set()
        await until(lambda: provider.hangups == provider.created == ["rtc_fault0"])


async def test_a_call_start_followed_in_its_read_by_bytes_that_are_not_http_stays_up(
    serve: Serve, tmp_path: Path
) -> None:
    async with _serving_a_held_start(serve, tmp_path) as (url, provider):
        connection = await RawConnection.open(url)
        try:
            await connection.send(_call_start_request() + NOT_HTTP)
            # The refusal is read while the call start waits on the provider.
            await asyncio.wait_for(provider.holding.wait(), 10)
            provider.release.set()
            answer, refusal = await connection.response(), await connection.response()
        finally:
            await connection.close()
        assert answer.status == 201
        assert_problem(refusal.status, refusal.headers["content-type"], refusal.json(), 400)
        async with httpx.AsyncClient(base_url=url) as client:
            record = (await client.get(answer.headers["location"])).json()
            assert (record["end_reason"], provider.hangups) == (None, [])
            await client.delete(answer.headers["location"])


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


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    """Reads the whole body and answers its length; on `/slow`, only after three read
    timeouts; on `/stream`, in four parts a read timeout apart."""
    assert scope["type"] == "http"
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    if scope["path"] == "/slow":
        await asyncio.sleep(3 * READ_TIMEOUT_S)
    body = str(size).encode()
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(4):
            await asyncio.sleep(READ_TIMEOUT_S)
            await send({"type": "http.response.body", "body": b"part\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def echo_url() -> AsyncIterator[str]:
    """`_echo` under `callbridge serve`'s protocol, with `HEAD_CAP` and `READ_TIMEOUT_S`."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        _echo,
        log_config=None,
        lifespan="off",
        http=limited_protocol(HEAD_CAP, READ_TIMEOUT_S),
        timeout_graceful_shutdown=1,
    )
    server = _InTestServer(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        await until(lambda: server.started)
        host, port = listener.getsockname()
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await serving


async def _answer_and_close(url: str, *chunks: bytes) -> tuple[RawResponse, bytes]:
    """Sends `chunks` on a new connection, each read by the server apart, then reads one
    response and what follows it until the server closes."""
    connection = await RawConnection.open(url)
    try:
        for chunk in chunks:
            await connection.send(chunk)
            # In-test servers share this loop: any sleep lets them read what was sent.
            await asyncio.sleep(0.01)
        response = await connection.response()
        rest = await asyncio.wait_for(connection.reader.read(), 30)
    finally:
        await connection.close()
    return response, rest


async def _answers_and_close(url: str, data: bytes) -> tuple[RawResponse, RawResponse, bytes]:
    """Sends `data` on a new connection in one write, then reads two responses and what
    follows them until the server closes."""
    connection = await RawConnection.open(url)
    try:
        await connection.send(data)
        first, second = await connection.response(), await connection.response()
        rest = await asyncio.wait_for(connection.reader.read(), 30)
    finally:
        await connection.close()
    return first, second, rest


def _assert_closing_problem(response: RawResponse, rest: bytes, status: int) -> None:
    assert_problem(response.status, response.headers["content-type"], response.json(), status)
    assert response.headers["connection"] == "close"
    assert rest == b""


async def test_an_oversized_header_value_is_431(service_url: str) -> None:
    head = request_head("GET", "/healthz", {"X-Big": "a" * 100 * 1024})
    response, rest = await _answer_and_close(service_url, head)
    _assert_closing_problem(response, rest, 431)


async def test_a_request_target_past_its_cap_is_414(service_url: str) -> None:
    path = "/" + "a" * MAX_REQUEST_TARGET_BYTES
    response, rest = await _answer_and_close(service_url, request_head("GET", path, {}))
    _assert_closing_problem(response, rest, 414)


async def test_a_request_target_at_its_cap_reaches_the_app(service_url: str) -> None:
    path = "/" + "a" * (MAX_REQUEST_TARGET_BYTES - 1)
    connection = await RawConnection.open(service_url)
    try:
        await connection.send(request_head("GET", path, {}))
        response = await connection.response()
    finally:
        await connection.close()
    assert_problem(response.status, response.headers["content-type"], response.json(), 404)


async def test_header_lines_past_the_cap_are_431(echo_url: str) -> None:
    fields = {f"X-Field-{n}": "a" * 24 for n in range(HEAD_CAP // 32 + 1)}
    response, rest = await _answer_and_close(echo_url, request_head("GET", "/", fields))
    _assert_closing_problem(response, rest, 431)


async def test_an_unfinished_head_growing_past_the_cap_is_431(echo_url: str) -> None:
    start = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
    piece = b"a" * (HEAD_CAP // 2)
    response, rest = await _answer_and_close(echo_url, start, piece, piece, piece)
    _assert_closing_problem(response, rest, 431)


async def test_a_head_under_the_cap_is_served(echo_url: str) -> None:
    head = request_head("GET", "/", {"X-Big": "a" * (HEAD_CAP - 1024)})
    connection = await RawConnection.open(echo_url)
    try:
        await connection.send(head)
        response = await connection.response()
    finally:
        await connection.close()
    assert response.status == 200


async def test_pipelined_requests_with_a_large_body_are_both_served(echo_url: str) -> None:
    body = b"b" * (64 * HEAD_CAP)
    first = request_head("POST", "/", {"Content-Length": str(len(body))}) + body
    second = request_head("GET", "/", {"X-Big": "a" * (HEAD_CAP // 2)})
    connection = await RawConnection.open(echo_url)
    try:
        await connection.send(first + second)
        answers = [await connection.response(), await connection.response()]
    finally:
        await connection.close()
    assert [(a.status, a.body) for a in answers] == [(200, str(len(body)).encode()), (200, b"0")]


async def test_an_unfinished_head_is_408(service_url: str) -> None:
    response, rest = await _answer_and_close(service_url, b"GET /healthz HTTP/1.1\r\nHost: x")
    _assert_closing_problem(response, rest, 408)


async def test_an_unfinished_content_length_body_is_408(echo_url: str) -> None:
    head = request_head("POST", "/", {"Content-Length": "100"})
    response, rest = await _answer_and_close(echo_url, head + b"abcd")
    _assert_closing_problem(response, rest, 408)


async def test_an_unfinished_chunked_body_is_408(echo_url: str) -> None:
    head = request_head("POST", "/", {"Transfer-Encoding": "chunked"})
    response, rest = await _answer_and_close(echo_url, head + b"4\r\nabcd\r\n")
    _assert_closing_problem(response, rest, 408)


async def test_an_expected_body_that_never_comes_is_408(echo_url: str) -> None:
    head = request_head("POST", "/", {"Content-Length": "10", "Expect": "100-continue"})
    connection = await RawConnection.open(echo_url)
    try:
        await connection.send(head)
        interim = await connection.response()
        response = await connection.response()
        rest = await asyncio.wait_for(connection.reader.read(), 30)
    finally:
        await connection.close()
    assert interim.status == 100
    _assert_closing_problem(response, rest, 408)


async def test_a_connection_that_never_sends_a_byte_is_closed(echo_url: str) -> None:
    connection = await RawConnection.open(echo_url)
    try:
        assert await asyncio.wait_for(connection.reader.read(), 30) == b""
    finally:
        await connection.close()


async def test_a_response_slower_than_the_read_timeout_is_not_cut(echo_url: str) -> None:
    body = b"offer"
    head = request_head("POST", "/slow", {"Content-Length": str(len(body))})
    connection = await RawConnection.open(echo_url)
    try:
        await connection.send(head + body)
        response = await connection.response()
    finally:
        await connection.close()
    assert (response.status, response.body) == (200, b"5")


async def test_a_stream_longer_than_the_read_timeout_is_not_cut(echo_url: str) -> None:
    async with (
        httpx.AsyncClient(base_url=echo_url, timeout=30) as client,
        client.stream("GET", "/stream") as response,
    ):
        parts = [line async for line in response.aiter_lines()]
    assert parts == ["part"] * 4


async def test_an_empty_line_after_a_response_does_not_keep_the_connection_open(
    echo_url: str,
) -> None:
    connection = await RawConnection.open(echo_url)
    try:
        await connection.send(request_head("GET", "/", {}))
        assert (await connection.response()).status == 200
        # RFC 9112 §2.2: empty lines before a request are skipped; they begin none.
        await connection.send(b"\r\n")
        assert await asyncio.wait_for(connection.reader.read(), 30) == b""
    finally:
        await connection.close()


async def test_header_fields_past_their_count_are_431(echo_url: str) -> None:
    fields = {f"f{n}": "v" for n in range(MAX_HEADER_FIELDS + 1)}
    head = request_head("GET", "/", fields)
    assert len(head) < HEAD_CAP
    response, rest = await _answer_and_close(echo_url, head)
    _assert_closing_problem(response, rest, 431)


async def test_requests_pipelined_within_the_depth_are_all_answered(echo_url: str) -> None:
    connection = await RawConnection.open(echo_url)
    try:
        await connection.send(request_head("GET", "/", {}) * MAX_PIPELINED)
        answers = [await connection.response() for _ in range(MAX_PIPELINED)]
    finally:
        await connection.close()
    assert {a.status for a in answers} == {200}


async def test_requests_pipelined_past_the_depth_are_answered_up_to_it_then_closed(
    echo_url: str,
) -> None:
    answered = 1 + MAX_PIPELINED
    connection = await RawConnection.open(echo_url)
    try:
        await connection.send(request_head("GET", "/", {}) * (answered + 2))
        answers = [await connection.response() for _ in range(answered)]
        rest = await asyncio.wait_for(connection.reader.read(), 30)
    finally:
        await connection.close()
    assert {a.status for a in answers} == {200}
    # RFC 9112 §9.6: the last response says the connection closes; §9.3.2: the client sends
    # the requests left unanswered again, on another.
    assert [a.headers.get("connection") for a in answers[-2:]] == [None, "close"]
    assert rest == b""


async def test_the_server_serves_on_after_a_pipeline_past_the_depth(echo_url: str) -> None:
    connection = await RawConnection.open(echo_url)
    try:
        await connection.send(request_head("GET", "/", {}) * (10 * MAX_PIPELINED))
        await asyncio.wait_for(connection.reader.read(), 30)
    finally:
        await connection.close()
    async with httpx.AsyncClient(base_url=echo_url) as client:
        assert (await client.get("/")).status_code == 200


async def test_a_request_followed_in_its_read_by_bytes_that_are_not_http_is_answered_first(
    service_url: str,
) -> None:
    request = request_head("GET", "/healthz", {})
    response, refusal, rest = await _answers_and_close(service_url, request + NOT_HTTP)
    assert (response.status, response.json()) == (200, {"status": "pass"})
    _assert_closing_problem(refusal, rest, 400)


async def test_pipelined_requests_before_bytes_that_are_not_http_are_answered_in_order(
    echo_url: str,
) -> None:
    requests = [request_head("POST", "/", {"Content-Length": str(n)}) + b"b" * n for n in (1, 2)]
    connection = await RawConnection.open(echo_url)
    try:
        await connection.send(b"".join(requests) + NOT_HTTP)
        answers = [await connection.response() for _ in range(3)]
        rest = await asyncio.wait_for(connection.reader.read(), 30)
    finally:
        await connection.close()
    assert [(a.status, a.body) for a in answers[:2]] == [(200, b"1"), (200, b"2")]
    _assert_closing_problem(answers[2], rest, 400)


async def test_a_refusal_waits_for_a_response_slower_than_the_read_timeout(echo_url: str) -> None:
    body = b"offer"
    slow = request_head("POST", "/slow", {"Content-Length": str(len(body))}) + body
    response, refusal, rest = await _answers_and_close(echo_url, slow + NOT_HTTP)
    assert (response.status, response.body) == (200, b"5")
    _assert_closing_problem(refusal, rest, 400)


async def test_an_unfinished_head_behind_a_slow_response_is_408_after_it(echo_url: str) -> None:
    slow = request_head("POST", "/slow", {"Content-Length": "0"})
    unfinished = b"GET / HTTP/1.1\r\nHost: 127.0.0.1"
    response, refusal, rest = await _answers_and_close(echo_url, slow + unfinished)
    assert (response.status, response.body) == (200, b"0")
    _assert_closing_problem(refusal, rest, 408)


async def test_a_pipelined_request_with_a_bad_body_is_400_after_the_response_before_it(
    echo_url: str,
) -> None:
    slow = request_head("POST", "/slow", {"Content-Length": "0"})
    chunked = request_head("POST", "/", {"Transfer-Encoding": "chunked"}) + b"zz\r\n"
    response, refusal, rest = await _answers_and_close(echo_url, slow + chunked)
    assert (response.status, response.body) == (200, b"0")
    _assert_closing_problem(refusal, rest, 400)


async def _served_quietly(served: Served, request: bytes, count: int) -> list[RawResponse]:
    """Sends `request` on a new connection and reads `count` responses, checking that the
    service logged nothing above INFO meanwhile (it logs each access line as it answers)."""
    before = len(served.lines())
    connection = await RawConnection.open(served.url)
    try:
        await connection.send(request)
        responses = [await connection.response() for _ in range(count)]
    finally:
        await connection.close()

    def logged() -> list[dict[str, Any]]:
        return served.lines()[before:]

    await until(lambda: sum(line["logger"] == "uvicorn.access" for line in logged()) >= count)
    assert _above_info(logged()) == []
    return responses


def _above_info(lines: list[dict[str, Any]]) -> list[str]:
    return [line["msg"] for line in lines if line["level"] not in ("debug", "info")]


UPGRADES = {
    "websocket": {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    },
    "h2c": {
        "Connection": "Upgrade, HTTP2-Settings",
        "Upgrade": "h2c",
        "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA",
    },
}
"""Requests to switch protocols, as a WebSocket client and an HTTP/2 cleartext client ask."""


@pytest.mark.parametrize("upgrade", UPGRADES)
async def test_a_request_asking_to_upgrade_is_served_as_plain_http(
    served: Served, upgrade: str
) -> None:
    head = request_head("GET", "/healthz", UPGRADES[upgrade])
    [response] = await _served_quietly(served, head, 1)
    assert (response.status, response.headers["content-type"]) == (200, "application/health+json")
    assert response.json() == {"status": "pass"}


@pytest.mark.parametrize("upgrade", UPGRADES)
async def test_a_request_asking_to_upgrade_where_nothing_is_served_is_a_404_problem(
    served: Served, upgrade: str
) -> None:
    head = request_head("GET", "/nothing-here", UPGRADES[upgrade])
    [response] = await _served_quietly(served, head, 1)
    assert_problem(response.status, response.headers["content-type"], response.json(), 404)


@pytest.mark.parametrize("upgrade", UPGRADES)
async def test_a_request_pipelined_behind_one_asking_to_upgrade_is_served(
    served: Served, upgrade: str
) -> None:
    first = request_head("GET", "/healthz", UPGRADES[upgrade])
    second = request_head("GET", "/nothing-here", {})
    answers = await _served_quietly(served, first + second, 2)
    assert [a.status for a in answers] == [200, 404]


@pytest.mark.parametrize(
    ("framing", "body"),
    [
        ({"Content-Length": "4"}, b"abcd"),
        ({"Transfer-Encoding": "chunked"}, b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"),
    ],
    ids=["content-length", "chunked"],
)
async def test_the_body_of_a_request_asking_to_upgrade_reaches_the_app(
    echo_url: str, framing: dict[str, str], body: bytes
) -> None:
    head = request_head("POST", "/", {**UPGRADES["h2c"], **framing})
    connection = await RawConnection.open(echo_url)
    try:
        # The body comes in a read of its own, and a request follows it.
        await connection.send(head)
        await asyncio.sleep(0.01)
        await connection.send(body + request_head("GET", "/", {}))
        answers = [await connection.response(), await connection.response()]
    finally:
        await connection.close()
    assert [(a.status, a.body) for a in answers] == [(200, b"4"), (200, b"0")]


@pytest.mark.parametrize(
    ("target", "allow"),
    [("example.com:443", ""), ("/healthz", "GET, HEAD, OPTIONS")],
    ids=["authority", "path"],
)
async def test_connect_is_a_405_problem_and_what_follows_it_is_not_read(
    served: Served, target: str, allow: str
) -> None:
    before = len(served.lines())
    # A client tunnelling optimistically sends its TLS hello right behind the CONNECT.
    tunnel = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
    connect = request_head("CONNECT", target, {})
    response, rest = await _answer_and_close(served.url, connect + tunnel)
    _assert_closing_problem(response, rest, 405)
    assert response.headers["allow"] == allow
    assert _above_info(served.lines()[before:]) == []


REFUSED = {
    "unparsable": (b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n", 400),
    "no-host": (b"GET /healthz HTTP/1.1\r\n\r\n", 400),
    "target-too-long": (request_head("GET", "/" + "a" * MAX_REQUEST_TARGET_BYTES, {}), 414),
    "head-too-large": (request_head("GET", "/healthz", {"X-Big": "a" * 100 * 1024}), 431),
    "unfinished-head": (b"GET /healthz HTTP/1.1\r\nHost: x", 408),
}
"""Requests `serve`'s protocol refuses before the app sees them, and the status of each."""


@pytest.mark.parametrize(("request_bytes", "status"), REFUSED.values(), ids=REFUSED)
async def test_a_refused_request_is_an_access_line_naming_its_client_not_a_warning(
    served: Served, request_bytes: bytes, status: int
) -> None:
    before = len(served.lines())
    connection = await RawConnection.open(served.url)
    try:
        await connection.send(request_bytes)
        response = await connection.response()
        host, port = connection.writer.get_extra_info("sockname")
        client = f"{host}:{port}"
    finally:
        await connection.close()
    assert response.status == status

    def logged() -> list[dict[str, Any]]:
        return served.lines()[before:]

    await until(lambda: any(line["logger"] == "uvicorn.access" for line in logged()))
    access = [line["msg"] for line in logged() if line["logger"] == "uvicorn.access"]
    assert access == [f'{client} - "-" {status} ({response.json()["detail"]})']
    assert _above_info(logged()) == []


async def test_a_connection_that_never_sends_a_byte_is_closed_unlogged(served: Served) -> None:
    before = len(served.lines())
    connection = await RawConnection.open(served.url)
    try:
        assert await asyncio.wait_for(connection.reader.read(), 30) == b""
    finally:
        await connection.close()
    await asyncio.sleep(READ_TIMEOUT_S)
    assert served.lines()[before:] == []


async def test_a_refusal_behind_a_request_is_logged_after_its_access_line(served: Served) -> None:
    before = len(served.lines())
    connection = await RawConnection.open(served.url)
    try:
        await connection.send(request_head("GET", "/healthz", {}) + NOT_HTTP)
        answers = [await connection.response(), await connection.response()]
        host, port = connection.writer.get_extra_info("sockname")
        client = f"{host}:{port}"
    finally:
        await connection.close()

    def access() -> list[str]:
        lines = served.lines()[before:]
        return [line["msg"] for line in lines if line["logger"] == "uvicorn.access"]

    await until(lambda: len(access()) >= 2)
    assert access() == [
        f'{client} - "GET /healthz HTTP/1.1" 200',
        f'{client} - "-" 400 ({answers[1].json()["detail"]})',
    ]


HOST_FAULTS = {
    "missing": (b"GET /healthz HTTP/1.1\r\n\r\n", NO_HOST_DETAIL),
    "twice": (request_head("GET", "/healthz", {"Host": "127.0.0.1"}), HOSTS_DETAIL),
    "invalid": (b"GET /healthz HTTP/1.1\r\nHost: a b c/\r\n\r\n", BAD_HOST_DETAIL),
}
"""Requests whose `Host` fields RFC 9112 §3.2 has a server answer 400, and the detail of each."""


@pytest.mark.parametrize(("request_bytes", "detail"), HOST_FAULTS.values(), ids=HOST_FAULTS)
async def test_a_request_without_one_valid_host_is_a_400_problem_naming_the_fault(
    service_url: str, request_bytes: bytes, detail: str
) -> None:
    response, rest = await _answer_and_close(service_url, request_bytes)
    _assert_closing_problem(response, rest, 400)
    assert response.json()["detail"] == detail


@pytest.mark.parametrize("version", ["2.0", "0.9"])
async def test_a_request_line_of_another_http_version_is_a_505_problem(
    service_url: str, version: str
) -> None:
    request = f"GET /healthz HTTP/{version}\r\nHost: 127.0.0.1\r\n\r\n".encode()
    response, rest = await _answer_and_close(service_url, request)
    _assert_closing_problem(response, rest, 505)
    assert response.json()["detail"] == VERSION_DETAIL


async def test_an_http_1_0_request_without_host_is_served(service_url: str) -> None:
    connection = await RawConnection.open(service_url)
    try:
        await connection.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        response = await connection.response()
    finally:
        await connection.close()
    assert (response.status, response.json()) == (200, {"status": "pass"})


VALID_HOSTS = {
    "name": "example.com",
    "ipv4-and-port": "127.0.0.1:8080",
    "ipv6-and-port": "[::1]:8080",
    "ip-future": "[v1.fe80::a+en1]",
    "idna": "xn--bcher-kva.example",
    "empty": "",
}
"""`Host` values of each form RFC 3986 §3.2.2 gives a host (empty: RFC 9112 §3.2, no authority)."""


@pytest.mark.parametrize("host", VALID_HOSTS.values(), ids=VALID_HOSTS)
async def test_a_request_with_a_valid_host_is_served(service_url: str, host: str) -> None:
    connection = await RawConnection.open(service_url)
    try:
        await connection.send(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        response = await connection.response()
    finally:
        await connection.close()
    assert (response.status, response.json()) == (200, {"status": "pass"})
