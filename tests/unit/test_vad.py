"""The energy voice-activity detector: PCM16 chunks in, speech and utterance events out."""

from __future__ import annotations

import math

import numpy as np

from media.speech.vad import EnergyVad, SpeechStarted, UtteranceEnded, VadEvent, VadSettings

RATE = 16_000
SETTINGS = VadSettings()


def silence(ms: int) -> bytes:
    return bytes(2 * RATE * ms // 1000)


def noise(ms: int, dbfs: float = -20.0, seed: int = 0) -> bytes:
    """White noise: loud and broadband, which is all the detector asks of speech."""
    rms = 32768 * 10 ** (dbfs / 20)
    samples = np.random.default_rng(seed).normal(0.0, rms, RATE * ms // 1000)
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


def tone(ms: int, hz: float = 440.0, amplitude: float = 0.5) -> bytes:
    t = np.arange(RATE * ms // 1000) / RATE
    return (amplitude * 32767 * np.sin(2 * math.pi * hz * t)).astype("<i2").tobytes()


def utterances(events: list[VadEvent]) -> list[UtteranceEnded]:
    return [event for event in events if isinstance(event, UtteranceEnded)]


def test_silence_is_not_speech() -> None:
    assert EnergyVad().feed(silence(3000)) == []


def test_speech_then_silence_is_one_utterance_where_it_was_spoken() -> None:
    events = EnergyVad().feed(silence(1000) + noise(800) + silence(1000))

    assert [type(event) for event in events] == [SpeechStarted, UtteranceEnded]
    assert events[0] == SpeechStarted(start_ms=1000)
    assert [(u.start_ms, u.end_ms) for u in utterances(events)] == [(1000, 1800)]


def test_speech_starts_once_min_speech_ms_has_been_heard() -> None:
    vad = EnergyVad()

    assert vad.feed(silence(500) + noise(SETTINGS.min_speech_ms - SETTINGS.frame_ms)) == []
    assert vad.feed(noise(SETTINGS.frame_ms)) == [SpeechStarted(start_ms=500)]


def test_the_utterance_ends_after_the_hangover() -> None:
    vad = EnergyVad()
    vad.feed(noise(600))

    assert vad.feed(silence(SETTINGS.hangover_ms - SETTINGS.frame_ms)) == []
    assert len(utterances(vad.feed(silence(SETTINGS.frame_ms)))) == 1


def test_the_utterance_audio_runs_from_the_preroll_to_the_end_of_the_hangover() -> None:
    audio = silence(1000) + noise(600) + silence(1000)

    (utterance,) = utterances(EnergyVad().feed(audio))

    start = 2 * RATE * (1000 - SETTINGS.preroll_ms) // 1000
    end = 2 * RATE * (1600 + SETTINGS.hangover_ms) // 1000
    assert utterance.pcm == audio[start:end]


def test_a_burst_shorter_than_min_speech_is_ignored() -> None:
    events = EnergyVad().feed(silence(500) + noise(SETTINGS.min_speech_ms // 2) + silence(1000))

    assert events == []


def test_a_pause_shorter_than_the_hangover_does_not_split_an_utterance() -> None:
    audio = noise(400) + silence(SETTINGS.hangover_ms - 100) + noise(400) + silence(1000)

    assert len(utterances(EnergyVad().feed(audio))) == 1


def test_a_pause_longer_than_the_hangover_splits_utterances() -> None:
    audio = noise(400) + silence(SETTINGS.hangover_ms + 100) + noise(400) + silence(1000)

    assert len(utterances(EnergyVad().feed(audio))) == 2


def test_an_utterance_is_cut_at_its_maximum_length() -> None:
    vad = EnergyVad(VadSettings(max_utterance_ms=1000))

    events = vad.feed(noise(1000))

    assert [(u.start_ms, u.end_ms) for u in utterances(events)] == [(0, 1000)]


def test_a_loud_pure_tone_is_not_speech() -> None:
    assert EnergyVad().feed(tone(2000) + silence(1000)) == []


def test_noise_below_the_threshold_is_not_speech() -> None:
    quiet = noise(2000, dbfs=SETTINGS.threshold_dbfs - 10)

    assert EnergyVad().feed(quiet + silence(1000)) == []


def test_chunk_boundaries_do_not_change_the_events() -> None:
    audio = silence(300) + noise(700) + silence(700) + noise(500, seed=1) + silence(900)
    chunked = EnergyVad()
    events: list[VadEvent] = []
    for offset in range(0, len(audio), 2 * 317):
        events += chunked.feed(audio[offset : offset + 2 * 317])

    assert events == EnergyVad().feed(audio)


def test_in_speech_holds_from_the_start_to_the_end_of_an_utterance() -> None:
    vad = EnergyVad()
    vad.feed(noise(400))
    during = vad.in_speech
    vad.feed(silence(1000))

    assert (during, vad.in_speech) == (True, False)
