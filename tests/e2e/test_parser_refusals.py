"""Requests the HTTP parser refuses are answered 400 problem+json, as every other error.

They never reach the app (uvicorn answers them), so these run against `callbridge serve`
itself, with the server configuration users get.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.hostile import RawConnection, assert_problem
from tests.e2e.processes import Process, free_port


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
