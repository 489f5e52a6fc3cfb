"""Talking to the service as a hostile client would: raw HTTP/1.1 over a real socket."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

PROBLEM = "application/problem+json"


@dataclass
class RawResponse:
    """A response read off the socket: status, lower-cased headers and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


class RawConnection:
    """One HTTP/1.1 connection whose bytes the test writes itself, chunk by chunk."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, base_url: str) -> RawConnection:
        """Connect to the service at `base_url` ("http://host:port")."""
        where = urlsplit(base_url)
        reader, writer = await asyncio.open_connection(where.hostname, where.port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        """Write bytes and wait until the kernel took them."""
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> RawResponse:
        """Read one response with a Content-Length body."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return RawResponse(int(status_line.split()[1]), headers, body)

    async def close(self) -> None:
        """Close the connection."""
        self.writer.close()
        await self.writer.wait_closed()


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    """The request line and headers of an HTTP/1.1 request."""
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def healthy(base_url: str) -> bool:
    """Whether `/healthz` answers 200 on a fresh connection."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        return (await client.get("/healthz")).status_code == 200


def assert_problem(status: int, content_type: str, body: Any, expected: int) -> None:
    """A problem+json answer with the expected status (RFC 9457 members present)."""
    assert status == expected, body
    assert content_type.startswith(PROBLEM), content_type
    assert body["status"] == expected
    assert isinstance(body["detail"], str)
    assert body["detail"]
