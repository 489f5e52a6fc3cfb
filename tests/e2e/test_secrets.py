"""The provider API key never reaches a response, an error, the schema, or a log line."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from media.peer import CallClient, DialError
from service.logs import configure_logging
from tests.e2e.conftest import RunningService, Serve, StartService
from tests.e2e.faulty_provider import Behaviour, FaultyProvider, mangled
from tests.e2e.redis_server import RedisServer
from tests.e2e.sse import SseEvent, SseRecorder
from tests.e2e.waiting import until
from tests.unit.sdp_samples import AIORTC_OFFER

KEY = "sk-live-7fQ2secretKEYvalue9XyZ"
# What identifies the key in any of its mangled forms: its body, and its base64 encoding.
KEY_BODY = KEY.removeprefix("sk-live-")
HEX_KEY = "3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e"
KEY_BASE64 = base64.b64encode(f"user:{KEY}".encode()).decode()[8:-4]


@contextlib.contextmanager
def _logs_at_debug(secrets: list[str]) -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    configure_logging("DEBUG", "json", secrets, stream=out)
    for name in ("websockets", "websockets.client", "httpx", "httpcore", "callbridge"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.handlers[:], root.level = saved


@pytest.fixture
def debug_logs() -> Iterator[io.StringIO]:
    """Our JSON logging at DEBUG, with the chattiest libraries turned all the way up."""
    with _logs_at_debug([KEY]) as out:
        yield out


def _leaks(text: str) -> list[str]:
    """Which tell-tales of the key `text` holds."""
    return [tell for tell in (KEY, KEY_BODY, KEY_BASE64) if tell in text]


async def _faulty(
    start_service: StartService,
    serve: Serve,
    *script: Behaviour,
    api_key: str = KEY,
    **settings: Any,
) -> tuple[RunningService, FaultyProvider]:
    provider = FaultyProvider(script=list(script))
    service = await start_service(
        provider="openai", provider_url=await serve(provider.app()), api_key=api_key, **settings
    )
    return service, provider


async def _start_call(service: RunningService) -> httpx.Response:
    async with httpx.AsyncClient(base_url=service.url) as client:
        return await client.post(
            "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
        )


def _dump(response: httpx.Response) -> str:
    return f"{response.status_code} {dict(response.headers)} {response.text}"


async def test_key_appears_nowhere_in_a_whole_call_lifecycle(
    start_service: StartService,
    serve: Serve,
    debug_logs: io.StringIO,
) -> None:
    seen: list[str] = []
    service = await start_service(api_key=KEY)
    async with httpx.AsyncClient(base_url=service.url) as client:
        async with CallClient(f"{service.url}/v1/calls") as call:
            assert call.location is not None
            message = await client.post(
                f"{call.location}/messages",
                json={"text": "ask the background agent what is 1 plus 1"},
            )
            seen.append(_dump(message))
            for path in (call.location, "/v1/calls", "/readyz", "/metrics", "/openapi.json"):
                seen.append(_dump(await client.get(path)))
            seen.append(_dump(await client.delete(call.location)))
        seen.append(_dump(await client.post("/v1/calls", content=b"junk", headers={})))
        seen.append(
            _dump(
                await client.post(
                    "/v1/calls", content=b"v=0\r\n", headers={"content-type": "application/sdp"}
                )
            )
        )

    faulty = FaultyProvider(script=["echo_key", "error500", "no_location"])
    broken = await start_service(
        provider="openai", provider_url=await serve(faulty.app()), api_key=KEY
    )
    async with httpx.AsyncClient(base_url=broken.url) as client:
        for _ in range(3):
            response = await client.post(
                "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
            )
            assert response.status_code == 502
            seen.append(_dump(response))
    with pytest.raises(DialError) as failure:
        async with CallClient(f"{broken.url}/v1/calls/../nope"):
            pass
    seen.append(str(failure.value))

    logs = debug_logs.getvalue()
    assert "Incorrect API key" in " ".join(seen), "the echoing provider path was exercised"
    assert '"level": "debug"' in logs, "debug logging was really on"
    assert KEY not in logs
    for text in seen:
        assert KEY not in text


async def test_a_key_quoted_in_the_sdp_answer_does_not_reach_the_browser(
    start_service: StartService, serve: Serve, debug_logs: io.StringIO
) -> None:
    service, _ = await _faulty(start_service, serve, "key_in_answer")
    response = await _start_call(service)
    assert response.status_code == 201
    assert "s=[REDACTED]" in response.text
    assert _leaks(_dump(response)) == []
    assert _leaks(debug_logs.getvalue()) == []


async def test_a_key_quoted_in_the_location_does_not_reach_the_client(
    start_service: StartService, serve: Serve, debug_logs: io.StringIO
) -> None:
    service, _ = await _faulty(start_service, serve, "key_in_call_id", "key_in_bad_location")
    for _ in range(2):
        response = await _start_call(service)
        assert response.status_code == 502
        assert _leaks(_dump(response)) == []
    assert _leaks(debug_logs.getvalue()) == []


@pytest.mark.parametrize("behaviour", ["key_at_error_cut", "key_at_location_cut"])
async def test_a_key_straddling_the_cut_of_quoted_provider_text_is_redacted_whole(
    start_service: StartService, serve: Serve, behaviour: Behaviour
) -> None:
    # A key with no key-like prefix (Azure's are hex): only the configured key can match it.
    service, _ = await _faulty(start_service, serve, behaviour, api_key=HEX_KEY)
    with _logs_at_debug([HEX_KEY]) as logs:
        response = await _start_call(service)
    assert response.status_code == 502
    seen = _dump(response) + logs.getvalue()
    assert HEX_KEY[:-1] not in seen
    assert HEX_KEY[4:] not in seen


async def test_a_mangled_key_in_a_provider_error_reaches_no_response_or_log(
    start_service: StartService, serve: Serve, debug_logs: io.StringIO
) -> None:
    service, _ = await _faulty(start_service, serve, "echo_key_mangled")
    response = await _start_call(service)
    assert response.status_code == 502
    assert "Incorrect API key provided" in response.json()["detail"]
    assert _leaks(_dump(response)) == []
    assert _leaks(debug_logs.getvalue()) == []


async def test_a_mangled_key_in_a_sideband_error_reaches_no_record_stream_or_log(
    start_service: StartService, serve: Serve, debug_logs: io.StringIO
) -> None:
    service, provider = await _faulty(start_service, serve)
    call_id = (await _start_call(service)).headers["location"].rsplit("/", 1)[1]
    await asyncio.wait_for(provider.connected.wait(), 15.0)
    events = SseRecorder(f"{service.url}/v1/calls/{call_id}/events")
    await events.start()
    quoted = {"code": "invalid_api_key", "message": "Incorrect key: " + ", ".join(mangled(KEY))}
    await provider.push(call_id, json.dumps({"type": "error", "error": quoted}))
    error = await events.wait_for(lambda e: e.name == "call.error")
    await events.stop()
    async with httpx.AsyncClient(base_url=service.url) as client:
        record = await client.get(f"/v1/calls/{call_id}")
    assert "Incorrect key" in record.json()["errors"][0]["message"]
    assert _leaks(json.dumps(error.data, ensure_ascii=False)) == []
    assert _leaks(_dump(record)) == []
    assert _leaks(debug_logs.getvalue()) == []


async def test_a_key_in_a_sideband_close_reason_reaches_no_record_or_log(
    start_service: StartService, serve: Serve, debug_logs: io.StringIO
) -> None:
    service, provider = await _faulty(start_service, serve, sideband_max_attempts=1)
    provider.close_at_once, provider.close_code = 1, 1008
    provider.close_reason = f"bad key {KEY.replace('-', '%2D')}"
    call_id = (await _start_call(service)).headers["location"].rsplit("/", 1)[1]
    session = service.manager.session(call_id)
    assert session is not None
    await until(lambda: session.call.end_reason is not None)
    async with httpx.AsyncClient(base_url=service.url) as client:
        record = await client.get(f"/v1/calls/{call_id}")
    assert "bad key [REDACTED]" in record.json()["end_detail"]["message"]
    assert _leaks(_dump(record)) == []
    assert _leaks(debug_logs.getvalue()) == []


async def test_a_key_too_short_to_redact_is_warned_about_and_leaves_logs_legible(
    start_service: StartService,
) -> None:
    with _logs_at_debug(["k"]) as logs:
        service = await start_service(api_key="k")
        async with httpx.AsyncClient(base_url=service.url) as client:
            assert (await client.get("/readyz")).status_code == 200
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    warnings = [line["msg"] for line in lines if line["level"] == "warning"]
    assert any(msg.startswith("CALLBRIDGE_API_KEY is too short") for msg in warnings)
    assert all("[REDACTED]" not in line["msg"] for line in lines)


# Text from a handler


@dataclass
class HandedOff:
    """A call whose model asked the background agent something, handled by a test handler
    that quotes the provider key (`HEX_KEY`: only the configured key can match it)."""

    provider: FaultyProvider
    client: httpx.AsyncClient
    location: str
    events: SseRecorder
    logs: io.StringIO

    async def handoff(self) -> dict[str, Any]:
        """The call's handoff as its record shows it."""
        (handoff,) = (await self.client.get(self.location)).json()["handoffs"]
        return dict(handoff)

    async def event(self, name: str) -> SseEvent:
        """The call's first event called `name`."""
        return await self.events.wait_for(lambda e: e.name == name)

    def seen(self, *events: SseEvent) -> str:
        """Everything the model, the event stream's `events` and the logs were given."""
        streamed = [json.dumps(e.data, ensure_ascii=False) for e in events]
        return " ".join([json.dumps(self.provider.received), *streamed, self.logs.getvalue()])


