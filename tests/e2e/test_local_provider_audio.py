"""The stand-in hears and speaks like the real API over WebRTC: VAD timing and barge-in.

A real aiortc caller plays synthesized utterances (WAV) into a call on the stand-in and reads the
server events on its data channel. Figures about timing are printed, never asserted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from media.audio import FRAME_MS, read_wav_frames
from media.local_provider.config import LocalProviderConfig
from tests.e2e.stand_in import QUIET_DBFS, Provider, audio_call, local_provider, voiced_onset_ms

TRANSCRIBED = "conversation.item.input_audio_transcription.completed"


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    async with local_provider(LocalProviderConfig()) as running:
        yield running


async def test_speech_started_comes_at_the_onset_before_stopped_before_the_transcript(
    provider: Provider, utterance_wavs: dict[str, Path]
) -> None:
    frames = read_wav_frames(utterance_wavs["greeting"])
    onset_ms = voiced_onset_ms(frames)
    async with audio_call(provider) as caller:
        clip = caller.play(frames)

        transcribed = await caller.wait_for(TRANSCRIBED)
        item_id = transcribed["item_id"]
        started = await caller.wait_for(
            "input_audio_buffer.speech_started", lambda e: e["item_id"] == item_id
        )
        stopped = await caller.wait_for(
            "input_audio_buffer.speech_stopped", lambda e: e["item_id"] == item_id
        )

    order = [caller.events.index(e) for e in (started, stopped, transcribed)]
    assert order == sorted(order)
    assert started["audio_start_ms"] < stopped["audio_end_ms"]
    expected_start_ms = clip.start_frame * FRAME_MS + onset_ms
    print(
        f"\nspeech_started: audio_start_ms {started['audio_start_ms']} vs voiced onset at "
        f"{expected_start_ms} ms of the stream ({started['audio_start_ms'] - expected_start_ms:+d}"
        f" ms); audio_end_ms {stopped['audio_end_ms']}; clip {len(frames) * FRAME_MS} ms"
    )


async def test_speech_started_arrives_while_the_caller_is_still_speaking(
    provider: Provider, utterance_wavs: dict[str, Path]
) -> None:
    frames = read_wav_frames(utterance_wavs["greeting"])
    async with audio_call(provider) as caller:
        clip = caller.play(frames)

        started = await caller.wait_for("input_audio_buffer.speech_started")
        stopped = await caller.wait_for("input_audio_buffer.speech_stopped")

    # Ordered by the caller's own frame count: the VAD event is not held back until the end.
    assert caller.events.index(started) < caller.events.index(stopped)
    onset_ms = voiced_onset_ms(frames)
    lag_ms = caller.started_lag_ms(clip, started, onset_ms)
    print(f"\nspeech_started reached the caller {lag_ms:.0f} ms after the voiced onset was sent")


async def test_a_spoken_reply_is_framed_by_output_audio_buffer_events(
    provider: Provider, utterance_wavs: dict[str, Path]
) -> None:
    async with audio_call(provider) as caller:
        caller.play(read_wav_frames(utterance_wavs["greeting"]))

        done = await caller.wait_for("response.done")
        response_id = done["response"]["id"]
        started = await caller.wait_for(
            "output_audio_buffer.started", lambda e: e["response_id"] == response_id
        )
        stopped = await caller.wait_for(
            "output_audio_buffer.stopped", lambda e: e["response_id"] == response_id
        )

    assert caller.events.index(started) < caller.events.index(stopped)
    heard = caller.heard_between(started, stopped)
    assert max(heard) > QUIET_DBFS


async def test_caller_speech_during_a_reply_cuts_it_off_and_truncates_it(
    provider: Provider, utterance_wavs: dict[str, Path]
) -> None:
    greeting = read_wav_frames(utterance_wavs["greeting"])
    onset_frame = voiced_onset_ms(greeting) // FRAME_MS
    async with audio_call(provider) as caller:
        caller.play(greeting)
        playing = await caller.wait_for("output_audio_buffer.started")
        caller.play(greeting[onset_frame - 5 :])  # barge in at once, not after the lead-in

        cleared = await caller.wait_for("output_audio_buffer.cleared")
        truncated = await caller.wait_for("conversation.item.truncated")
        second = await caller.wait_for(
            "input_audio_buffer.speech_stopped",
            lambda e: caller.events.index(e) > caller.events.index(cleared),
        )

    assert cleared["response_id"] == playing["response_id"]
    reply = next(
        e["response"]
        for e in caller.events
        if e["type"] == "response.done" and e["response"]["id"] == playing["response_id"]
    )
    assert truncated["item_id"] == reply["output"][0]["id"]
    assert truncated["audio_end_ms"] > 0
    assert not any(
        e["type"] == "output_audio_buffer.stopped" and e["response_id"] == playing["response_id"]
        for e in caller.events
    )
    # The reply's audio stops: from a few frames after the cut (what was in flight) until the
    # caller finishes speaking, the caller hears silence.
    assert max(caller.heard_between(cleared, second)[10:]) < QUIET_DBFS
    print(f"\nbarge-in: the reply was cut after {truncated['audio_end_ms']} ms of it had played")
