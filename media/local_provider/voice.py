"""The local provider's outbound audio: a beep on answer, then spoken replies (or a tone for
each reply when there is no speech synthesizer), else silence."""

from __future__ import annotations

import math
from collections.abc import Iterator

import av
import numpy as np
import numpy.typing as npt

from media.audio import (
    FRAME_SECONDS,
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    samples_frame,
    silence_frame,
    tone_frame,
)

GREETING_SECONDS = 0.3
SECONDS_PER_CHARACTER = 0.05
MAX_REPLY_SECONDS = 3.0
_TONE_HZ = 440.0


class ReplyVoice:
    """Frame source for one call's outbound track.

    Speech queued with `say` plays first, in the order queued; a tone plays while a tone budget
    is left. The budget is counted in frames rather than wall time: the track pulls one frame
    per 20 ms, so a frame count is a duration without a clock. For the same reason the
    frames pulled since the last `say` or `tone_for` are how much of that reply was played.
    """

    def __init__(self) -> None:
        self._tone_frames_left = math.ceil(GREETING_SECONDS / FRAME_SECONDS)
        self._speech: npt.NDArray[np.int16] = np.zeros(0, dtype=np.int16)
        self._reply_frames_played = 0

    @property
    def speaking(self) -> bool:
        """Whether the next frame is speech or tone."""
        return self._speech.size > 0 or self._tone_frames_left > 0

    @property
    def played_ms(self) -> int:
        """Milliseconds of the latest reply (`say` or `tone_for`) played so far."""
        return round(self._reply_frames_played * FRAME_SECONDS * 1000)

    def say(self, pcm: bytes) -> float:
        """Queue speech: PCM16 little-endian mono samples at 48 kHz. Returns its seconds."""
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.int16)
        self._speech = np.concatenate([self._speech, samples])
        self._reply_frames_played = 0
        return samples.size / SAMPLE_RATE

    def tone_for(self, transcript: str) -> float:
        """Sound a tone about as long as saying `transcript` would take (capped); its seconds."""
        seconds = min(MAX_REPLY_SECONDS, SECONDS_PER_CHARACTER * len(transcript))
        self._tone_frames_left = max(self._tone_frames_left, math.ceil(seconds / FRAME_SECONDS))
        self._reply_frames_played = 0
        return seconds

    def clear(self) -> None:
        """Stop speaking now: drop queued speech and tone."""
        self._speech = np.zeros(0, dtype=np.int16)
        self._tone_frames_left = 0

    def frames(self) -> Iterator[av.AudioFrame]:
        """Endless 20 ms frames: speech, then tone, while there is any; silence otherwise."""
        pts = 0
        while True:
            if self._speech.size > 0:
                chunk = self._speech[:SAMPLES_PER_FRAME]
                self._speech = self._speech[SAMPLES_PER_FRAME:]
                padding = np.zeros(SAMPLES_PER_FRAME - chunk.size, dtype=np.int16)
                self._reply_frames_played += 1
                yield samples_frame(np.concatenate([chunk, padding]), pts)
            elif self._tone_frames_left > 0:
                self._tone_frames_left -= 1
                self._reply_frames_played += 1
                yield tone_frame(_TONE_HZ, pts)
            else:
                yield silence_frame(pts)
            pts += SAMPLES_PER_FRAME
