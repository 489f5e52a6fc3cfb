"""Running the local provider as a server (no `__main__`: the CLI calls these)."""

from __future__ import annotations

import asyncio
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


async def serve_provider(config: LocalProviderConfig, host: str, port: int) -> None:
    """Serve the local provider on `host`:`port` until the server is told to stop."""
    app = create_provider_app(config)
    server = uvicorn.Server(provider_server_config(app, host, port))
    await server.serve()


def run_provider(config: LocalProviderConfig, host: str, port: int) -> None:
    """Blocking entry point: serve the local provider until interrupted."""
    asyncio.run(serve_provider(config, host, port))
