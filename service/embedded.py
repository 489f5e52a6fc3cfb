"""Running an ASGI app on a loopback port inside the current event loop.

Used for the embedded local provider: one `callbridge serve` serves everything.

uvicorn logs every server of the process on the same loggers, so an embedded server's start-up
and shutdown lines ("Started server process", "Uvicorn running on", ...) would read as a second
service. Given a logger name, an embedded server's own lines are told apart by the context its
task runs in (every task it starts inherits it): below WARNING they are dropped, the rest go out
under that name.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import socket
from collections.abc import Generator
from typing import Any, Final

import uvicorn

# The logger name the embedded server running in this context logs under; None outside one.
_LOGGING_AS: Final[contextvars.ContextVar[str | None]] = contextvars.ContextVar(
    "embedded_server_logging_as", default=None
)
_UVICORN_LOGGERS: Final = ("uvicorn.error", "uvicorn.access")


class _EmbeddedLines(logging.Filter):
    """On uvicorn's loggers: an embedded server's lines below WARNING (access lines included)
    dropped, the others renamed to its logger name."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = _LOGGING_AS.get()
        if name is None:
            return True
        if record.levelno < logging.WARNING:
            return False
        record.name = name
        return True


_EMBEDDED_LINES: Final = _EmbeddedLines()


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process's main server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class EmbeddedServer:
    """An ASGI app served on `127.0.0.1:<free port>` until `stop()`."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ws: Any = "auto",
        log_as: str | None = None,
    ) -> None:
        """`ws`: uvicorn's WebSocket protocol (a name or a protocol class). `log_as`: the
        logger name its uvicorn's warnings and errors go out under, its start-up, shutdown and
        access lines left out (None: all logged as uvicorn logs them)."""
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        # The access log stays on: `access_log=False` would turn it off for the whole process,
        # the service's included; the filter leaves this server's lines out instead.
        config = uvicorn.Config(
            app, log_config=None, lifespan="on", ws=ws, ws_max_size=16 * 1024 * 1024
        )
        self._server = _QuietServer(config)
        self._log_as = log_as
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """`http://host:port`."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Start serving and return once the server accepts connections."""
        context = contextvars.copy_context()
        if self._log_as is not None:
            context.run(_LOGGING_AS.set, self._log_as)
            # Once per process (a filter is added once), harmless outside embedded servers.
            for name in _UVICORN_LOGGERS:
                logging.getLogger(name).addFilter(_EMBEDDED_LINES)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]), context=context)
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