def _tool_call(prompt: str) -> str:
    item = {
        "id": "item_ask",
        "type": "function_call",
        "call_id": "call_ask",
        "name": "background_agent",
        "arguments": json.dumps({"prompt": prompt}),
    }
    return json.dumps({"type": "conversation.item.done", "item": item})


@contextlib.asynccontextmanager
async def _handed_off(
    start_service: StartService,
    serve: Serve,
    monkeypatch: pytest.MonkeyPatch,
    handler: str,
    **settings: Any,
) -> AsyncIterator[HandedOff]:
    """A call handed off to `tests.e2e.handlers:<handler>` (see `HandedOff`), with the handler
    reading the key from the environment as a real one would; deleted afterwards."""
    monkeypatch.setenv("CALLBRIDGE_API_KEY", HEX_KEY)
    with _logs_at_debug([HEX_KEY]) as logs:
        service, provider = await _faulty(
            start_service,
            serve,
            api_key=HEX_KEY,
            handler=f"tests.e2e.handlers:{handler}",
            **settings,
        )
        async with httpx.AsyncClient(base_url=service.url) as client:
            location = (await _start_call(service)).headers["location"]
            await asyncio.wait_for(provider.connected.wait(), 15.0)
            events = SseRecorder(f"{service.url}{location}/events")
            await events.start()
            await provider.push(location.rsplit("/", 1)[1], _tool_call("look it up"))
            try:
                yield HandedOff(provider, client, location, events, logs)
            finally:
                await events.stop()
                await client.delete(location)


