"""Issue 9's behaviours through a scripted provider: refusals, link failures, odd tool calls.

Real sockets throughout: callbridge on uvicorn, the scripted provider on its own port, the
embedded worker answering handoffs.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from service.calls.session import CallSession
from tests.e2e.conftest import RunningService, Serve, StartService
from tests.e2e.faulty_calls import call_at
from tests.e2e.faulty_provider import FaultyProvider
from tests.e2e.sse import SseRecorder
from tests.e2e.waiting import until

KEY = "sk-faults-0123456789"


@pytest.fixture
def provider() -> FaultyProvider:
    return FaultyProvider()


async def _start(
    start_service: StartService, serve: Serve, provider: FaultyProvider, **settings: Any
) -> tuple[RunningService, str, CallSession]:
    options = {"api_key": KEY, "sideband_backoff_s": 0.01, "sideband_backoff_max_s": 0.05}
    return await call_at(start_service, serve, provider, **{**options, **settings})


async def _ready(
    start_service: StartService, serve: Serve, provider: FaultyProvider, **settings: Any
) -> tuple[RunningService, str, CallSession]:
    service, call_id, session = await _start(start_service, serve, provider, **settings)
    await until(lambda: session.call.session_id == "sess_fault")
    return service, call_id, session


async def _record(service: RunningService, call_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.get(f"/v1/calls/{call_id}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _tool_call(call_id: str, name: str = "background_agent", **fields: Any) -> str:
    item = {
        "id": f"item_{call_id}",
        "type": "function_call",
        "status": "completed",
        "call_id": call_id,
        "name": name,
        "arguments": '{"prompt":"what is 2+2"}',
        **fields,
    }
    return json.dumps({"type": "conversation.item.done", "item": item})


def _outputs(provider: FaultyProvider, call_id: str) -> list[dict[str, Any]]:
    return [
        e["item"]
        for e in provider.received
        if e["type"] == "conversation.item.create"
        and e["item"].get("type") == "function_call_output"
        and e["item"].get("call_id") == call_id
    ]


def _count(provider: FaultyProvider, kind: str) -> int:
    return sum(1 for e in provider.received if e["type"] == kind)


# 1. Rejoin storms


async def test_a_sideband_closing_at_once_every_time_ends_sideband_lost_and_is_hung_up(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> None:
    provider.close_at_once = 1000
    _service, call_id, session = await _start(
        start_service, serve, provider, sideband_max_attempts=4
    )
    await asyncio.wait_for(session.wait_ended(), 15)
    assert session.call.end_reason == "sideband_lost"
    assert provider.sideband_attempts == 4, "bounded by CALLBRIDGE_SIDEBAND_MAX_ATTEMPTS"
    assert provider.hangups == [call_id]


async def test_after_a_rejoin_storm_exactly_one_session_update_goes_out_on_the_new_link(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> None:
    _service, call_id, session = await _ready(
        start_service, serve, provider, sideband_max_attempts=6
    )
    provider.close_at_once = 3
    await provider.drop(call_id)
    await until(lambda: len(provider.connections) == 2 and session.call.sideband_reconnects > 0)
    await asyncio.sleep(0.2)
    updates = [e for e in provider.connections[-1] if e["type"] == "session.update"]
    assert len(updates) == 1
    assert session.call.state == "active"
    assert provider.hangups == []


# 2. Response arbitration


async def test_an_answer_refused_for_an_active_response_is_spoken_once_that_response_is_done(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> None:
    service, call_id, _session = await _ready(start_service, serve, provider)
    provider.refuse_response_creates = 1
    await provider.push(call_id, _tool_call("call_1"))
    await until(lambda: provider.refuse_response_creates == 0 and _outputs(provider, "call_1"))
    (handoff,) = (await _record(service, call_id))["handoffs"]
    assert handoff["delivered_to_model"] is False
    response = {"id": "resp_vad", "status": "completed", "output": []}
    await provider.push(call_id, json.dumps({"type": "response.done", "response": response}))
    await until(lambda: _count(provider, "response.create") == 2)
    (handoff,) = (await _record(service, call_id))["handoffs"]
    assert handoff["delivered_to_model"] is True
    assert len(_outputs(provider, "call_1")) == 1


# 3. Tools we did not offer


async def test_a_call_to_a_tool_we_did_not_offer_is_answered_with_an_error_and_reported(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> None:
    service, call_id, _session = await _ready(start_service, serve, provider)
    events = SseRecorder(f"{service.url}/v1/calls/{call_id}/events")
    await events.start()
    await provider.push(call_id, _tool_call("call_w", name="get_weather"))
    error = await events.wait_for(lambda e: e.name == "call.error")
    await events.stop()
    assert error.data["code"] == "unknown_tool"
    await until(lambda: _outputs(provider, "call_w") and _count(provider, "response.create"))
    (output,) = _outputs(provider, "call_w")
    assert "no tool named 'get_weather'" in output["output"]
    assert (await _record(service, call_id))["handoffs"] == []


# 4. Truncated or malformed tool calls


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"status": "incomplete", "arguments": '{"prompt":"what is'}, "tool_call_incomplete"),
        ({"arguments": '{"prompt":"what is'}, "tool_call_malformed"),
        ({"arguments": '{"query": 4}'}, "tool_call_malformed"),
    ],
)
async def test_a_truncated_or_malformed_tool_call_is_not_handed_off_and_the_model_retries(
    start_service: StartService,
    serve: Serve,
    provider: FaultyProvider,
    fields: dict[str, Any],
    code: str,
) -> None:
    service, call_id, _session = await _ready(start_service, serve, provider)
    await provider.push(call_id, _tool_call("call_t", **fields))
    await until(lambda: _outputs(provider, "call_t"))
    (output,) = _outputs(provider, "call_t")
    assert "again" in output["output"]
    record = await _record(service, call_id)
    assert record["handoffs"] == []
    assert [e["code"] for e in record["errors"]] == [code]


# 5. Failed responses


async def test_a_failed_response_becomes_a_call_error_and_an_entry_in_the_record(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> None:
    service, call_id, _session = await _ready(start_service, serve, provider)
    events = SseRecorder(f"{service.url}/v1/calls/{call_id}/events")
    await events.start()
    failure = {"type": "server_error", "code": "insufficient_quota", "message": "Quota exceeded."}
    response = {
        "id": "resp_f",
        "status": "failed",
        "status_details": {"type": "failed", "error": failure},
        "output": [],
    }
    await provider.push(call_id, json.dumps({"type": "response.done", "response": response}))
    error = await events.wait_for(lambda e: e.name == "call.error")
    await events.stop()
    assert error.data["code"] == "insufficient_quota"
    assert "Quota exceeded." in error.data["message"]
    (entry,) = (await _record(service, call_id))["errors"]
    assert entry["code"] == "insufficient_quota"


# 6. Refused session updates


async def test_a_refused_voice_change_is_reported_and_the_record_shows_the_settings_in_force(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> None:
    service, call_id, _session = await _ready(start_service, serve, provider)
    provider.refuse_voice_updates = True
    async with httpx.AsyncClient(base_url=service.url) as client:
        await client.post(f"/v1/calls/{call_id}/session", json={"voice": "ash"})
        await until(lambda: _count(provider, "session.update") == 2)
        await until(lambda: bool(service.manager.get(call_id).errors))  # type: ignore[union-attr]
        record = await _record(service, call_id)
        assert record["session"]["voice"] == "marin"
        assert [e["code"] for e in record["errors"]] == ["cannot_update_voice"]
        await client.post(f"/v1/calls/{call_id}/session", json={"instructions": "Be terse."})
    await until(lambda: _count(provider, "session.update") == 3)
    later = [e for e in provider.received if e["type"] == "session.update"][-1]
    assert later["session"] == {"type": "realtime", "instructions": "Be terse."}
    await until(lambda: _count(provider, "session.update") == 3)
    record = await _record(service, call_id)
    assert (record["session"]["voice"], record["session"]["instructions"]) == ("marin", "Be terse.")


async def test_instructions_taken_away_are_sent_as_none_and_confirmed(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> None:
    service, call_id, _session = await _ready(start_service, serve, provider)
    async with httpx.AsyncClient(base_url=service.url) as client:
        await client.post(f"/v1/calls/{call_id}/session", json={"instructions": "Be terse."})
        await until(lambda: _count(provider, "session.update") == 2)
        await client.post(f"/v1/calls/{call_id}/session", json={"instructions": ""})
        await until(lambda: _count(provider, "session.update") == 3)

        async def confirmed() -> bool:
            return bool((await _record(service, call_id))["session"]["instructions"] == "")

        await until(confirmed)
    later = [e for e in provider.received if e["type"] == "session.update"][-1]
    assert later["session"] == {"type": "realtime", "instructions": ""}


async def test_a_session_update_is_answered_202_with_the_confirmed_and_requested_settings(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> None:
    service, call_id, _session = await _ready(start_service, serve, provider)
    provider.refuse_voice_updates = True  # so that the change stays unconfirmed
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(f"/v1/calls/{call_id}/session", json={"voice": "ash"})
    assert response.status_code == 202, response.text
    answer = response.json()
    assert (answer["session"]["voice"], answer["session_requested"]["voice"]) == ("marin", "ash")


# 7. Sideband refused right after the call was created


async def test_a_sideband_refused_after_creation_fails_the_call_naming_the_code_and_hangs_up(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> None:
    provider.refuse_next_join = (404, "call_id_not_found")
    service, call_id, session = await _start(start_service, serve, provider)
    await asyncio.wait_for(session.wait_ended(), 10)
    record = await _record(service, call_id)
    assert record["state"] == "failed"
    assert record["end_reason"] == "sideband_refused"
    assert record["end_detail"]["code"] == "call_id_not_found"
    assert provider.hangups == [call_id]


# Issue 10, item 3: provider text is redacted before it is stored or served


async def test_the_provider_key_quoted_in_a_sideband_error_reaches_neither_record_nor_stream(
    start_service: StartService,
    serve: Serve,
    provider: FaultyProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service, call_id, _session = await _ready(start_service, serve, provider)
    events = SseRecorder(f"{service.url}/v1/calls/{call_id}/events")
    await events.start()
    quoted = {"code": "invalid_api_key", "message": f"Incorrect API key provided: {KEY}."}
    await provider.push(call_id, json.dumps({"type": "error", "error": quoted}))
    error = await events.wait_for(lambda e: e.name == "call.error")
    await events.stop()
    assert KEY not in json.dumps(error.data)
    record = await _record(service, call_id)
    assert KEY not in json.dumps(record)
    assert "[REDACTED]" in record["errors"][0]["message"]
    assert KEY not in caplog.text


# Issue 10, item 4: provider-chosen event types never become metric labels


async def test_unknown_event_types_are_counted_under_one_unknown_label(
    start_service: StartService, serve: Serve, provider: FaultyProvider
) -> None:
    service, call_id, session = await _ready(start_service, serve, provider)
    frames = [json.dumps({"type": f"invented.kind_{n}"}) for n in range(200)]
    await provider.push(call_id, *frames, json.dumps({"type": "error", "error": {"message": "x"}}))
    await until(lambda: bool(session.call.errors))
    async with httpx.AsyncClient(base_url=service.url) as client:
        metrics = (await client.get("/metrics")).text
    assert "invented.kind" not in metrics
    assert 'callbridge_provider_events_total{type="unknown"}' in metrics
