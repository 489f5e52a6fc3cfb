"""The local provider's outbound audio: greeting beep, spoken replies, reply tones, silence."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import av
import numpy as np

from media.audio import FRAME_SECONDS, SAMPLES_PER_FRAME, tone_frame
from media.local_provider.voice import GREETING_SECONDS, MAX_REPLY_SECONDS, ReplyVoice

GREETING_FRAMES = round(GREETING_SECONDS / FRAME_SECONDS)


def samples(frame: av.AudioFrame) -> list[int]:
    return [int(s) for s in frame.to_ndarray().reshape(-1)]


def pcm(*values: int) -> bytes:
    return np.array(values, dtype="<i2").tobytes()


def past_the_greeting(voice: ReplyVoice) -> Iterator[av.AudioFrame]:
    """The voice's frames, with the greeting beep already played."""
    frames = voice.frames()
    for _ in range(GREETING_FRAMES):
        next(frames)
    return frames


def test_a_call_opens_with_a_beep_then_silence() -> None:
    frames = list(itertools.islice(ReplyVoice().frames(), GREETING_FRAMES + 1))

    assert [samples(f) for f in frames[:GREETING_FRAMES]] == [
        samples(tone_frame(440.0, i * SAMPLES_PER_FRAME)) for i in range(GREETING_FRAMES)
    ]
    assert samples(frames[-1]) == [0] * SAMPLES_PER_FRAME


def test_speech_plays_in_the_order_it_was_queued_then_silence() -> None:
    voice = ReplyVoice()
    first = np.full(SAMPLES_PER_FRAME, 100, dtype="<i2").tobytes()
    second = np.full(SAMPLES_PER_FRAME, 200, dtype="<i2").tobytes()
    frames = past_the_greeting(voice)
    voice.say(first)
    voice.say(second)

    played = [samples(f) for f in itertools.islice(frames, 3)]

    assert played == [[100] * SAMPLES_PER_FRAME, [200] * SAMPLES_PER_FRAME, [0] * SAMPLES_PER_FRAME]


def test_the_last_frame_of_speech_is_padded_with_silence() -> None:
    voice = ReplyVoice()
    frames = past_the_greeting(voice)
    voice.say(pcm(1, 2, 3))

    assert samples(next(frames)) == [1, 2, 3] + [0] * (SAMPLES_PER_FRAME - 3)


def test_speech_queued_during_the_greeting_plays_first() -> None:
    voice = ReplyVoice()
    voice.say(pcm(7))

    assert samples(next(voice.frames()))[0] == 7


def test_a_reply_tone_lasts_about_as_long_as_the_words_capped() -> None:
    voice = ReplyVoice()
    frames = past_the_greeting(voice)
    voice.tone_for("x" * 10_000)

    toned = list(itertools.takewhile(lambda f: any(samples(f)), itertools.islice(frames, 500)))

    assert len(toned) == round(MAX_REPLY_SECONDS / FRAME_SECONDS)


def test_the_voice_is_speaking_while_speech_is_queued() -> None:
    voice = ReplyVoice()
    frames = past_the_greeting(voice)
    voice.say(pcm(*([5] * SAMPLES_PER_FRAME)))
    queued = voice.speaking
    next(frames)

    assert (queued, voice.speaking) == (True, False)


def test_played_ms_counts_the_frames_of_the_latest_reply_pulled() -> None:
    voice = ReplyVoice()
    frames = past_the_greeting(voice)
    seconds = voice.say(pcm(*([5] * (SAMPLES_PER_FRAME * 10))))
    for _ in range(3):
        next(frames)

    assert (seconds, voice.played_ms) == (10 * FRAME_SECONDS, 60)


def test_clearing_the_voice_silences_it_at_once() -> None:
    voice = ReplyVoice()
    frames = past_the_greeting(voice)
    voice.say(pcm(*([5] * (SAMPLES_PER_FRAME * 10))))
    next(frames)

    voice.clear()

    assert (voice.speaking, samples(next(frames))) == (False, [0] * SAMPLES_PER_FRAME)