@pytest.mark.parametrize("queue", ["memory", "redis"])
async def test_a_key_in_a_handlers_error_reaches_no_record_stream_model_or_log(
    start_service: StartService,
    serve: Serve,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    queue: str,
) -> None:
    if queue == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        queue = redis_server.url
    handler = "fails_quoting_the_key"
    async with _handed_off(start_service, serve, monkeypatch, handler, queue=queue) as call:
        failed = await call.event("handoff.failed")
        handoff = await call.handoff()
    assert handoff["error"] == "the handler raised RuntimeError: db failed for key [REDACTED]"
    assert "db failed for key [REDACTED]" in call.seen(failed)
    assert HEX_KEY not in call.seen(failed) + json.dumps(handoff)


async def test_a_key_in_a_handlers_answer_reaches_no_record_stream_model_or_log(
    start_service: StartService, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _handed_off(start_service, serve, monkeypatch, "answers_with_the_key") as call:
        completed = await call.event("handoff.completed")
        handoff = await call.handoff()
    assert handoff["output"] == "the key is [REDACTED]"
    assert "the key is [REDACTED]" in call.seen(completed)
    assert HEX_KEY not in call.seen(completed) + json.dumps(handoff)


async def test_a_key_in_a_handlers_progress_reaches_no_record_stream_model_or_log(
    start_service: StartService, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = "reports_progress_with_the_key"
    async with _handed_off(start_service, serve, monkeypatch, handler) as call:
        progress = await call.event("handoff.progress")
        await call.event("handoff.completed")
        handoff = await call.handoff()
    assert handoff["progress"] == ["connecting with [REDACTED]"]
    assert "[BACKEND] connecting with [REDACTED]" in call.seen(progress)
    assert HEX_KEY not in call.seen(progress) + json.dumps(handoff)


async def test_a_key_in_a_handlers_late_answer_reaches_no_record_or_log(
    start_service: StartService, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = "answers_late_with_the_key"
    async with _handed_off(
        start_service, serve, monkeypatch, handler, handoff_deadline_s=0.5
    ) as call:
        await call.event("handoff.failed")
        await until(lambda: _late_output(call))
        handoff = await call.handoff()
    assert handoff["late_output"] == "the key is [REDACTED]"
    assert HEX_KEY not in call.seen() + json.dumps(handoff)


async def _late_output(call: HandedOff) -> bool:
    return (await call.handoff())["late_output"] is not None
