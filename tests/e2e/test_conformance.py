"""Every server event and session object of the stand-in, as the official `openai` SDK types them.

A scripted set of calls (a text turn, a spoken turn from a WAV, a tool call, a barge-in, a clear,
each refusal, plain WebSocket sessions, client secrets and HTTP errors) runs against the stand-in;
everything it sends is validated strictly by the SDK's own pydantic models (see
`tests/sdk_types.py` for what "strictly" means).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai.types import ErrorObject
from websockets.asyncio.client import ClientConnection, connect

from media.audio import FRAME_MS, read_wav_frames
from media.local_provider.config import LocalProviderConfig
from media.peer import CallClient
from tests.e2e.conftest import StartService
from tests.e2e.stand_in import Provider, audio_call, local_provider, make_offer, voiced_onset_ms
from tests.sdk_types import (
    validate_client_secret,
    validate_server_event,
    validate_strictly,
)

API_KEY = "sk-conformance"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
JsonObject = dict[str, Any]


class Sideband:
    """A raw WebSocket to the stand-in that keeps every server event it receives."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.events: list[JsonObject] = []

    async def send(self, event: JsonObject) -> None:
        await self.websocket.send(json.dumps(event))

    async def send_text(self, text: str) -> None:
        await self.websocket.send(text)

    async def until(
        self, event_type: str, match: Callable[[JsonObject], bool] = lambda _: True
    ) -> JsonObject:
        async with asyncio.timeout(10):
            while True:
                event: JsonObject = json.loads(await self.websocket.recv())
                self.events.append(event)
                if event["type"] == event_type and match(event):
                    return event


@contextlib.asynccontextmanager
async def sideband(provider: Provider, query: str) -> AsyncIterator[Sideband]:
    async with connect(provider.sideband_url(query), additional_headers=AUTH) as websocket:
        yield Sideband(websocket)


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    async with local_provider(LocalProviderConfig(api_key=API_KEY)) as running:
        yield running


