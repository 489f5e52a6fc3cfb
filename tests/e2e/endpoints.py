"""Endpoints callbridge calls out to (handoff handlers, SIP routers), served on a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class JsonEndpoint:
    """An HTTP/1.1 server answering every POST with `answer` as JSON (bytes are sent as they
    are), keeping connections alive; it counts the connections it accepted and those still
    open."""

    answer: dict[str, str] | bytes
    accepted: int = 0
    open: set[asyncio.StreamWriter] = field(default_factory=set)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open.add(writer)
        body = self.answer if isinstance(self.answer, bytes) else json.dumps(self.answer).encode()
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open.discard(writer)
            writer.close()


@contextlib.asynccontextmanager
async def json_endpoint(
    answer: dict[str, str] | bytes,
) -> AsyncIterator[tuple[str, JsonEndpoint]]:
    """A `JsonEndpoint` on a loopback port for the duration: its base URL, and it."""
    endpoint = JsonEndpoint(answer)
    server = await asyncio.start_server(endpoint.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", endpoint
    finally:
        server.close()
        for writer in list(endpoint.open):
            writer.close()
        await server.wait_closed()
