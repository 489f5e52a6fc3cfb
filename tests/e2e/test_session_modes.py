"""Session modes and modality chosen at call start, seen through a real call."""

from __future__ import annotations

import json

import httpx

from media.peer import CallClient
from tests.e2e.conftest import RunningService, StartService
from tests.e2e.sse import SseEvent, SseRecorder

TRIGGER = "please ask the background agent what is 2 plus 3"


async def _send(service: RunningService, call_id: str, text: str) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(f"/v1/calls/{call_id}/messages", json={"text": text})
    assert response.status_code == 202


def _call_id(client: CallClient) -> str:
    assert client.location is not None
    return client.location.rsplit("/", 1)[1]


async def test_transcription_call_transcribes_the_user_and_never_hands_off(
    start_service: StartService,
) -> None:
    service = await start_service()
    async with CallClient(f"{service.url}/v1/calls", session={"mode": "transcription"}) as client:
        call_id = _call_id(client)
        events = SseRecorder(f"{service.url}/v1/calls/{call_id}/events")
        await events.start()
        await events.wait_for(lambda e: e.name == "session.ready")
        await _send(service, call_id, TRIGGER)
        user = await events.wait_for(
            lambda e: e.name == "transcript.done" and e.data["role"] == "user"
        )
        await client.hangup()
        await events.wait_for(lambda e: e.name == "call.state" and e.data["state"] == "ended")
        await events.stop()
    assert user.data["text"] == TRIGGER
    assert not any(e.name.startswith("handoff.") for e in events.events)
    assert not any(e.data.get("role") == "assistant" for e in events.events)
    call = service.manager.get(call_id)
    assert call is not None
    assert call.config.mode == "transcription"


async def test_text_modality_produces_assistant_text_in_the_transcript(
    start_service: StartService,
) -> None:
    service = await start_service()
    async with CallClient(f"{service.url}/v1/calls", session={"output_modality": "text"}) as client:
        call_id = _call_id(client)
        events = SseRecorder(f"{service.url}/v1/calls/{call_id}/events")
        await events.start()
        await _send(service, call_id, "hello there")

        def assistant_done(e: SseEvent) -> bool:
            return e.name == "transcript.done" and e.data["role"] == "assistant"

        reply = await events.wait_for(assistant_done)
        await events.stop()
        provider_events = [
            e for e in client.events if e.get("type", "").startswith("response.output_text")
        ]
    assert reply.data["text"] == "You said: hello there"
    assert provider_events, "the provider answered with text events"


async def test_start_overrides_are_validated(start_service: StartService) -> None:
    service = await start_service()
    files = {
        "sdp": (None, b"v=0\r\n", "application/sdp"),
        "session": (None, json.dumps({"voice": "nobody"}).encode(), "application/json"),
    }
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post("/v1/calls", files=files)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
