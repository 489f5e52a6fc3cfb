"""An energy voice-activity detector: PCM16 chunks in, speech and utterance events out.

Sans-I/O: no clock and no audio device. Time is counted in samples fed, so `start_ms` and
`end_ms` are positions in the stream since the first chunk.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from media.audio import rms_dbfs


@dataclass(frozen=True)
class VadSettings:
    """How the detector decides.

    A 20 ms frame is voiced when its RMS level reaches `threshold_dbfs` and it is not a pure
    tone (no more than `max_tone_share` of its energy in one narrow band: dial tones, test
    beeps and the test caller's steady sine are loud but are not speech). Speech starts at a
    voiced frame; it counts as an utterance once `min_speech_ms` of voiced frames have been
    heard, and ends after `hangover_ms` without a voiced frame, or at `max_utterance_ms`.
    An utterance's audio starts `preroll_ms` before its first voiced frame (soft onsets fall
    under the threshold) and runs to the end of the hangover (the decoder wants silence at
    both ends).
    """

    sample_rate: int = 16_000
    frame_ms: int = 20
    threshold_dbfs: float = -45.0
    max_tone_share: float = 0.98
    min_speech_ms: int = 200
    hangover_ms: int = 500
    preroll_ms: int = 200
    max_utterance_ms: int = 15_000

    @property
    def frame_samples(self) -> int:
        """Samples in one analysis frame."""
        return self.sample_rate * self.frame_ms // 1000


@dataclass(frozen=True)
class SpeechStarted:
    """An utterance has begun (reported once it is long enough to count)."""

    start_ms: int


@dataclass(frozen=True)
class UtteranceEnded:
    """An utterance is over: its PCM16 audio, and where its speech began and ended."""

    pcm: bytes
    start_ms: int
    end_ms: int


VadEvent = SpeechStarted | UtteranceEnded

# How far either side of the loudest FFT bin counts as "one narrow band": a Hann-windowed sine
# spreads over the bins next to its own.
_TONE_BINS = 2


def is_voiced(frame: bytes, settings: VadSettings) -> bool:
    """Whether one frame of PCM16 samples is loud enough and not a pure tone."""
    if rms_dbfs(frame) < settings.threshold_dbfs:
        return False
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float64)
    power = np.abs(np.fft.rfft(samples * np.hanning(samples.size))) ** 2
    peak = int(np.argmax(power))
    band = power[max(0, peak - _TONE_BINS) : peak + _TONE_BINS + 1].sum()
    return bool(band < settings.max_tone_share * power.sum())


class EnergyVad:
    """Feed PCM16 mono chunks of any size; get `SpeechStarted` and `UtteranceEnded` events.

    Every `SpeechStarted` is followed by exactly one `UtteranceEnded`; bursts shorter than
    `min_speech_ms` produce neither.
    """

    def __init__(self, settings: VadSettings | None = None) -> None:
        self._settings = settings if settings is not None else VadSettings()
        self._frame_bytes = 2 * self._settings.frame_samples
        self._pending = b""
        self._frames_seen = 0
        self._preroll: deque[bytes] = deque(
            maxlen=self._settings.preroll_ms // self._settings.frame_ms
        )
        # The candidate utterance (preroll included) while speech may be going on, else None.
        self._utterance: list[bytes] | None = None
        self._first_voiced = 0
        self._last_voiced = 0
        self._voiced_frames = 0
        self._started = False

    @property
    def in_speech(self) -> bool:
        """Whether an utterance has started and not yet ended."""
        return self._started

    def feed(self, pcm: bytes) -> list[VadEvent]:
        """The events that the samples in `pcm` complete (a partial frame waits for more)."""
        data = self._pending + pcm
        whole = len(data) - len(data) % self._frame_bytes
        self._pending = data[whole:]
        events: list[VadEvent] = []
        for offset in range(0, whole, self._frame_bytes):
            events += self._take(data[offset : offset + self._frame_bytes])
        return events

    def _take(self, frame: bytes) -> list[VadEvent]:
        index = self._frames_seen
        self._frames_seen += 1
        voiced = is_voiced(frame, self._settings)
        if self._utterance is None:
            if not voiced:
                self._preroll.append(frame)
                return []
            self._utterance = [*self._preroll, frame]
            self._preroll.clear()
            self._first_voiced = self._last_voiced = index
            self._voiced_frames = 0
        else:
            self._utterance.append(frame)
        if voiced:
            self._last_voiced = index
            self._voiced_frames += 1
            events = self._start_if_long_enough()
            if (index + 1 - self._first_voiced) * self._settings.frame_ms >= (
                self._settings.max_utterance_ms
            ):
                events += self._end()
            return events
        if (index - self._last_voiced) * self._settings.frame_ms >= self._settings.hangover_ms:
            return self._end()
        return []

    def _start_if_long_enough(self) -> list[VadEvent]:
        if self._started or self._voiced_frames * self._settings.frame_ms < (
            self._settings.min_speech_ms
        ):
            return []
        self._started = True
        return [SpeechStarted(self._first_voiced * self._settings.frame_ms)]

    def _end(self) -> list[VadEvent]:
        assert self._utterance is not None
        frames, self._utterance = self._utterance, None
        # The tail (silence, or speech cut at the maximum length) leads into what comes next.
        self._preroll.extend(frames)
        if not self._started:
            return []
        self._started = False
        frame_ms = self._settings.frame_ms
        return [
            UtteranceEnded(
                b"".join(frames),
                start_ms=self._first_voiced * frame_ms,
                end_ms=(self._last_voiced + 1) * frame_ms,
            )
        ]
