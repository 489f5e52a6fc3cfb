"""The local provider's outbound audio: a beep on answer, a tone while replying, else silence."""

from __future__ import annotations

import math
from collections.abc import Iterator

import av

from media.audio import FRAME_SECONDS, SAMPLES_PER_FRAME, silence_frame, tone_frame

GREETING_SECONDS = 0.3
SECONDS_PER_CHARACTER = 0.05
MAX_REPLY_SECONDS = 3.0
_TONE_HZ = 440.0


class ReplyVoice:
    """Frame source for one call's outbound track.

    Speaking is counted in frames rather than wall time: the track pulls one frame per 20 ms,
    so a frame budget is a duration without a clock.
    """

    def __init__(self) -> None:
        self._frames_left = math.ceil(GREETING_SECONDS / FRAME_SECONDS)

    @property
    def speaking(self) -> bool:
        """Whether the next frame is tone."""
        return self._frames_left > 0

    def speak(self, transcript: str) -> None:
        """Sound a tone about as long as saying `transcript` would take (capped)."""
        seconds = min(MAX_REPLY_SECONDS, SECONDS_PER_CHARACTER * len(transcript))
        self._frames_left = max(self._frames_left, math.ceil(seconds / FRAME_SECONDS))

    def frames(self) -> Iterator[av.AudioFrame]:
        """Endless 20 ms frames: tone while speaking, silence otherwise."""
        pts = 0
        while True:
            if self._frames_left > 0:
                self._frames_left -= 1
                yield tone_frame(_TONE_HZ, pts)
            else:
                yield silence_frame(pts)
            pts += SAMPLES_PER_FRAME
