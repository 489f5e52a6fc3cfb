"""Fixtures that start real servers on loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.calls.manager import CallManager
from service.settings import Settings
from tests.e2e.redis_cluster import (  # noqa: F401
    redis_cluster,
    redis_cluster_servers,
    shared_redis,
)
from tests.e2e.redis_server import (  # noqa: F401
    open_queue,
    redis,
    redis_server,
    redis_server_on_a_unix_socket,
    redis_server_on_the_default_port,
)
from tests.e2e.servers import running_server
from tests.unit.sdp_samples import AIORTC_OFFER


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_loops: run on asyncio's event loop and on uvloop, which the service uses"
    )


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Tests marked `both_loops` run twice, as what they test (subprocesses, say) does not behave
    alike on both loops and `serve` and `worker` run on uvloop; the others on asyncio's loop only,
    under their own names (pytest-asyncio takes no answer other than a mapping)."""
    if item.get_closest_marker("both_loops") is None:
        return {"asyncio": asyncio.new_event_loop}
    import uvloop

    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@dataclass
class RunningService:
    """A callbridge service serving on a loopback port."""

    url: str
    app: FastAPI

    @property
    def manager(self) -> CallManager:
        """The running call manager."""
        manager: CallManager = self.app.state.manager
        return manager

    @property
    def provider_url(self) -> str:
        """The provider base URL the service talks to."""
        return self.manager.provider_base_url


STAND_IN_KEY = "sk-stand-in-0123456789abcdef"
"""The provider key a test service gets when the test names a real provider kind but no key."""

StartService = Callable[..., Awaitable[RunningService]]
Serve = Callable[..., Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serve any ASGI app on a free loopback port for the test's duration (with uvicorn's
    WebSocket protocol `ws`, if given); returns its URL."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(app: Any, ws: Any = "auto") -> str:
            return await stack.enter_async_context(running_server(app, ws))

        yield start


@pytest.fixture
async def start_service(serve: Serve) -> StartService:
    """Start callbridge with settings overrides (local provider and memory queue by default;
    a real provider kind gets a stand-in key unless one is given, as it refuses to start
    without one)."""

    async def start(**overrides: Any) -> RunningService:
        keyless = overrides.get("provider", "local") == "local"
        overrides.setdefault("api_key", None if keyless else STAND_IN_KEY)
        app = create_app(Settings(port=0, **overrides))
        url = await serve(app)
        return RunningService(url, app)

    return start


@dataclass
class LiveCall:
    """A live call on a service without media: the service, a client of it, the call's path."""

    service: RunningService
    client: httpx.AsyncClient
    location: str


@pytest.fixture
async def live_call(start_service: StartService) -> AsyncIterator[LiveCall]:
    """A live call on a service without media; deleted afterwards."""
    service = await start_service(local_media=False)
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
        )
        assert response.status_code == 201, response.text
        location = response.headers["location"]
        yield LiveCall(service, client, location)
        await client.delete(location)
