"""The local stand-in provider through real sockets: HTTP, the sideband WebSocket and WebRTC."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from media.local_provider.app import create_provider_app
from media.local_provider.calls import CallRegistry
from media.local_provider.config import LocalProviderConfig
from media.peer import CallClient, DialError, dial, format_report
from media.phone import RingError, ring
from tests.e2e.conftest import StartService
from tests.e2e.servers import running_server

API_KEY = "sk-local-test"
CALLS_PATH = "/v1/realtime/calls"
TRIGGER_MESSAGE = {
    "type": "conversation.item.create",
    "item": {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Ask the background agent to run ls"}],
    },
}


@dataclass(frozen=True)
class Provider:
    base_url: str
    calls: CallRegistry

    @property
    def calls_url(self) -> str:
        return self.base_url + CALLS_PATH

    def sideband_url(self, call_id: str | None) -> str:
        query = "" if call_id is None else f"?call_id={call_id}"
        return self.base_url.replace("http://", "ws://") + "/v1/realtime" + query


@contextlib.asynccontextmanager
async def local_provider(config: LocalProviderConfig) -> AsyncIterator[Provider]:
    calls = CallRegistry(config)
    async with running_server(create_provider_app(config, calls)) as base_url:
        yield Provider(base_url, calls)


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    async with local_provider(LocalProviderConfig()) as running:
        yield running


@pytest.fixture
async def keyed_provider() -> AsyncIterator[Provider]:
    async with local_provider(LocalProviderConfig(api_key=API_KEY)) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def make_offer() -> str:
    """A browser-like offer: one audio section and the events data channel."""
    pc = RTCPeerConnection()
    pc.createDataChannel("oai-events")
    pc.addTransceiver("audio")
    await pc.setLocalDescription(await pc.createOffer())
    offer: str = pc.localDescription.sdp
    await pc.close()
    return offer


async def create_call(http: httpx.AsyncClient, provider: Provider) -> str:
    response = await http.post(
        provider.calls_url, content=await make_offer(), headers={"Content-Type": "application/sdp"}
    )
    assert response.status_code == 201, response.text
    return response.headers["location"].rsplit("/", 1)[-1]


async def next_event(ws: ClientConnection) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return event


async def closing(ws: ClientConnection) -> ConnectionClosed:
    """Read events until `ws` closes; how it closed."""
    try:
        while True:
            await next_event(ws)
    except ConnectionClosed as closed:
        return closed


async def events_until(ws: ClientConnection, event_type: str) -> list[dict[str, Any]]:
    events = [await next_event(ws)]
    while events[-1]["type"] != event_type:
        events.append(await next_event(ws))
    return events


def write_tone_wav(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.5 * 32767 * np.sin(2 * math.pi * 300 * t)).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


# -- call creation ----------------------------------------------------------------------------


async def test_a_multipart_offer_is_answered_with_201_location_and_sdp(
    provider: Provider, http: httpx.AsyncClient
) -> None:
    files = {
        "sdp": (None, await make_offer(), "application/sdp"),
        "session": (
            None,
            json.dumps({"type": "realtime", "model": "gpt-realtime"}),
            "application/json",
        ),
    }

    response = await http.post(provider.calls_url, files=files)

    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/sdp")
    assert response.headers["location"].startswith(f"{CALLS_PATH}/rtc_")
    assert response.text.startswith("v=0")
    assert "m=audio" in response.text


async def test_a_raw_sdp_offer_is_answered_with_201(
    provider: Provider, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        provider.calls_url, content=await make_offer(), headers={"Content-Type": "application/sdp"}
    )

    assert response.status_code == 201
    assert "a=fingerprint" in response.text


@pytest.mark.parametrize(
    "session",
    ["{not json", "[1]", json.dumps({"type": "quicksilver"}), json.dumps({"model": "x"})],
)
async def test_a_bad_session_part_is_refused_with_400(
    provider: Provider, http: httpx.AsyncClient, session: str
) -> None:
    files = {
        "sdp": (None, await make_offer(), "application/sdp"),
        "session": (None, session, "application/json"),
    }

    response = await http.post(provider.calls_url, files=files)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_an_offer_in_another_content_type_is_refused_with_415(
    provider: Provider, http: httpx.AsyncClient
) -> None:
    response = await http.post(provider.calls_url, json={"sdp": await make_offer()})

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_content_type"


async def test_text_that_is_not_an_offer_is_refused_with_400(
    provider: Provider, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        provider.calls_url, content="hello", headers={"Content-Type": "application/sdp"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "sdp"


async def test_without_media_the_fake_answer_is_accepted_by_a_webrtc_stack(
    http: httpx.AsyncClient,
) -> None:
    caller = RTCPeerConnection()
    caller.createDataChannel("oai-events")
    caller.addTransceiver("audio")
    await caller.setLocalDescription(await caller.createOffer())
    async with local_provider(LocalProviderConfig(media=False)) as provider:
        response = await http.post(
            provider.calls_url,
            content=caller.localDescription.sdp,
            headers={"Content-Type": "application/sdp"},
        )
        try:
            await caller.setRemoteDescription(
                RTCSessionDescription(sdp=response.text, type="answer")
            )
        finally:
            await caller.close()
        record = await http.get(provider.base_url + response.headers["location"])

    assert response.status_code == 201
    assert record.json()["media"] is False


async def test_healthz_answers_ok(provider: Provider, http: httpx.AsyncClient) -> None:
    response = await http.get(provider.base_url + "/healthz")

    assert response.json() == {"status": "ok"}


# -- WebRTC -----------------------------------------------------------------------------------


async def test_a_webrtc_caller_connects_and_gets_audio_and_session_created(
    provider: Provider,
) -> None:
    async with CallClient(provider.calls_url) as client:
        greeting = await client.wait_for_event("session.created")
        await asyncio.sleep(0.3)

        assert client.connection_states[-1] == "connected"
        assert client.dtls_connected
        assert client.frames_received > 0
        assert greeting["session"]["id"].startswith("sess_")
        assert await client.hangup() == 200


async def test_a_caller_can_configure_the_session_at_call_creation(provider: Provider) -> None:
    session = {"type": "realtime", "output_modalities": ["text"]}

    async with CallClient(provider.calls_url, session=session) as client:
        greeting = await client.wait_for_event("session.created")

    assert greeting["session"]["output_modalities"] == ["text"]


async def test_the_caller_hears_the_providers_greeting_tone(provider: Provider) -> None:
    async with CallClient(provider.calls_url) as client:
        await asyncio.sleep(0.5)

        assert client.peak_dbfs > -30


async def test_dial_reports_a_whole_call(provider: Provider) -> None:
    report = await dial(provider.calls_url, seconds=0.3)

    lines = format_report(report).splitlines()
    assert "ICE connected" in lines
    assert "DTLS connected" in lines
    assert f"audio frames received: {report.frames_received}" in lines
    assert report.frames_received > 0
    assert "data-channel events: 1 (session.created x1)" in lines
    assert "hung up: 200" in lines


async def test_the_callers_wav_file_reaches_the_provider(
    provider: Provider, tmp_path: Path
) -> None:
    wav = write_tone_wav(tmp_path / "hello.wav")

    async with CallClient(provider.calls_url, play=wav) as client:
        await asyncio.sleep(0.3)
        assert client.location is not None
        call = provider.calls.get(client.location.rsplit("/", 1)[-1])

        assert call is not None
        assert call.inbound_audio_frames > 0


async def test_data_channel_and_sideband_both_get_every_event(provider: Provider) -> None:
    async with CallClient(provider.calls_url) as client:
        assert client.location is not None
        call_id = client.location.rsplit("/", 1)[-1]
        async with connect(provider.sideband_url(call_id)) as ws:
            await next_event(ws)
            client.send_event(TRIGGER_MESSAGE)
            client.send_event({"type": "response.create"})

            sideband = await events_until(ws, "response.done")
            await client.wait_for_event("response.done")

    on_channel = [event["event_id"] for event in client.events[1:]]
    assert on_channel == [event["event_id"] for event in sideband]


async def test_a_refused_offer_raises_dial_error_with_the_status_and_detail(
    keyed_provider: Provider,
) -> None:
    with pytest.raises(DialError) as refused:
        await CallClient(keyed_provider.calls_url).connect()

    assert refused.value.status == 401
    assert refused.value.detail == "Incorrect or missing API key provided."


# -- the sideband -----------------------------------------------------------------------------


async def test_the_sideband_greets_with_session_created_and_answers_session_update(
    provider: Provider, http: httpx.AsyncClient
) -> None:
    call_id = await create_call(http, provider)

    async with connect(provider.sideband_url(call_id)) as ws:
        created = await next_event(ws)
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        updated = await next_event(ws)

    assert created["type"] == "session.created"
    assert updated["type"] == "session.updated"
    assert updated["session"]["id"] == created["session"]["id"]


async def test_the_trigger_phrase_over_the_sideband_produces_the_function_call(
    provider: Provider, http: httpx.AsyncClient
) -> None:
    call_id = await create_call(http, provider)

    async with connect(provider.sideband_url(call_id)) as ws:
        await next_event(ws)
        await ws.send(json.dumps(TRIGGER_MESSAGE))
        await ws.send(json.dumps({"type": "response.create"}))
        events = await events_until(ws, "response.done")

    calls = [e["item"] for e in events if e["type"] == "conversation.item.done"]
    function_call = calls[-1]
    assert function_call["type"] == "function_call"
    assert function_call["name"] == "background_agent"
    assert json.loads(function_call["arguments"]) == {
        "prompt": "Ask the background agent to run ls"
    }


async def test_user_speech_reaches_the_sideband_as_transcription_and_a_reply(
    provider: Provider, http: httpx.AsyncClient
) -> None:
    call_id = await create_call(http, provider)
    call = provider.calls.active(call_id)
    assert call is not None

    async with connect(provider.sideband_url(call_id)) as ws:
        await next_event(ws)
        await call.user_spoke("good morning")
        events = await events_until(ws, "response.done")

    kinds = [event["type"] for event in events]
    assert "conversation.item.input_audio_transcription.completed" in kinds
    transcript = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
    assert transcript["transcript"] == "You said: good morning"


async def test_a_reply_delay_keeps_the_response_active(http: httpx.AsyncClient) -> None:
    async with local_provider(LocalProviderConfig(reply_delay_s=1.0)) as provider:
        call_id = await create_call(http, provider)
        async with connect(provider.sideband_url(call_id)) as ws:
            await next_event(ws)
            await ws.send(json.dumps({"type": "response.create"}))
            await ws.send(json.dumps({"type": "response.create"}))
            events = [await next_event(ws), await next_event(ws)]

    assert [event["type"] for event in events] == ["response.created", "error"]
    assert events[1]["error"]["code"] == "conversation_already_has_active_response"


async def test_the_call_record_counts_function_call_outputs(
    provider: Provider, http: httpx.AsyncClient
) -> None:
    call_id = await create_call(http, provider)
    output = {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "call_x", "output": "done"},
    }

    async with connect(provider.sideband_url(call_id)) as ws:
        await next_event(ws)
        await ws.send(json.dumps(output))
        await events_until(ws, "conversation.item.done")
    record = (await http.get(f"{provider.calls_url}/{call_id}")).json()

    assert record["state"] == "active"
    assert record["client_event_types"] == ["conversation.item.create"]
    assert record["function_call_outputs"] == {"call_x": 1}


async def test_a_sideband_without_call_id_is_refused_with_400(provider: Provider) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(provider.sideband_url(None)):
            pass

    assert refused.value.response.status_code == 400


async def test_a_sideband_for_an_unknown_call_is_refused_with_404(provider: Provider) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(provider.sideband_url("rtc_unknown")):
            pass

    assert refused.value.response.status_code == 404


# -- hangup and expiry ------------------------------------------------------------------------


async def test_hangup_closes_the_sideband_with_1000_and_the_call_cannot_be_joined_again(
    provider: Provider, http: httpx.AsyncClient
) -> None:
    call_id = await create_call(http, provider)

    async with connect(provider.sideband_url(call_id)) as ws:
        await next_event(ws)
        hangup = await http.post(f"{provider.calls_url}/{call_id}/hangup")
        with pytest.raises(ConnectionClosed) as closed:
            await next_event(ws)
    with pytest.raises(InvalidStatus) as rejoin:
        async with connect(provider.sideband_url(call_id)):
            pass

    assert hangup.status_code == 200
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "call_ended")
    assert rejoin.value.response.status_code == 404


async def test_a_webrtc_caller_closing_its_peer_connection_ends_the_call_as_a_hang_up_would(
    provider: Provider, http: httpx.AsyncClient
) -> None:
    async with CallClient(provider.calls_url) as client:
        assert client.location is not None
        call_id = client.location.rsplit("/", 1)[-1]
        async with connect(provider.sideband_url(call_id)) as ws:
            await next_event(ws)
            await client.disconnect()
            closed = await closing(ws)
    with pytest.raises(InvalidStatus) as rejoin:
        async with connect(provider.sideband_url(call_id)):
            pass
    hangup = await http.post(f"{provider.calls_url}/{call_id}/hangup")

    assert closed.rcvd is not None
    assert (closed.rcvd.code, closed.rcvd.reason) == (1000, "call_ended")
    assert rejoin.value.response.status_code == 404
    assert (hangup.status_code, hangup.json()["error"]["code"]) == (404, "call_id_not_found")


async def test_hanging_up_an_unknown_call_is_404(
    provider: Provider, http: httpx.AsyncClient
) -> None:
    response = await http.post(f"{provider.calls_url}/rtc_unknown/hangup")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "call_id_not_found"


async def test_hanging_up_twice_is_404_the_second_time(
    provider: Provider, http: httpx.AsyncClient
) -> None:
    call_id = await create_call(http, provider)

    first = await http.post(f"{provider.calls_url}/{call_id}/hangup")
    second = await http.post(f"{provider.calls_url}/{call_id}/hangup")

    assert (first.status_code, second.status_code) == (200, 404)


async def test_a_call_older_than_the_ttl_is_ended(http: httpx.AsyncClient) -> None:
    async with local_provider(LocalProviderConfig(call_ttl_s=0.2)) as provider:
        call_id = await create_call(http, provider)
        async with connect(provider.sideband_url(call_id)) as ws:
            await next_event(ws)
            with pytest.raises(ConnectionClosed) as closed:
                await next_event(ws)
        hangup = await http.post(f"{provider.calls_url}/{call_id}/hangup")

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.reason == "call_ended"
    assert hangup.status_code == 404


# -- the API key ------------------------------------------------------------------------------


async def test_with_an_api_key_an_offer_without_it_is_refused_with_401(
    keyed_provider: Provider, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        keyed_provider.calls_url,
        content=await make_offer(),
        headers={"Content-Type": "application/sdp", "Authorization": "Bearer wrong"},
    )

    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "message": "Incorrect or missing API key provided.",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
            "param": None,
        }
    }


async def test_with_an_api_key_a_sideband_without_it_is_refused_with_401(
    keyed_provider: Provider, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        keyed_provider.calls_url,
        content=await make_offer(),
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {API_KEY}"},
    )
    call_id = response.headers["location"].rsplit("/", 1)[-1]

    with pytest.raises(InvalidStatus) as refused:
        async with connect(keyed_provider.sideband_url(call_id)):
            pass
    async with connect(
        keyed_provider.sideband_url(call_id),
        additional_headers={"Authorization": f"Bearer {API_KEY}"},
    ) as ws:
        greeting = await next_event(ws)

    assert response.status_code == 201
    assert refused.value.response.status_code == 401
    assert greeting["type"] == "session.created"


async def test_dial_gives_the_calls_url_as_soon_as_the_call_is_up(provider: Provider) -> None:
    answered: list[str] = []
    report = await dial(provider.calls_url, seconds=0.3, on_answered=answered.append)

    assert answered == [report.location]
    assert report.location.startswith("http")


async def test_ring_says_why_a_service_refused_its_webhook(start_service: StartService) -> None:
    # The service has no webhook secret: it does not take phone calls, and says so.
    service = await start_service(local_media=False)
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    async with local_provider(LocalProviderConfig(webhook_secret=secret)) as phone_provider:
        with pytest.raises(RingError) as refused:
            await ring(
                phone_provider.base_url,
                f"{service.url}/v1/provider/webhooks",
                headers={},
                say=[],
                play=None,
                seconds=1.0,
            )
    assert "404" in str(refused.value)
    assert "CALLBRIDGE_WEBHOOK_SECRET" in str(refused.value)
