"""The sideband under faults: drops, provider hang-ups, junk events, slow consumers."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from service.calls.session import CallSession
from signaling.realtime.ws_connection import MAX_UNREAD_BYTES
from tests.e2e.conftest import RunningService, Serve, StartService
from tests.e2e.faulty_calls import call_at
from tests.e2e.faulty_provider import FaultyProvider
from tests.e2e.sse import SseRecorder
from tests.e2e.waiting import until


def _completed(item_id: str, text: str) -> str:
    return json.dumps(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": item_id,
            "content_index": 0,
            "transcript": text,
        }
    )


@pytest.fixture
def provider() -> FaultyProvider:
    return FaultyProvider()


async def _call(
    start_service: StartService, serve: Serve, provider: FaultyProvider, **settings: object
) -> tuple[RunningService, str, CallSession]:
    options = {"api_key": "sk-faults", "sideband_backoff_s": 0.05}
    service, call_id, session = await call_at(
        start_service, serve, provider, **{**options, **settings}
    )
    await until(lambda: session.call.session_id == "sess_fault")
    return service, call_id, session


async def test_a_dropped_sideband_is_rejoined_and_later_events_are_not_lost(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> None:
    service, call_id, session = await _call(start_service, serve, provider)
    events = SseRecorder(f"{service.url}/v1/calls/{call_id}/events")
    await events.start()
    await provider.drop(call_id)
    await asyncio.wait_for(provider.connected.wait(), 5)
    await provider.push(call_id, _completed("item_after", "said after the rejoin"))
    said = await events.wait_for(lambda e: e.name == "transcript.done")
    await events.stop()
    assert said.data["text"] == "said after the rejoin"
    assert session.call.state == "active"
    assert session.call.sideband_reconnects == 1
    updates = [e for e in provider.received if e["type"] == "session.update"]
    assert len(updates) == 2, "the session is configured again on every join"
    assert provider.hangups == []


async def test_client_events_sent_while_the_sideband_is_down_are_delivered_after_rejoin(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> None:
    _service, call_id, session = await _call(start_service, serve, provider)
    await provider.drop(call_id)
    await session.inject_text("typed while the sideband was down")
    await asyncio.wait_for(provider.connected.wait(), 5)
    await until(
        lambda: any(
            e["type"] == "conversation.item.create" and "typed while" in json.dumps(e)
            for e in provider.received
        )
    )


async def test_a_call_ended_at_the_provider_ends_as_a_remote_hangup_without_retries(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> None:
    _service, call_id, session = await _call(start_service, serve, provider)
    await provider.end_call(call_id)
    await asyncio.wait_for(session.wait_ended(), 5)
    assert session.call.state == "ended"
    assert session.call.end_reason == "remote_hangup"
    assert provider.sideband_attempts == 2, "one rejoin attempt, answered 404, then no retries"
    assert provider.hangups == []


async def test_a_call_lost_in_a_provider_fault_ends_as_provider_ended(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> None:
    _service, call_id, session = await _call(start_service, serve, provider)
    await provider.end_call(call_id, code=1011, reason="upstream error")
    await asyncio.wait_for(session.wait_ended(), 5)
    assert (session.call.state, session.call.end_reason) == ("ended", "provider_ended")
    assert session.call.end_code == "404"
    assert provider.hangups == []


async def test_malformed_unknown_and_binary_events_never_break_the_call(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> None:
    service, call_id, session = await _call(start_service, serve, provider)
    events = SseRecorder(f"{service.url}/v1/calls/{call_id}/events")
    await events.start()
    await provider.push(
        call_id,
        "{not json",
        '{"type": "response.future_thing.delta", "delta": 1}',
        '{"no_type": true}',
        "[1, 2, 3]",
        b"\x00\x01binary",
        '{"type": "conversation.item.input_audio_transcription.completed"}',
        '{"type": "error", "error": {"message": "something odd", "code": "odd"}}',
        _completed("item_ok", "still listening"),
    )
    said = await events.wait_for(lambda e: e.name == "transcript.done")
    error = await events.wait_for(lambda e: e.name == "call.error")
    await events.stop()
    assert said.data["text"] == "still listening"
    assert error.data["message"] == "something odd"
    assert session.call.state == "active"
    assert session.call.sideband_reconnects == 0


async def test_a_subscriber_that_stops_reading_is_cut_off_and_the_call_goes_on(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> None:
    service, call_id, session = await _call(
        start_service, serve, provider, max_transcript_bytes=10_000_000
    )
    host, port = service.url.removeprefix("http://").split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET /v1/calls/{call_id}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    await until(lambda: len(session.stream._subscribers) == 1)
    big = "x" * 2000
    for n in range(3000):
        await provider.push(call_id, _completed(f"item_{n}", f"{n} {big}"))
    await until(lambda: len(session.call.transcript.snapshot()) == 3000, 30)  # type: ignore[union-attr]
    await until(lambda: len(session.stream._subscribers) == 0, 30)
    async with httpx.AsyncClient(base_url=service.url) as client:
        record = await client.get(f"/v1/calls/{call_id}")
    writer.close()
    assert record.status_code == 200
    assert session.call.state == "active"


async def test_a_provider_flooding_a_call_that_cannot_keep_up_is_held_back_and_nothing_is_lost(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> None:
    _service, call_id, session = await _call(
        start_service, serve, provider, max_transcript_bytes=100_000_000
    )
    # The call takes no input while its gate is paused: what arrives waits in the sideband.
    await session.gate.pause()
    words = "w" * 10_000
    count = 3_000
    flood = asyncio.create_task(
        provider.push(call_id, *(_completed(f"item_{n}", f"{n} {words}") for n in range(count)))
    )
    await until(lambda: session.sideband.unread_bytes > MAX_UNREAD_BYTES, 30)
    await asyncio.sleep(0.5)
    # Reading stopped: at most one more read (asyncio reads up to 256 KiB) came in.
    assert session.sideband.unread_bytes <= MAX_UNREAD_BYTES + 256 * 1024
    assert not flood.done(), "the provider is held back by TCP"
    session.gate.resume()
    await asyncio.wait_for(flood, 60)
    transcript = session.call.transcript
    assert transcript is not None
    await until(lambda: len(transcript.snapshot()) == count, 60)
    assert [entry.item_id for entry in transcript.snapshot()] == [f"item_{n}" for n in range(count)]
    assert session.call.state == "active"
    assert session.call.sideband_reconnects == 0
