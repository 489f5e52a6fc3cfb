"""Event-stream subscribers that never read: dropped, and nothing of theirs outlives the call."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx

from service.calls.session import CallSession
from tests.e2e.conftest import RunningService, Serve, StartService
from tests.e2e.faulty_calls import call_at
from tests.e2e.faulty_provider import FaultyProvider
from tests.e2e.hostile import healthy, request_head
from tests.e2e.waiting import until


def _said(n: int) -> str:
    return json.dumps(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": f"item_{n}",
            "content_index": 0,
            "transcript": f"{n} " + "x" * 4000,
        }
    )


def _http_requests_in_flight() -> int:
    # Each HTTP request the server is still answering is one uvicorn task running the app.
    return sum(
        1
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == "RequestResponseCycle.run_asgi"
    )


async def _call(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> tuple[RunningService, str, CallSession]:
    service, call_id, session = await call_at(
        start_service,
        serve,
        provider,
        api_key="sk-subscribers",
        sse_send_timeout_s=0.5,
        # The stream must carry megabytes to fill the socket: above the default per-call cap.
        max_transcript_bytes=50_000_000,
    )
    await asyncio.wait_for(provider.connected.wait(), 10)
    return service, call_id, session


async def _silent_subscriber(service: RunningService, call_id: str) -> socket.socket:
    """A subscriber with a tiny receive window that never reads what it asked for."""
    host, port = service.url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    await asyncio.get_running_loop().sock_sendall(
        sock, request_head("GET", f"/v1/calls/{call_id}/events", {})
    )
    return sock


async def test_a_subscriber_that_never_reads_is_dropped_while_the_call_goes_on(
    start_service: StartService, serve: Serve
) -> None:
    provider = FaultyProvider()
    service, call_id, session = await _call(start_service, serve, provider)
    sock = await _silent_subscriber(service, call_id)
    try:
        await until(lambda: _http_requests_in_flight() == 1)
        # Events small enough not to lag the subscriber off: only its socket is full.
        for n in range(3000):
            await provider.push(call_id, _said(n))
        await until(lambda: _http_requests_in_flight() == 0)
        assert session.call.state == "active"
        assert await healthy(service.url)
    finally:
        sock.close()


async def test_a_stream_whose_subscriber_never_reads_closes_when_the_call_ends(
    start_service: StartService, serve: Serve
) -> None:
    provider = FaultyProvider()
    service, call_id, session = await _call(start_service, serve, provider)
    sock = await _silent_subscriber(service, call_id)
    try:
        await until(lambda: _http_requests_in_flight() == 1)
        for n in range(3000):
            await provider.push(call_id, _said(n))
        async with httpx.AsyncClient(base_url=service.url) as client:
            assert (await client.delete(f"/v1/calls/{call_id}")).status_code == 200
        await asyncio.wait_for(session.wait_ended(), 10)
        await until(lambda: _http_requests_in_flight() == 0)
        assert session.stream._subscribers == set()
        assert await healthy(service.url)
    finally:
        sock.close()


async def _call_with_seats(
    start_service: StartService, serve: Serve, seats: int
) -> tuple[RunningService, str]:
    """A live call on a service allowing `seats` event streams per call."""
    service, call_id, _ = await call_at(
        start_service, serve, FaultyProvider(), max_event_streams_per_call=seats
    )
    return service, call_id


async def _open_streams(service: RunningService, call_id: str, count: int) -> list[socket.socket]:
    streams = [await _silent_subscriber(service, call_id) for _ in range(count)]
    await until(lambda: _http_requests_in_flight() == count)
    return streams


async def test_event_streams_past_a_calls_limit_are_answered_429(
    start_service: StartService, serve: Serve
) -> None:
    service, call_id = await _call_with_seats(start_service, serve, 3)
    streams = await _open_streams(service, call_id, 3)
    try:
        async with httpx.AsyncClient(base_url=service.url) as client:
            refused = await client.get(f"/v1/calls/{call_id}/events")
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
    finally:
        for stream in streams:
            stream.close()


async def test_a_closed_event_stream_gives_its_seat_back(
    start_service: StartService, serve: Serve
) -> None:
    service, call_id = await _call_with_seats(start_service, serve, 1)
    first = await _open_streams(service, call_id, 1)
    first[0].close()
    await until(lambda: _http_requests_in_flight() == 0)
    second = await _open_streams(service, call_id, 1)
    second[0].close()
