"""Ended calls are kept within a total byte budget, however much each one said."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.e2e.conftest import Serve, StartService
from tests.e2e.faulty_provider import FaultyProvider
from tests.e2e.hostile import healthy
from tests.unit.sdp_samples import AIORTC_OFFER

BUDGET = 300_000
SAID = 100_000


def _said(text: str) -> str:
    return json.dumps(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "item_big",
            "content_index": 0,
            "transcript": text,
        }
    )


async def test_ended_calls_beyond_the_byte_budget_are_forgotten_oldest_first(
    start_service: StartService, serve: Serve
) -> None:
    provider = FaultyProvider()
    service = await start_service(
        provider="openai",
        provider_url=await serve(provider.app()),
        api_key="sk-retention",
        ended_calls_max_bytes=BUDGET,
    )
    locations: list[str] = []
    async with httpx.AsyncClient(base_url=service.url) as client:
        for n in range(5):
            provider.connected.clear()
            response = await client.post(
                "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
            )
            assert response.status_code == 201, response.text
            location = response.headers["location"]
            call_id = location.rsplit("/", 1)[1]
            session = service.manager.session(call_id)
            assert session is not None
            await asyncio.wait_for(provider.connected.wait(), 10)
            await provider.push(call_id, _said(f"{n} " + "x" * SAID))
            while not session.call.transcript or not session.call.transcript.snapshot():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            assert (await client.post(f"{location}/hangup")).status_code == 200
            locations.append(location)
        first = await client.get(locations[0])
        last = await client.get(locations[-1])
    assert service.manager.ended_total_bytes <= BUDGET
    assert first.status_code == 404
    assert last.status_code == 200
    assert last.json()["transcript"][0]["text"].startswith("4 ")
    assert await healthy(service.url)
