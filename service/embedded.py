"""Running an ASGI app on a loopback port inside the current event loop.

Used for the embedded local provider: one `callbridge serve` serves everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from typing import Any

import uvicorn


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process's main server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class EmbeddedServer:
    """An ASGI app served on `127.0.0.1:<free port>` until `stop()`."""

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, ws: Any = "auto"
    ) -> None:
        """`ws`: uvicorn's WebSocket protocol (a name or a protocol class)."""
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        config = uvicorn.Config(
            app, log_config=None, lifespan="on", ws=ws, ws_max_size=16 * 1024 * 1024
        )
        self._server = _QuietServer(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """`http://host:port`."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Start serving and return once the server accepts connections."""
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("embedded server stopped during start-up")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving and wait for shutdown."""
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sock.close()
