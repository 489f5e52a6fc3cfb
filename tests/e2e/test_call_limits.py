"""Calls end by themselves when they run too long or go quiet, and are hung up at the provider."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.e2e.conftest import RunningService, Serve, StartService
from tests.e2e.faulty_provider import FaultyProvider
from tests.unit.sdp_samples import AIORTC_OFFER


async def _start(service: RunningService) -> str:
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
        )
    assert response.status_code == 201
    return str(response.headers["location"].rsplit("/", 1)[1])


async def test_a_quiet_call_is_hung_up_after_the_idle_timeout(
    start_service: StartService, serve: Serve
) -> None:
    provider = FaultyProvider()
    service = await start_service(
        provider="openai", provider_url=await serve(provider.app()), idle_timeout_s=0.5
    )
    call_id = await _start(service)
    session = service.manager.session(call_id)
    assert session is not None
    await asyncio.wait_for(session.wait_ended(), 5)
    async with httpx.AsyncClient(base_url=service.url) as client:
        record = (await client.get(f"/v1/calls/{call_id}")).json()
    assert record["state"] == "ended"
    assert record["end_reason"] == "idle_timeout"
    assert record["limits"]["idle_timeout_s"] == 0.5
    assert provider.hangups == [call_id]


async def test_a_busy_call_is_hung_up_at_its_maximum_duration(
    start_service: StartService, serve: Serve
) -> None:
    provider = FaultyProvider()
    service = await start_service(
        provider="openai",
        provider_url=await serve(provider.app()),
        idle_timeout_s=0.4,
        max_call_duration_s=1.2,
    )
    call_id = await _start(service)
    session = service.manager.session(call_id)
    assert session is not None
    await asyncio.wait_for(provider.connected.wait(), 5)
    speech = json.dumps({"type": "input_audio_buffer.speech_started", "item_id": "it_1"})
    while session.call.live and call_id in provider.sockets:
        # Speech keeps the call from going idle, so only the duration limit can end it.
        await provider.push(call_id, speech)
        await asyncio.sleep(0.1)
    await asyncio.wait_for(session.wait_ended(), 5)
    assert session.call.end_reason == "max_duration"
    assert provider.hangups == [call_id]
