"""A hostile request to the built-in handler is answered through the whole call path."""

from __future__ import annotations

import asyncio
import json

import httpx

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
