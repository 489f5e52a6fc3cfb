"""Ended calls (records, and on one instance their events) are kept within a total byte
budget, however much each one said."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.e2e.conftest import RunningService, Serve, StartService
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


async def _service(
    start_service: StartService, serve: Serve, budget: int
) -> tuple[RunningService, FaultyProvider]:
    provider = FaultyProvider()
    service = await start_service(
        provider="openai",
        provider_url=await serve(provider.app()),
        api_key="sk-retention",
        ended_calls_max_bytes=budget,
    )
    return service, provider


async def _ended_call_that_said(
    client: httpx.AsyncClient, service: RunningService, provider: FaultyProvider, text: str
) -> str:
    """Start a call, have the caller say `text` (in its transcript and its events), hang it
    up; its Location."""
    provider.connected.clear()
    response = await client.post(
        "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
    )
    assert response.status_code == 201, response.text
    location: str = response.headers["location"]
    call_id = location.rsplit("/", 1)[1]
    session = service.manager.session(call_id)
    assert session is not None
    await asyncio.wait_for(provider.connected.wait(), 10)
    await provider.push(call_id, _said(text))
    while not session.call.transcript or not session.call.transcript.snapshot():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert (await client.post(f"{location}/hangup")).status_code == 200
    return location


async def test_ended_calls_beyond_the_byte_budget_are_forgotten_oldest_first(
    start_service: StartService, serve: Serve
) -> None:
    service, provider = await _service(start_service, serve, BUDGET)
    async with httpx.AsyncClient(base_url=service.url) as client:
        locations = [
            await _ended_call_that_said(client, service, provider, f"{n} " + "x" * SAID)
            for n in range(5)
        ]
        first = await client.get(locations[0])
        last = await client.get(locations[-1])
    assert service.manager.ended_total_bytes <= BUDGET
    assert first.status_code == 404
    assert last.status_code == 200
    assert last.json()["transcript"][0]["text"].startswith("4 ")
    assert await healthy(service.url)


async def test_an_ended_calls_events_count_against_the_budget_and_go_with_its_record(
    start_service: StartService, serve: Serve
) -> None:
    # Two records fit in the budget; two records with their events (each event stream holds
    # what was said once more) do not.
    service, provider = await _service(start_service, serve, 3 * SAID)
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        older = await _ended_call_that_said(client, service, provider, "0 " + "x" * SAID)
        newer = await _ended_call_that_said(client, service, provider, "1 " + "x" * SAID)
        older_record = await client.get(older)
        older_events = await client.get(f"{older}/events")
        newer_events = await client.get(f"{newer}/events")
    assert (older_record.status_code, older_events.status_code) == (404, 404)
    assert newer_events.status_code == 200
    assert '"text":"1 x' in newer_events.text
    assert newer_events.text.rstrip().endswith('data: {"state":"ended","reason":"hangup"}')
