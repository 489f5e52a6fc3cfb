"""Serving an ASGI app on a real socket inside the test's event loop."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.types import ASGIApp

from service.embedded import EmbeddedServer


@contextlib.asynccontextmanager
async def running_server(app: ASGIApp) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 on a free port; yields its base URL ("http://127.0.0.1:PORT")."""
    server = EmbeddedServer(app)
    await server.start()
    try:
        yield server.url
    finally:
        await server.stop()
