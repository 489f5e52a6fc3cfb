"""A spoken call end to end: a WAV played into WebRTC, heard and answered by the local provider.

The caller (the `callbridge dial` client) plays a synthesized request into a call through the
service. The local provider transcribes it offline, the model calls `background_agent`, the
built-in worker does the arithmetic, and the answer is spoken back. Everything is asserted on
the call record, which outlives the call.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from media.peer import CallClient
from scripts.make_test_utterances import TEST_UTTERANCES
from tests.e2e.conftest import StartService

ANSWER_TIMEOUT_S = 15.0


def _answered(record: dict[str, Any]) -> bool:
    handoffs = record["handoffs"]
    spoken = [t for t in record["transcript"] if t["role"] == "assistant" and t["final"]]
    return bool(handoffs) and handoffs[0]["state"] == "completed" and bool(spoken)


async def test_a_spoken_request_is_transcribed_handed_off_and_answered(
    start_service: StartService, utterance_wavs: dict[str, Path]
) -> None:
    service = await start_service()
    async with (
        httpx.AsyncClient(base_url=service.url) as http,
        CallClient(f"{service.url}/v1/calls", play=utterance_wavs["request"]) as caller,
    ):
        assert caller.location is not None
        record_path = httpx.URL(caller.location).path
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            while not _answered((await http.get(record_path)).json()):
                await asyncio.sleep(0.1)
        assert await caller.hangup() == 200
        record = (await http.get(record_path)).json()

    assert record["state"] == "ended"
    said = [t["text"] for t in record["transcript"] if t["role"] == "user"]
    assert said == [TEST_UTTERANCES["request"]]
    assert record["handoffs"][0]["request"] == TEST_UTTERANCES["request"]
    assert record["handoffs"][0]["state"] == "completed"
    answer = [t["text"] for t in record["transcript"] if t["role"] == "assistant"][-1]
    assert "= 5" in answer
