"""aiortc building blocks shared by the caller and the local provider.

The events data channel's name, a real-time paced outbound audio track, and a consumer for
inbound audio tracks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.audio import SAMPLE_RATE, SAMPLES_PER_FRAME, TIME_BASE

EVENTS_CHANNEL = "oai-events"
"""The data channel carrying realtime events as JSON text, created by the caller."""


class PacedAudioTrack(MediaStreamTrack):
    """Sends the frames of `source` in real time, one 20 ms frame every 20 ms.

    The track owns the timeline: each frame's pts is overwritten with the running sample
    count, so a source need not care about timestamps. The track ends with its source.
    """

    kind = "audio"

    def __init__(self, source: Iterator[av.AudioFrame]) -> None:
        super().__init__()
        self._source = source
        self._started_at: float | None = None
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        """The next frame, once its time has come."""
        if self.readyState != "live":
            raise MediaStreamError
        if self._started_at is None:
            self._started_at = time.monotonic()
        else:
            self._pts += SAMPLES_PER_FRAME
            # Pacing against the start time, not the previous frame, keeps sleep jitter from
            # accumulating into drift.
            delay = self._started_at + self._pts / SAMPLE_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        frame = next(self._source, None)
        if frame is None:
            self.stop()
            raise MediaStreamError
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        return frame


async def consume_audio(track: MediaStreamTrack, on_frame: Callable[[av.AudioFrame], None]) -> None:
    """Receive frames from a remote `track` until it ends, handing each to `on_frame`."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if isinstance(frame, av.AudioFrame):
            on_frame(frame)
