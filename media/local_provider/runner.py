"""Running the local provider as a server (no `__main__`: the CLI calls these)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import uvicorn

from media.local_provider.app import create_provider_app
from media.local_provider.config import LocalProviderConfig
from media.local_provider.ws_protocol import DenialAwareWebSocketProtocol


def provider_server_config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn settings for serving the provider `app`; `options` go to `uvicorn.Config`.

    WebSockets are served by `DenialAwareWebSocketProtocol`, so that refused sideband
    handshakes are not logged as errors.
    """
    return uvicorn.Config(
        app, host=host, port=port, lifespan="on", ws=DenialAwareWebSocketProtocol, **options
    )


async def serve_provider(
    config: LocalProviderConfig, host: str, port: int, tls: tuple[Path, Path] | None = None
) -> None:
    """Serve the local provider on `host`:`port` until the server is told to stop; over TLS
    (https and wss, as the real provider) when `tls` names a PEM certificate chain and its
    key."""
    app = create_provider_app(config)
    options: dict[str, Any] = {}
    if tls is not None:
        options.update(ssl_certfile=str(tls[0]), ssl_keyfile=str(tls[1]))
    server = uvicorn.Server(provider_server_config(app, host, port, **options))
    await server.serve()


def run_provider(
    config: LocalProviderConfig, host: str, port: int, tls: tuple[Path, Path] | None = None
) -> None:
    """Blocking entry point: serve the local provider until interrupted (see `serve_provider`)."""
    asyncio.run(serve_provider(config, host, port, tls))
