"""What `/metrics` reports after a real call with a handoff."""

from __future__ import annotations

import asyncio

import httpx

from media.peer import CallClient
from tests.e2e.conftest import StartService


def _value(metrics: str, prefix: str) -> float:
    lines = [line for line in metrics.splitlines() if line.startswith(prefix)]
    assert lines, f"no metric {prefix!r}"
    return float(lines[0].rsplit(" ", 1)[1])


async def test_a_call_with_a_handoff_shows_in_every_family(start_service: StartService) -> None:
    service = await start_service()
    async with httpx.AsyncClient(base_url=service.url) as client:
        async with CallClient(f"{service.url}/v1/calls") as call:
            assert call.location is not None
            await client.post(
                f"{call.location}/messages",
                json={"text": "ask the background agent what is 4 plus 4"},
            )
            for _ in range(200):
                record = (await client.get(call.location)).json()
                if record["handoffs"] and record["handoffs"][0]["state"] == "completed":
                    break
                await asyncio.sleep(0.05)
            during = (await client.get("/metrics")).text
            await call.hangup()
        after = (await client.get("/metrics")).text
    assert _value(during, "callbridge_active_calls") >= 1
    assert _value(after, 'callbridge_call_starts_total{outcome="started"}') >= 1
    for stage in ("provider_answered", "sideband_joined", "session_updated"):
        assert _value(during, f'callbridge_call_setup_seconds_count{{stage="{stage}"}}') >= 1
    assert _value(during, 'callbridge_provider_events_total{type="session.updated"}') >= 1
    assert _value(during, 'callbridge_handoffs_total{outcome="completed"}') >= 1
    assert _value(during, "callbridge_handoff_seconds_count") >= 1
    assert _value(during, "callbridge_queue_depth") == 0
    assert _value(after, 'callbridge_calls_ended_total{reason="hangup"}') >= 1
