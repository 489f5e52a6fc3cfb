"""Clients nobody here wrote, each against the stand-in provider as if it were the real API.

The official `openai` SDK, `openai-agents` (a `RealtimeAgent` attached to a call by id) and
`pydantic-ai` (its WebRTC relay with a sideband) run unmodified; only their base URL points at
the stand-in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from agents import function_tool
from agents.realtime import RealtimeAgent, RealtimeRunner
from agents.realtime.openai_realtime import OpenAIRealtimeSIPModel
from aiortc import RTCPeerConnection, RTCSessionDescription
from openai import AsyncOpenAI
from pydantic_ai import Agent
from pydantic_ai.messages import RealtimeTurnCompleteEvent
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.realtime.openai import OpenAIRealtimeModel

from media.local_provider.config import LocalProviderConfig
from media.peer import CallClient
from media.rtc import EVENTS_CHANNEL
from tests.e2e.conftest import StartService
from tests.e2e.sse import SseRecorder
from tests.e2e.stand_in import Provider, local_provider, make_offer

API_KEY = "sk-third-party"
TOOL_REQUEST = "Please ask the background agent what is two plus three"


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    async with local_provider(LocalProviderConfig(api_key=API_KEY)) as running:
        yield running


def errors_logged_by_openai_agents(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What openai-agents logged at ERROR (it logs server events its types reject there)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("openai.agents") and r.levelno >= logging.ERROR
    ]


def user_message(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


async def test_the_openai_sdk_creates_a_call_and_joins_it_by_call_id(provider: Provider) -> None:
    client = AsyncOpenAI(api_key=API_KEY, base_url=provider.api_url)
    created = await client.realtime.calls.with_raw_response.create(
        sdp=await make_offer(), session={"type": "realtime", "instructions": "Be brief."}
    )
    call_id = created.headers["location"].rsplit("/", 1)[-1]

    async with client.realtime.connect(call_id=call_id) as connection:
        greeting = await connection.recv()
        await connection.conversation.item.create(item=user_message("hello"))  # type: ignore[arg-type]
        await connection.response.create()
        events = []
        async for event in connection:
            events.append(event)
            if event.type == "response.done":
                break

    assert created.http_response.status_code == 201
    assert created.http_response.headers["content-type"].startswith("application/sdp")
    assert greeting.type == "session.created"
    assert greeting.session.instructions == "Be brief."  # type: ignore[union-attr]
    said = [e.transcript for e in events if e.type == "response.output_audio_transcript.done"]
    assert said == ["You said: hello"]
    await client.realtime.calls.hangup(call_id)


async def test_an_openai_agents_realtime_agent_attached_by_call_id_runs_a_tool(
    provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    asked: list[str] = []

    @function_tool
    def background_agent(prompt: str) -> str:
        """Hand a request to the background agent."""
        asked.append(prompt)
        return "2 + 3 = 5"

    agent = RealtimeAgent(name="caller", instructions="Be brief.", tools=[background_agent])
    call_id = await _create_call(provider)
    runner = RealtimeRunner(starting_agent=agent, model=OpenAIRealtimeSIPModel())
    session = await runner.run(
        model_config={
            "call_id": call_id,
            "url": provider.sideband_url(f"call_id={call_id}"),
            "api_key": API_KEY,
        }
    )
    kinds: list[str] = []
    answer = ""
    async with session:
        await session.send_message(TOOL_REQUEST)
        async with asyncio.timeout(15):
            async for event in session:
                kinds.append(event.type)
                if event.type == "error":
                    pytest.fail(f"openai-agents reported an error: {event.error}")
                if event.type == "raw_model_event" and event.data.type == "raw_server_event":
                    raw = event.data.data
                    if raw.get("type") == "response.output_audio_transcript.done":
                        answer = raw["transcript"]
                        break

    assert asked == [TOOL_REQUEST]
    assert errors_logged_by_openai_agents(caplog) == []
    assert kinds.index("tool_start") < kinds.index("tool_end")
    assert answer == "Here is what the background agent found: 2 + 3 = 5"


async def test_an_openai_agents_realtime_agent_on_a_plain_websocket_session_answers(
    provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    agent = RealtimeAgent(name="plain", instructions="Be brief.")
    runner = RealtimeRunner(starting_agent=agent)
    session = await runner.run(
        model_config={"url": provider.sideband_url("model=gpt-realtime"), "api_key": API_KEY}
    )
    answer = ""
    async with session:
        await session.send_message("hello")
        async with asyncio.timeout(15):
            async for event in session:
                if event.type == "error":
                    pytest.fail(f"openai-agents reported an error: {event.error}")
                if (
                    event.type == "raw_model_event"
                    and event.data.type == "raw_server_event"
                    and event.data.data.get("type") == "response.output_audio_transcript.done"
                ):
                    answer = event.data.data["transcript"]
                    break

    assert answer == "You said: hello"
    assert errors_logged_by_openai_agents(caplog) == []


async def test_pydantic_ai_on_a_plain_websocket_session_completes_a_turn(
    provider: Provider,
) -> None:
    model = OpenAIRealtimeModel(
        "gpt-realtime", provider=OpenAIProvider(base_url=provider.api_url, api_key=API_KEY)
    )
    realtime = Agent(instructions="Be brief.").realtime(model)

    async with realtime.session() as session:
        await session.send("hello")
        async with asyncio.timeout(15):
            turn = [event async for event in _until_turn_complete(session)]

    assert isinstance(turn[-1], RealtimeTurnCompleteEvent)


async def test_pydantic_ai_relays_a_webrtc_offer_and_its_sideband_completes_a_turn(
    provider: Provider,
) -> None:
    model = OpenAIRealtimeModel(
        "gpt-realtime", provider=OpenAIProvider(base_url=provider.api_url, api_key=API_KEY)
    )
    realtime = Agent(instructions="Be brief.").realtime(model)
    browser = RTCPeerConnection()
    channel = browser.createDataChannel(EVENTS_CHANNEL)
    opened = asyncio.Event()
    channel.on("open", opened.set)
    browser.addTransceiver("audio")
    await browser.setLocalDescription(await browser.createOffer())
    try:
        answer = await realtime.answer_webrtc_offer(browser.localDescription.sdp)
        await browser.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
        async with asyncio.timeout(10):
            await opened.wait()
        async with realtime.session(provider_session=answer.session) as session:
            await session.send("hello")
            async with asyncio.timeout(15):
                turn = [event async for event in _until_turn_complete(session)]
        await realtime.hang_up(answer.session)
    finally:
        await browser.close()

    assert isinstance(turn[-1], RealtimeTurnCompleteEvent)
    record = provider.calls.get(answer.session.session_id)
    assert record is not None
    assert record.state == "ended"
    assert "conversation.item.create" in record.debug_record()["client_event_types"]


async def _until_turn_complete(session: Any) -> AsyncIterator[Any]:
    async for event in session:
        yield event
        if isinstance(event, RealtimeTurnCompleteEvent):
            return


async def test_the_openai_sdk_sideband_on_a_callbridge_call_sees_what_callbridge_sees(
    start_service: StartService,
) -> None:
    async with local_provider(LocalProviderConfig()) as provider:
        service = await start_service(provider="local", provider_url=provider.base_url)
        async with CallClient(f"{service.url}/v1/calls") as caller:
            assert caller.location is not None
            call_id = caller.location.rsplit("/", 1)[-1]
            client = AsyncOpenAI(api_key="unused", base_url=provider.api_url)
            sse = SseRecorder(f"{caller.location}/events")
            await sse.start()
            try:
                async with client.realtime.connect(call_id=call_id) as sideband:
                    await sideband.recv()  # session.created
                    async with httpx.AsyncClient(base_url=service.url) as http:
                        sent = await http.post(
                            f"/v1/calls/{call_id}/messages", json={"text": TOOL_REQUEST}
                        )
                    assert sent.status_code == 202
                    seen = await _sdk_turns_until_answer(sideband)
                await sse.wait_for(
                    lambda e: e.name == "transcript.done" and e.data["role"] == "assistant"
                )
            finally:
                await sse.stop()
            async with httpx.AsyncClient() as http:
                record = (await http.get(caller.location)).json()

    callbridge_saw = [(t["item_id"], t["role"], t["text"]) for t in record["transcript"]]
    # The SDK also sees the items callbridge adds for itself (and keeps out of its transcript).
    assert [turn for turn in seen["turns"] if turn in callbridge_saw] == callbridge_saw
    assert [role for _, role, _ in callbridge_saw] == ["user", "assistant"]
    handoff = record["handoffs"][0]
    assert handoff["tool_call_id"] == seen["tool_call_id"]


async def _sdk_turns_until_answer(sideband: Any) -> dict[str, Any]:
    """What the SDK's sideband saw: the transcript turns and the tool call, until the answer."""
    turns: list[tuple[str, str, str]] = []
    tool_call_id = ""
    async with asyncio.timeout(15):
        async for event in sideband:
            if event.type == "conversation.item.done" and event.item.type == "message":
                item = event.item
                if item.role == "user":
                    text = " ".join(part.text or part.transcript or "" for part in item.content)
                    turns.append((item.id, "user", text))
            elif event.type == "response.function_call_arguments.done":
                tool_call_id = event.call_id
            elif event.type == "response.output_audio_transcript.done":
                turns.append((event.item_id, "assistant", event.transcript))
                if tool_call_id:
                    break
    return {"turns": turns, "tool_call_id": tool_call_id}


async def _create_call(provider: Provider) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            provider.calls_url,
            content=await make_offer(),
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {API_KEY}"},
        )
    assert response.status_code == 201, response.text
    return response.headers["location"].rsplit("/", 1)[-1]
