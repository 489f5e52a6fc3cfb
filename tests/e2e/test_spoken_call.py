"""A spoken call end to end: a WAV played into WebRTC, heard and answered by the local provider.

The caller (the client behind `callbridge dial --play`) plays a synthesized request into a call
through the service. The local provider transcribes it offline, the model calls
`background_agent`, the built-in worker does the arithmetic, and the answer is spoken back.
The outcome is read from the call record, which outlives the call.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from media.peer import CallClient
from scripts.make_test_utterances import TEST_UTTERANCES
from tests.e2e.conftest import StartService
from tests.e2e.sse import SseEvent, SseRecorder

ANSWER_TIMEOUT_S = 15.0


def _assistant_said(event: SseEvent) -> bool:
    return event.name == "transcript.done" and event.data["role"] == "assistant"


async def test_a_spoken_request_is_transcribed_handed_off_and_answered(
    start_service: StartService, utterance_wavs: dict[str, Path]
) -> None:
    service = await start_service()
    async with CallClient(f"{service.url}/v1/calls", play=utterance_wavs["request"]) as caller:
        assert caller.location is not None
        events = SseRecorder(f"{caller.location}/events")
        await events.start()
        try:
            await events.wait_for(_assistant_said, ANSWER_TIMEOUT_S)
        finally:
            await events.stop()
        assert await caller.hangup() == 200
    async with httpx.AsyncClient() as http:
        record = (await http.get(caller.location)).json()

    assert record["state"] == "ended"
    said = [turn["text"] for turn in record["transcript"] if turn["role"] == "user"]
    assert said == [TEST_UTTERANCES["request"]]
    assert record["handoffs"][0]["request"] == TEST_UTTERANCES["request"]
    assert record["handoffs"][0]["state"] == "completed"
    answers = [turn["text"] for turn in record["transcript"] if turn["role"] == "assistant"]
    assert len(answers) == 1
    assert "2 + 3 = 5" in answers[0]
