"""A hostile request to the built-in handler is answered through the whole call path."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from service.calls.handoff_text import CUT_MARKER
from tests.e2e.conftest import Serve, StartService
from tests.e2e.faulty_provider import FaultyProvider
from tests.e2e.hostile import healthy
from tests.unit.sdp_samples import AIORTC_OFFER


def _tool_call(prompt: str) -> str:
    arguments = json.dumps({"prompt": prompt})
    return json.dumps(
        {
            "type": "conversation.item.done",
            "item": {
                "id": "item_long",
                "type": "function_call",
                "call_id": "call_long",
                "name": "background_agent",
                "arguments": arguments,
            },
        }
    )


async def test_a_sum_of_two_thousand_terms_is_answered_to_the_provider(
    start_service: StartService, serve: Serve
) -> None:
    provider = FaultyProvider()
    service = await start_service(
        provider="openai", provider_url=await serve(provider.app()), api_key="sk-handoff"
    )
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
        )
        assert response.status_code == 201, response.text
        location = response.headers["location"]
        call_id = location.rsplit("/", 1)[1]
        await asyncio.wait_for(provider.connected.wait(), 10)
        await provider.push(call_id, _tool_call("what is " + "+".join(["1"] * 2000)))

        async def answered() -> dict[str, object]:
            while True:
                record = (await client.get(location)).json()
                handoffs = record["handoffs"]
                if handoffs and handoffs[0]["state"] in ("completed", "failed"):
                    return dict(handoffs[0])
                await asyncio.sleep(0.05)

        handoff = await asyncio.wait_for(answered(), 30)
        assert await healthy(service.url)
        await client.delete(location)
    assert handoff["state"] == "completed"
    assert str(handoff["output"]).endswith("= 2000.")


async def _handoff_when(
    client: httpx.AsyncClient, location: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    while True:
        handoffs = (await client.get(location)).json()["handoffs"]
        if handoffs and done(handoffs[0]):
            return dict(handoffs[0])
        await asyncio.sleep(0.05)


def _outputs(provider: FaultyProvider) -> list[str]:
    return [
        str(e["item"]["output"])
        for e in provider.received
        if e["type"] == "conversation.item.create"
        and e["item"].get("type") == "function_call_output"
    ]


@contextlib.asynccontextmanager
async def _handed_off(
    start_service: StartService, serve: Serve, request: str, **settings: Any
) -> AsyncIterator[tuple[FaultyProvider, httpx.AsyncClient, str]]:
    """A call whose model has just asked the background agent `request`, handled as
    `settings` say; the call is deleted afterwards."""
    provider = FaultyProvider()
    service = await start_service(
        provider="openai",
        provider_url=await serve(provider.app()),
        api_key="sk-handoff",
        **settings,
    )
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
        )
        location = response.headers["location"]
        await asyncio.wait_for(provider.connected.wait(), 10)
        await provider.push(location.rsplit("/", 1)[1], _tool_call(request))
        yield provider, client, location
        await client.delete(location)


async def test_a_handoff_whose_answer_comes_after_the_deadline_fails_and_keeps_it_as_late(
    start_service: StartService, serve: Serve
) -> None:
    settings = {"handler": "tests.e2e.handlers:slow", "handoff_deadline_s": 0.5}
    async with _handed_off(start_service, serve, "what is 2+2", **settings) as handed_off:
        provider, client, location = handed_off
        failed = await asyncio.wait_for(
            _handoff_when(client, location, lambda h: h["state"] == "failed"), 10
        )
        late = await asyncio.wait_for(
            _handoff_when(client, location, lambda h: h["late_output"] is not None), 10
        )
    reason = "it did not answer within 0.5 s"
    assert (failed["error"], failed["expired"]) == (reason, True)
    assert str(late["late_output"]).startswith("slow answer to 'what is 2+2'")
    assert _outputs(provider) == [f"The background agent failed: {reason}"]


async def test_a_handler_answer_over_the_cap_is_cut_with_a_marker_and_counted(
    start_service: StartService, serve: Serve
) -> None:
    settings = {
        "handler": f"cmd:{sys.executable} -c \"print('x' * 2_000_000)\"",
        "handoff_max_text_bytes": 4096,
    }
    async with _handed_off(start_service, serve, "say a lot", **settings) as handed_off:
        provider, client, location = handed_off
        handoff = await asyncio.wait_for(
            _handoff_when(client, location, lambda h: h["state"] == "completed"), 10
        )
        record = (await client.get(location)).json()
    marker = CUT_MARKER.format(limit=4096)
    (output,) = _outputs(provider)
    assert output == handoff["output"]
    assert output.endswith(marker)
    assert len(output.encode()) <= 4096
    assert record["limits_reached"] == {"handoff_text_bytes": 4096}
