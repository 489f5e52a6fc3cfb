"""The local provider's speech: callers' audio heard as user turns, replies spoken.

In process and without WebRTC: audio frames go straight into a `LocalCall` and its outbound
frames are read straight from its voice. Recognition and synthesis are the real ones.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import av
import pytest

from media.audio import FRAME_SECONDS, SAMPLES_PER_FRAME, read_wav_frames, tone_frame
from media.local_provider.calls import CallRegistry, LocalCall
from media.local_provider.config import LocalProviderConfig
from media.local_provider.server_events import JsonObject
from media.local_provider.voice import GREETING_SECONDS
from media.speech.recognizer import PhraseRecognizer
from media.speech.utterances import UtteranceSegmenter
from media.speech.vad import UtteranceEnded
from scripts.make_test_utterances import LEAD_SECONDS, TEST_UTTERANCES

GREETING_FRAMES = round(GREETING_SECONDS / FRAME_SECONDS)
MISSING_ESPEAK = "/nonexistent/espeak-ng"


class EventLog:
    """An event sink that keeps every server event of a call."""

    def __init__(self) -> None:
        self.events: list[JsonObject] = []
        self._arrived = asyncio.Event()

    async def send_event(self, event: JsonObject) -> bool:
        self.events.append(event)
        self._arrived.set()
        return True

    async def close(self) -> None:
        return None

    async def wait_for(self, event_type: str, timeout_s: float = 10.0) -> JsonObject:
        async with asyncio.timeout(timeout_s):
            while True:
                for event in self.events:
                    if event["type"] == event_type:
                        return event
                self._arrived.clear()
                await self._arrived.wait()


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


@pytest.fixture
async def calls() -> AsyncIterator[Callable[..., CallRegistry]]:
    """Makes call registries (with config overrides); ends their calls afterwards."""
    made: list[CallRegistry] = []

    def make(**config: Any) -> CallRegistry:
        registry = CallRegistry(LocalProviderConfig(**config))
        made.append(registry)
        return registry

    yield make
    for registry in made:
        await registry.end_all()
        registry.close()


def past_the_greeting(call: LocalCall) -> Iterator[av.AudioFrame]:
    frames = call.voice.frames()
    for _ in range(GREETING_FRAMES):
        next(frames)
    return frames


async def test_a_callers_utterance_becomes_a_user_turn_placed_where_it_was_heard(
    calls: Callable[..., CallRegistry], utterance_wavs: dict[str, Path]
) -> None:
    call = calls().create()
    log = EventLog()
    await call.subscribe(log)

    for frame in read_wav_frames(utterance_wavs["request"]):
        call.on_user_audio(frame)

    completed = await log.wait_for("conversation.item.input_audio_transcription.completed")
    started = await log.wait_for("input_audio_buffer.speech_started")
    assert completed["transcript"] == TEST_UTTERANCES["request"]
    assert LEAD_SECONDS * 1000 <= started["audio_start_ms"] < LEAD_SECONDS * 1000 + 200


async def test_a_reply_is_spoken_in_words(calls: Callable[..., CallRegistry]) -> None:
    call = calls().create()
    frames = past_the_greeting(call)

    await call.user_spoke("hello can you hear me")
    await eventually(lambda: call.voice.speaking)

    segmenter = UtteranceSegmenter()
    heard: list[UtteranceEnded] = []
    while call.voice.speaking or segmenter.in_speech:
        heard += [e for e in segmenter.hear(next(frames)) if isinstance(e, UtteranceEnded)]
    reply = "you said hello can you hear me"
    recognizer = PhraseRecognizer([reply, "how can i help", "here is what the agent found"])
    assert [recognizer.transcribe(u.pcm).text for u in heard] == [reply]


async def test_without_espeak_ng_the_provider_warns_once(
    calls: Callable[..., CallRegistry], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="callbridge.provider.speech"):
        registry = calls(tts_command=MISSING_ESPEAK)
        registry.create()
        registry.create()

    assert [r.getMessage() for r in caplog.records if MISSING_ESPEAK in r.getMessage()] == [
        f"{MISSING_ESPEAK} not found: the local provider answers with a tone and text, not speech"
    ]


async def test_without_espeak_ng_a_reply_is_a_tone(calls: Callable[..., CallRegistry]) -> None:
    call = calls(tts_command=MISSING_ESPEAK).create()
    frames = past_the_greeting(call)

    await call.user_spoke("hello can you hear me")
    await eventually(lambda: call.voice.speaking)

    pts = GREETING_FRAMES * SAMPLES_PER_FRAME
    assert next(frames).to_ndarray().tolist() == tone_frame(440.0, pts).to_ndarray().tolist()


async def test_without_pocketsphinx_the_provider_warns_once_and_does_not_listen(
    calls: Callable[..., CallRegistry],
    utterance_wavs: dict[str, Path],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)  # as if it were not installed
    with caplog.at_level(logging.WARNING, logger="callbridge.provider.speech"):
        registry = calls()
        call = registry.create()
        registry.create()
    frames = read_wav_frames(utterance_wavs["request"])

    for frame in frames[: len(frames) // 2]:  # into the middle of the request
        call.on_user_audio(frame)

    warnings = [r.getMessage() for r in caplog.records if "pocketsphinx" in r.getMessage()]
    assert len(warnings) == 1
    assert call.debug_record()["user_speaking"] is False
    assert call.inbound_audio_frames == len(frames) // 2


async def test_with_pocketsphinx_the_provider_listens_to_callers_audio(
    calls: Callable[..., CallRegistry], utterance_wavs: dict[str, Path]
) -> None:
    call = calls().create()
    frames = read_wav_frames(utterance_wavs["request"])

    for frame in frames[: len(frames) // 2]:
        call.on_user_audio(frame)

    assert call.debug_record()["user_speaking"] is True
