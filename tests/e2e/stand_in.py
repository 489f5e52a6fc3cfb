"""Helpers for tests of the stand-in provider: serving it, and a caller that speaks on cue."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import av
import httpx
import numpy as np
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from media.audio import FRAME_MS, silence_frame
from media.local_provider.app import create_provider_app
from media.local_provider.calls import CallRegistry
from media.local_provider.config import LocalProviderConfig
from media.rtc import EVENTS_CHANNEL, PacedAudioTrack, consume_audio
from tests.e2e.servers import running_server

CALLS_PATH = "/v1/realtime/calls"
QUIET_DBFS = -60.0
"""Inbound audio below this level counts as silence (the provider sends digital zeros)."""

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class Provider:
    """A running stand-in: its base URL and its call registry."""

    base_url: str
    calls: CallRegistry

    @property
    def api_url(self) -> str:
        """The `/v1` base URL an OpenAI client takes."""
        return self.base_url + "/v1"

    @property
    def calls_url(self) -> str:
        """Where calls are created."""
        return self.base_url + CALLS_PATH

    def sideband_url(self, query: str) -> str:
        """The realtime WebSocket URL with `query` (e.g. `call_id=rtc_…`)."""
        return self.base_url.replace("http://", "ws://") + "/v1/realtime?" + query


@contextlib.asynccontextmanager
async def local_provider(config: LocalProviderConfig) -> AsyncIterator[Provider]:
    """The stand-in served on a loopback port for the duration."""
    calls = CallRegistry(config)
    async with running_server(create_provider_app(config, calls)) as base_url:
        yield Provider(base_url, calls)


async def make_offer() -> str:
    """A browser-like offer (audio and the events data channel) from a peer that is dropped."""
    pc = RTCPeerConnection()
    pc.createDataChannel(EVENTS_CHANNEL)
    pc.addTransceiver("audio")
    await pc.setLocalDescription(await pc.createOffer())
    offer: str = pc.localDescription.sdp
    await pc.close()
    return offer


def voiced_onset_ms(frames: list[av.AudioFrame], threshold_dbfs: float = -45.0) -> int:
    """Where speech begins in `frames`: the first 20 ms frame at or above `threshold_dbfs`."""
    for index, frame in enumerate(frames):
        if level_dbfs(frame) >= threshold_dbfs:
            return index * FRAME_MS
    raise ValueError("the clip is silent")


def level_dbfs(frame: av.AudioFrame) -> float:
    """The RMS level of a frame in dBFS (-inf for digital silence)."""
    samples = frame.to_ndarray().astype(np.float64).reshape(-1)
    if frame.format.name != "s16":
        samples = samples * 32768
    rms = math.sqrt(float(np.mean(samples**2))) if samples.size else 0.0
    return 20 * math.log10(rms / 32768) if rms > 0 else -math.inf


@dataclass
class Clip:
    """A clip being played: where it started in the outbound stream, and when."""

    start_frame: int = -1
    started_at: float = math.nan


@dataclass
class AudioCaller:
    """A WebRTC caller whose microphone is silent until told to `play` a clip.

    It keeps every server event from the data channel, and the level of every frame it hears;
    `marks` records how many frames had been heard when each event arrived.
    """

    calls_url: str
    token: str | None = None
    events: list[JsonObject] = field(default_factory=list)
    marks: dict[str, int] = field(default_factory=dict)
    arrived_at: dict[str, float] = field(default_factory=dict)
    heard_dbfs: list[float] = field(default_factory=list)
    location: str = ""
    _pc: RTCPeerConnection | None = None
    _channel: RTCDataChannel | None = None
    _queue: deque[av.AudioFrame] = field(default_factory=deque)
    _clip: Clip | None = None
    _frames_sent: int = 0
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def call_id(self) -> str:
        """The provider's id of this call."""
        return self.location.rsplit("/", 1)[-1]

    async def connect(self) -> None:
        """Place the call and wait for the data channel to open."""
        pc = self._pc = RTCPeerConnection()
        channel = self._channel = pc.createDataChannel(EVENTS_CHANNEL)
        opened = asyncio.Event()
        channel.on("open", opened.set)
        channel.on("message", self._on_message)
        pc.on("track", self._on_track)
        pc.addTrack(PacedAudioTrack(self._microphone()))
        await pc.setLocalDescription(await pc.createOffer())
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(
                self.calls_url,
                content=pc.localDescription.sdp,
                headers={"Content-Type": "application/sdp", **self._auth},
            )
        response.raise_for_status()
        self.location = response.headers["location"]
        await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
        async with asyncio.timeout(10):
            await opened.wait()

    def play(self, frames: list[av.AudioFrame]) -> Clip:
        """Queue `frames` on the microphone; the returned clip fills in when it starts."""
        clip = self._clip = Clip()
        self._queue.extend(frames)
        return clip

    def send(self, event: JsonObject) -> None:
        """Send a client event over the data channel."""
        assert self._channel is not None
        self._channel.send(json.dumps(event))

    async def wait_for(
        self, event_type: str, match: Callable[[JsonObject], bool] = lambda _: True
    ) -> JsonObject:
        """The first event (received so far or later) of `event_type` that `match`es."""
        async with asyncio.timeout(20):
            while True:
                for event in self.events:
                    if event["type"] == event_type and match(event):
                        return event
                self._arrived.clear()
                await self._arrived.wait()

    def heard_between(self, first_event: JsonObject, last_event: JsonObject) -> list[float]:
        """Levels (dBFS) of the frames heard between the arrival of two events."""
        return self.heard_dbfs[
            self.marks[first_event["event_id"]] : self.marks[last_event["event_id"]]
        ]

    def started_lag_ms(self, clip: Clip, event: JsonObject, onset_ms: int) -> float:
        """How long after the clip's voiced onset was sent `event` arrived, in ms."""
        return (self.arrived_at[event["event_id"]] - clip.started_at) * 1000 - onset_ms

    async def close(self) -> None:
        """Hang up at the provider and close the peer."""
        if self.location:
            async with httpx.AsyncClient(timeout=10) as http:
                await http.post(self.calls_url + "/" + self.call_id + "/hangup", headers=self._auth)
        for task in self._tasks:
            task.cancel()
        if self._pc is not None:
            await self._pc.close()

    def _microphone(self) -> Iterator[av.AudioFrame]:
        while True:
            if self._queue:
                clip = self._clip
                if clip is not None and clip.start_frame < 0:
                    clip.start_frame, clip.started_at = self._frames_sent, time.monotonic()
                frame = self._queue.popleft()
            else:
                frame = silence_frame(0)
            self._frames_sent += 1
            yield frame

    def _on_message(self, message: str | bytes) -> None:
        event = json.loads(message)
        self.marks[event["event_id"]] = len(self.heard_dbfs)
        self.arrived_at[event["event_id"]] = time.monotonic()
        self.events.append(event)
        self._arrived.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        task = asyncio.create_task(consume_audio(track, self._on_heard))
        self._tasks.add(task)

    def _on_heard(self, frame: av.AudioFrame) -> None:
        self.heard_dbfs.append(level_dbfs(frame))


@contextlib.asynccontextmanager
async def audio_call(provider: Provider, token: str | None = None) -> AsyncIterator[AudioCaller]:
    """A connected `AudioCaller` on `provider` (with key `token`), hung up afterwards."""
    caller = AudioCaller(provider.calls_url, token)
    try:
        await caller.connect()
        yield caller
    finally:
        await caller.close()
