"""Serving an ASGI app on a real socket inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.types import ASGIApp


class _InLoopServer(uvicorn.Server):
    # pytest owns the process's signals; a server inside a test must not take them over.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def running_server(app: ASGIApp, startup_timeout_s: float = 10.0) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 on a free port; yields its base URL ("http://127.0.0.1:PORT").

    The socket is bound before the server starts, so the port is known and cannot be taken
    by anyone else in between. The app's lifespan runs; leaving the block shuts it down.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_level="warning", timeout_graceful_shutdown=5)
    server = _InLoopServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(startup_timeout_s):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the server stopped during startup")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
