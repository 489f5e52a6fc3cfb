"""Running the local provider as a server (no `__main__`: the CLI calls these)."""

from __future__ import annotations

import asyncio

import uvicorn

from media.local_provider.app import create_provider_app
from media.local_provider.config import LocalProviderConfig


async def serve_provider(config: LocalProviderConfig, host: str, port: int) -> None:
    """Serve the local provider on `host`:`port` until the server is told to stop."""
    app = create_provider_app(config)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, lifespan="on"))
    await server.serve()


def run_provider(config: LocalProviderConfig, host: str, port: int) -> None:
    """Blocking entry point: serve the local provider until interrupted."""
    asyncio.run(serve_provider(config, host, port))
