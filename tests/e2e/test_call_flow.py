"""A real call end to end: aiortc client -> callbridge -> local provider, over real sockets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from media.peer import CallClient, DialError
from tests.e2e.conftest import RunningService, StartService
from tests.e2e.processes import Process, free_port
from tests.e2e.sse import SseEvent, SseRecorder
from tests.e2e.waiting import until

REQUEST = "please ask the background agent what is 2 plus 3"


async def _provider_record(service: RunningService, call_id: str) -> dict[str, Any]:
    key = service.manager.settings.api_key_value()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(base_url=service.provider_url, headers=headers) as client:
        response = await client.get(f"/v1/realtime/calls/{call_id}")
    assert response.status_code == 200
    record: dict[str, Any] = response.json()
    return record


def _call_id(client: CallClient) -> str:
    assert client.location is not None
    return client.location.rsplit("/", 1)[1]


@pytest.fixture
async def service(start_service: StartService) -> RunningService:
    return await start_service()


@pytest.fixture
async def call(service: RunningService) -> AsyncIterator[CallClient]:
    async with CallClient(f"{service.url}/v1/calls") as client:
        yield client


async def test_media_flows_both_ways_and_delete_hangs_up_at_the_provider(
    service: RunningService, call: CallClient
) -> None:
    call_id = _call_id(call)
    assert call.dtls_connected

    async def audio_both_ways() -> bool:
        record = await _provider_record(service, call_id)
        return call.frames_received > 10 and record["inbound_audio_frames"] > 10

    await until(audio_both_ways)
    assert any(e["type"] == "session.created" for e in call.events)
    assert await call.hangup() == 200
    record = await _provider_record(service, call_id)
    assert record["state"] == "ended"
    ended = service.manager.get(call_id)
    assert ended is not None
    assert (ended.state, ended.end_reason) == ("ended", "hangup")


async def test_a_peer_that_leaves_without_hanging_up_ends_the_call_as_a_remote_hangup(
    service: RunningService, call: CallClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    call_id = _call_id(call)
    session = service.manager.session(call_id)
    assert session is not None
    await until(lambda: session.call.session_id is not None)
    await call.disconnect()
    await asyncio.wait_for(session.wait_ended(), 30)
    assert (session.call.state, session.call.end_reason) == ("ended", "remote_hangup")
    assert (await _provider_record(service, call_id))["state"] == "ended"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_call_record_shows_state_session_and_limits(
    service: RunningService, call: CallClient
) -> None:
    call_id = _call_id(call)
    async with httpx.AsyncClient(base_url=service.url) as client:
        body = (await client.get(f"/v1/calls/{call_id}")).json()
        listing = (await client.get("/v1/calls")).json()
    assert body["id"] == call_id
    assert body["state"] in ("starting", "active")
    assert body["session"]["voice"] == "marin"
    assert body["limits"]["max_duration_s"] > 0
    assert [c["id"] for c in listing["calls"]] == [call_id]


async def test_sideband_configures_the_session_without_a_model(
    service: RunningService, call: CallClient
) -> None:
    call_id = _call_id(call)

    async def updated() -> bool:
        return "session.update" in (await _provider_record(service, call_id))["client_event_types"]

    await until(updated)
    session = service.manager.session(call_id)
    assert session is not None
    await until(lambda: session.call.session_id is not None)


async def test_handoff_round_trip_reaches_worker_and_answer_is_spoken(
    service: RunningService, call: CallClient
) -> None:
    call_id = _call_id(call)
    events = SseRecorder(f"{service.url}/v1/calls/{call_id}/events")
    await events.start()
    try:
        async with httpx.AsyncClient(base_url=service.url) as client:
            response = await client.post(f"/v1/calls/{call_id}/messages", json={"text": REQUEST})
        assert response.status_code == 202

        def user_said(e: SseEvent) -> bool:
            return e.name == "transcript.done" and e.data["role"] == "user"

        def answered(e: SseEvent) -> bool:
            return (
                e.name == "transcript.done"
                and e.data["role"] == "assistant"
                and "5" in e.data["text"]
            )

        user = await events.wait_for(user_said)
        queued = await events.wait_for(lambda e: e.name == "handoff.queued")
        completed = await events.wait_for(lambda e: e.name == "handoff.completed")
        spoken = await events.wait_for(answered)
    finally:
        await events.stop()
    assert user.data["text"] == REQUEST
    assert queued.data["request"] == REQUEST
    assert "2 + 3 = 5" in completed.data["output"]
    order = [events.index(e) for e in (user, queued, completed, spoken)]
    assert order == sorted(order)
    record = await _provider_record(service, call_id)
    tool_call_id = completed.data["handoff_id"].split(":", 1)[1]
    assert record["function_call_outputs"] == {tool_call_id: 1}


async def test_call_record_includes_transcript_and_handoffs(
    service: RunningService, call: CallClient
) -> None:
    call_id = _call_id(call)
    async with httpx.AsyncClient(base_url=service.url) as client:
        await client.post(f"/v1/calls/{call_id}/messages", json={"text": REQUEST})

        async def handoff_done() -> bool:
            body = (await client.get(f"/v1/calls/{call_id}")).json()
            return bool(body["handoffs"]) and body["handoffs"][0]["state"] == "completed"

        await until(handoff_done)
        body = (await client.get(f"/v1/calls/{call_id}")).json()
    assert body["transcript"][0] == {
        "item_id": body["transcript"][0]["item_id"],
        "role": "user",
        "text": REQUEST,
        "final": True,
    }
    assert body["handoffs"][0]["request"] == REQUEST
    assert "<realtime_delegation>" not in str(body["transcript"])


@pytest.fixture
def provider_process(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    provider = Process(
        ["provider", "--port", str(port)],
        {"CALLBRIDGE_API_KEY": "sk-separate-process"},
        tmp_path / "provider.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        provider.wait_http(f"{url}/healthz")
        yield url
    finally:
        provider.stop()


async def test_openai_provider_path_reaches_a_separate_provider_process_by_url(
    start_service: StartService, provider_process: str
) -> None:
    service = await start_service(
        provider="openai", provider_url=provider_process, api_key="sk-separate-process"
    )
    async with CallClient(f"{service.url}/v1/calls") as client:
        call_id = _call_id(client)

        async def joined() -> bool:
            session = service.manager.session(call_id)
            return session is not None and session.call.session_id is not None

        await until(joined)
        assert client.dtls_connected
        assert await client.hangup() == 200
    record = await _provider_record(service, call_id)
    assert record["state"] == "ended"


async def test_provider_rejects_a_wrong_key_and_no_call_is_registered(
    start_service: StartService, provider_process: str
) -> None:
    service = await start_service(
        provider="openai", provider_url=provider_process, api_key="sk-wrong"
    )
    with pytest.raises(DialError) as failure:
        async with CallClient(f"{service.url}/v1/calls"):
            pass
    assert failure.value.status == 502
    assert service.manager.active() == []
