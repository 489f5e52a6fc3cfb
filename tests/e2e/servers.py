"""Serving an ASGI app on a real socket inside the test's event loop, and TLS for test servers."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from service.embedded import EmbeddedServer


@contextlib.asynccontextmanager
async def running_server(app: ASGIApp, ws: Any = "auto") -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 on a free port, with uvicorn's WebSocket protocol `ws`; yields
    its base URL ("http://127.0.0.1:PORT")."""
    server = EmbeddedServer(app, ws=ws)
    await server.start()
    try:
        yield server.url
    finally:
        await server.stop()


def server_tls(certificate: tuple[Path, Path] | None) -> ssl.SSLContext | None:
    """A server context serving `certificate` (certificate and key PEM files), or None (no
    TLS) without one."""
    if certificate is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context
