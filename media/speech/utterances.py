"""A caller's audio frames cut into utterances: resampled to the recognizer's rate, then VAD."""

from __future__ import annotations

import av

from media.audio import Pcm16Converter
from media.speech.vad import EnergyVad, VadEvent, VadSettings


class UtteranceSegmenter:
    """Takes `av.AudioFrame`s of any rate and layout; reports speech starts and utterances.

    One per audio stream: the resampler and the detector both carry state across frames.
    """

    def __init__(self, settings: VadSettings | None = None) -> None:
        settings = settings if settings is not None else VadSettings()
        self._converter = Pcm16Converter(settings.sample_rate)
        self._vad = EnergyVad(settings)

    @property
    def in_speech(self) -> bool:
        """Whether an utterance is in progress."""
        return self._vad.in_speech

    def hear(self, frame: av.AudioFrame) -> list[VadEvent]:
        """The events that `frame` completes."""
        return self._vad.feed(self._converter.convert(frame))
