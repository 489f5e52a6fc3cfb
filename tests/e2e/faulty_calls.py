"""A call started through a real service whose provider is a `FaultyProvider`."""

from __future__ import annotations

from typing import Any

import httpx

from service.calls.session import CallSession
from tests.e2e.conftest import RunningService, Serve, StartService
from tests.e2e.faulty_provider import FaultyProvider
from tests.unit.sdp_samples import AIORTC_OFFER


async def call_at(
    start_service: StartService, serve: Serve, provider: FaultyProvider, **settings: Any
) -> tuple[RunningService, str, CallSession]:
    """Serve `provider`, start a service on it with `settings` (`provider="openai"` and its
    URL added), start one call there; the service, the call's id and its live session."""
    service = await start_service(
        provider="openai", provider_url=await serve(provider.app()), **settings
    )
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
        )
    assert response.status_code == 201, response.text
    call_id = response.headers["location"].rsplit("/", 1)[1]
    session = service.manager.session(call_id)
    assert session is not None
    return service, call_id, session