@pytest.fixture
async def slow_provider() -> AsyncIterator[Provider]:
    """A stand-in whose responses stay in progress for a second: long enough to overlap."""
    async with local_provider(LocalProviderConfig(api_key=API_KEY, reply_delay_s=1.0)) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def create_call(provider: Provider, http: httpx.AsyncClient, token: str = API_KEY) -> str:
    response = await http.post(
        provider.calls_url,
        content=await make_offer(),
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    return response.headers["location"].rsplit("/", 1)[-1]


def user_text(text: str) -> JsonObject:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return {"type": "conversation.item.create", "item": item}


def assert_conformant(events: list[JsonObject]) -> None:
    """Every event validates; collects all failures before failing."""
    problems = []
    for event in events:
        try:
            validate_server_event(event)
        except AssertionError as exc:
            problems.append(str(exc))
    assert problems == [], "\n".join(problems)
    print(f"\n{len(events)} events of {len({e['type'] for e in events})} types conform")


async def test_a_text_turn_conforms(provider: Provider, http: httpx.AsyncClient) -> None:
    call_id = await create_call(provider, http)
    async with sideband(provider, f"call_id={call_id}") as side:
        await side.until("session.created")
        tool = {
            "type": "function",
            "name": "lookup",
            "description": "Look something up.",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
        await side.send(
            {"type": "session.update", "session": {"type": "realtime", "tools": [tool]}}
        )
        await side.until("session.updated")
        await side.send(user_text("hello"))
        await side.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        await side.until("response.done")
        await side.send({"type": "response.create"})
        done = await side.until("response.done")
        reply_id = done["response"]["output"][0]["id"]
        await side.send({"type": "conversation.item.retrieve", "item_id": reply_id})
        await side.until("conversation.item.retrieved")
        await side.send({"type": "conversation.item.delete", "item_id": reply_id})
        await side.until("conversation.item.deleted")
        await side.send({"type": "input_audio_buffer.clear"})
        await side.until("input_audio_buffer.cleared")

    assert_conformant(side.events)


async def test_a_tool_call_conforms(provider: Provider, http: httpx.AsyncClient) -> None:
    call_id = await create_call(provider, http)
    async with sideband(provider, f"call_id={call_id}") as side:
        await side.send(user_text("Ask the background agent what time it is"))
        await side.send({"type": "response.create"})
        arguments = await side.until("response.function_call_arguments.done")
        await side.until("response.done")
        output = {"type": "function_call_output", "call_id": arguments["call_id"], "output": "9"}
        await side.send({"type": "conversation.item.create", "item": output})
        await side.send({"type": "response.create"})
        await side.until("response.done")

    assert_conformant(side.events)


async def test_a_spoken_turn_from_a_wav_conforms(
    provider: Provider, utterance_wavs: dict[str, Path]
) -> None:
    async with audio_call(provider, API_KEY) as caller:
        caller.play(read_wav_frames(utterance_wavs["greeting"]))
        await caller.wait_for("output_audio_buffer.stopped")

    assert_conformant(caller.events)


async def test_a_barge_in_conforms(provider: Provider, utterance_wavs: dict[str, Path]) -> None:
    greeting = read_wav_frames(utterance_wavs["greeting"])
    onset_frame = voiced_onset_ms(greeting) // FRAME_MS
    async with audio_call(provider, API_KEY) as caller:
        caller.play(greeting)
        await caller.wait_for("output_audio_buffer.started")
        caller.play(greeting[onset_frame - 5 :])
        await caller.wait_for("conversation.item.truncated")

    assert_conformant(caller.events)


async def test_clearing_output_audio_conforms(
    provider: Provider, utterance_wavs: dict[str, Path]
) -> None:
    async with audio_call(provider, API_KEY) as caller:
        caller.play(read_wav_frames(utterance_wavs["greeting"]))
        started = await caller.wait_for("output_audio_buffer.started")
        caller.send({"type": "output_audio_buffer.clear", "event_id": "evt_clear"})
        cleared = await caller.wait_for("output_audio_buffer.cleared")

    assert cleared["response_id"] == started["response_id"]
    assert_conformant(caller.events)


async def test_refusals_conform_and_name_the_refused_client_event(
    slow_provider: Provider, http: httpx.AsyncClient
) -> None:
    call_id = await create_call(slow_provider, http)
    async with sideband(slow_provider, f"call_id={call_id}") as side:
        await side.send(user_text("hello"))
        await side.send({"type": "response.create", "event_id": "evt_first"})
        await side.send({"type": "response.create", "event_id": "evt_second"})
        busy = await side.until("error")
        await side.until("response.done")
        voice = {"type": "realtime", "audio": {"output": {"voice": "ash"}}}
        await side.send({"type": "session.update", "event_id": "evt_voice", "session": voice})
        no_voice = await side.until("error")
        await side.send(
            {"type": "conversation.item.retrieve", "event_id": "evt_get", "item_id": "item_x"}
        )
        not_found = await side.until("error")
        await side.send({"type": "no.such.event", "event_id": "evt_odd"})
        odd = await side.until("error")
        await side.send_text("not json")
        await side.until("error", lambda e: e["error"]["code"] == "invalid_json")

    refusals = [(e["error"]["code"], e["error"]["event_id"]) for e in (busy, no_voice)]
    assert refusals == [
        ("conversation_already_has_active_response", "evt_second"),
        ("cannot_update_voice", "evt_voice"),
    ]
    assert (not_found["error"]["event_id"], odd["error"]["event_id"]) == ("evt_get", "evt_odd")
    assert "session.updated" not in [e["type"] for e in side.events]
    assert_conformant(side.events)


async def test_plain_websocket_sessions_conform(provider: Provider) -> None:
    async with sideband(provider, "model=gpt-realtime") as conversation:
        created = await conversation.until("session.created")
        await conversation.send(user_text("hello"))
        await conversation.send({"type": "response.create"})
        await conversation.until("response.done")
    async with sideband(provider, "intent=transcription") as transcription:
        transcribing = await transcription.until("session.created")

    assert created["session"]["model"] == "gpt-realtime"
    assert transcribing["session"]["type"] == "transcription"
    assert_conformant(conversation.events + transcription.events)


async def test_a_client_secret_conforms_and_starts_its_session(
    provider: Provider, http: httpx.AsyncClient
) -> None:
    session = {"type": "realtime", "instructions": "Speak like a pirate."}
    minted = await http.post(
        provider.base_url + "/v1/realtime/client_secrets",
        json={"session": session, "expires_after": {"anchor": "created_at", "seconds": 60}},
        headers=AUTH,
    )
    secret = minted.json()
    call_id = await create_call(provider, http, token=secret["value"])
    async with sideband(provider, f"call_id={call_id}") as side:
        created = await side.until("session.created")

    assert minted.status_code == 200
    validate_client_secret(secret)
    assert secret["value"].startswith("ek_")
    assert created["session"]["instructions"] == "Speak like a pirate."
    assert_conformant(side.events)


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/v1/no/such/route", AUTH),
        ("DELETE", "/v1/realtime/calls", AUTH),
        ("POST", "/v1/realtime/calls/rtc_unknown/hangup", AUTH),
        ("POST", "/v1/realtime/calls", {"Authorization": "Bearer sk-wrong"}),
        ("POST", "/v1/realtime/calls", {"Authorization": "Bearer ek_expired_or_made_up"}),
        ("POST", "/v1/realtime/client_secrets", AUTH),
    ],
)
async def test_every_http_error_is_the_openai_error_object(
    provider: Provider,
    http: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
) -> None:
    response = await http.request(method, provider.base_url + path, headers=headers, content="x")

    assert response.status_code >= 400
    body = response.json()
    assert list(body) == ["error"]
    validate_strictly(ErrorObject, body["error"])


async def test_a_call_driven_by_callbridge_conforms(start_service: StartService) -> None:
    async with local_provider(LocalProviderConfig()) as provider:
        service = await start_service(provider="local", provider_url=provider.base_url)
        async with CallClient(f"{service.url}/v1/calls") as caller:
            assert caller.location is not None
            call_id = caller.location.rsplit("/", 1)[-1]
            async with connect(provider.sideband_url(f"call_id={call_id}")) as websocket:
                side = Sideband(websocket)
                await side.until("session.created")
                async with httpx.AsyncClient(base_url=service.url) as http:
                    await http.post(
                        f"/v1/calls/{call_id}/messages",
                        json={"text": "Ask the background agent what is two plus three"},
                    )
                await side.until("response.function_call_arguments.done")
                await side.until(
                    "response.done", lambda e: e["response"]["output"][0]["type"] == "message"
                )
                async with httpx.AsyncClient(base_url=service.url) as http:
                    await http.post(f"/v1/calls/{call_id}/session", json={"voice": "ash"})
                refused = await side.until("error")

    assert refused["error"]["code"] == "cannot_update_voice"
    assert_conformant(side.events + caller.events)
