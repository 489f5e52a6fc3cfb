"""A Python WebRTC caller: offer, play a file or a tone, record what comes back, hang up."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import httpx
from aiortc import (
    MediaStreamTrack,
    RTCDataChannel,
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCSessionDescription,
)

from media.audio import (
    SAMPLE_RATE,
    Pcm16Converter,
    read_wav_frames,
    rms_dbfs,
    silence_frames,
    tone_frames,
)
from media.rtc import EVENTS_CHANNEL, PacedAudioTrack, consume_audio

_ICE_CONNECTED = ("connected", "completed")


class DialError(Exception):
    """The call could not be placed, connected or hung up.

    `status` is the HTTP status when the server answered, `detail` its explanation (the
    problem+json `detail`/`title`, or an OpenAI error `message`).
    """

    def __init__(
        self, message: str, *, status: int | None = None, detail: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class DialReport:
    """What one call looked like from the caller's side."""

    location: str
    ice_states: tuple[str, ...]
    connection_states: tuple[str, ...]
    dtls_connected: bool
    frames_received: int
    peak_dbfs: float
    event_counts: Mapping[str, int]
    hangup_status: int | None

    @property
    def ice_connected(self) -> bool:
        """Whether ICE ever reached connected or completed."""
        return any(state in _ICE_CONNECTED for state in self.ice_states)

    @property
    def hung_up(self) -> bool:
        """Whether the hangup request succeeded."""
        return self.hangup_status is not None and 200 <= self.hangup_status < 300


def format_report(report: DialReport) -> str:
    """The report as the CLI prints it, one fact per line (the call's URL is printed as soon as
    the call is up, through `dial`'s `on_answered`)."""
    if report.ice_connected:
        ice = "ICE connected"
    else:
        ice = f"ICE not connected (states: {', '.join(report.ice_states) or 'none'})"
    level = (
        f"audio peak level: {report.peak_dbfs:.1f} dBFS"
        if math.isfinite(report.peak_dbfs)
        else "audio peak level: silence"
    )
    counts = ", ".join(f"{kind} x{count}" for kind, count in report.event_counts.items())
    events = f"data-channel events: {sum(report.event_counts.values())}"
    if counts:
        events += f" ({counts})"
    hangup = "hung up: no" if report.hangup_status is None else f"hung up: {report.hangup_status}"
    return "\n".join(
        [
            ice,
            "DTLS connected" if report.dtls_connected else "DTLS not connected",
            f"audio frames received: {report.frames_received}",
            level,
            events,
            hangup,
        ]
    )


class CallClient:
    """One outbound WebRTC call, as an async context manager.

    Entering places the call: a peer connection with an outbound audio track (the `play` file
    once, then silence; or a steady tone) and the `oai-events` data channel, an SDP offer
    POSTed to `url` (as `application/sdp`, or as multipart with a `session` JSON part when
    `session` is given), the answer applied, and a wait until the connection and the channel are
    up. Leaving hangs up (unless done already, or `disconnect`ed) and closes everything.
    """

    def __init__(
        self,
        url: str,
        *,
        play: Path | None = None,
        tone_hz: float = 440.0,
        token: str | None = None,
        session: Mapping[str, Any] | None = None,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self._url = url
        self._session = dict(session) if session is not None else None
        self._play = play
        self._tone_hz = tone_hz
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._connect_timeout_s = connect_timeout_s
        self._http = httpx.AsyncClient(timeout=connect_timeout_s)
        self._pc: RTCPeerConnection | None = None
        self._location: str | None = None
        self._ice_states: list[str] = []
        self._connection_states: list[str] = []
        self._dtls_connected = False
        self._settled = asyncio.Event()
        self._channel_open = asyncio.Event()
        self._pcm = Pcm16Converter(SAMPLE_RATE)
        self._frames_received = 0
        self._peak_dbfs = -math.inf
        self._events: list[dict[str, Any]] = []
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._channel: RTCDataChannel | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._hangup_status: int | None = None
        self._disconnected = False

    async def __aenter__(self) -> CallClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def location(self) -> str | None:
        """The call's absolute URL, from the answer's Location header."""
        return self._location

    @property
    def ice_state(self) -> str:
        """The current ICE connection state."""
        return self._pc.iceConnectionState if self._pc is not None else "new"

    @property
    def ice_states(self) -> tuple[str, ...]:
        """Every ICE connection state seen, in order."""
        return tuple(self._ice_states)

    @property
    def connection_states(self) -> tuple[str, ...]:
        """Every peer connection state seen, in order."""
        return tuple(self._connection_states)

    @property
    def dtls_connected(self) -> bool:
        """Whether every DTLS transport was connected when the connection came up."""
        return self._dtls_connected

    @property
    def frames_received(self) -> int:
        """Inbound audio frames received so far."""
        return self._frames_received

    @property
    def peak_dbfs(self) -> float:
        """Loudest inbound frame so far (RMS, dBFS); `-inf` while all has been silence."""
        return self._peak_dbfs

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every data-channel event received, parsed, oldest first."""
        return self._events

    @property
    def event_queue(self) -> asyncio.Queue[dict[str, Any]]:
        """The same events, for consumers that wait for them."""
        return self._queue

    async def connect(self) -> None:
        """Place the call and wait until media and the data channel are up.

        Raises DialError when the server refuses the offer or the connection does not come up.
        """
        frames = self._outbound_frames()
        pc = self._pc = RTCPeerConnection()
        # The channel must exist before the offer so that the offer carries an application
        # section; the provider only learns about channels negotiated in the SDP.
        channel = self._channel = pc.createDataChannel(EVENTS_CHANNEL)
        channel.on("open", self._channel_open.set)
        channel.on("message", self._on_message)
        pc.on("track", self._on_track)
        pc.on("iceconnectionstatechange", lambda: self._ice_states.append(pc.iceConnectionState))
        pc.on("connectionstatechange", self._on_connection_state)
        pc.addTrack(PacedAudioTrack(frames))
        try:
            await pc.setLocalDescription(await pc.createOffer())
            answer = await self._post_offer(pc.localDescription.sdp)
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            except ValueError as exc:
                raise DialError(f"unusable SDP answer: {exc}") from exc
            await self._wait_until_up()
        except BaseException:
            await self.close()
            raise

    def send_event(self, event: Mapping[str, Any]) -> None:
        """Send a client event over the data channel."""
        if self._channel is None or self._channel.readyState != "open":
            raise DialError("the data channel is not open")
        self._channel.send(json.dumps(event))

    async def wait_for_event(self, event_type: str, timeout_s: float = 5.0) -> dict[str, Any]:
        """Take events off the queue until one of `event_type` arrives, and return it."""
        async with asyncio.timeout(timeout_s):
            while True:
                event = await self._queue.get()
                if event.get("type") == event_type:
                    return event

    async def hangup(self) -> int:
        """End the call at the server and close the peer; the server's HTTP status.

        Hanging up twice sends one request and returns the same status.
        """
        if self._hangup_status is not None:
            return self._hangup_status
        if self._location is None:
            raise DialError("there is no call to hang up")
        # callbridge, the realtime provider and the stand-in all end a call this way (callbridge
        # keeps its record readable; DELETE would also forget it).
        url = httpx.URL(self._location)
        url = url.copy_with(path=url.path + "/hangup")
        try:
            response = await self._http.post(url, headers=self._auth)
        except httpx.HTTPError as exc:
            raise DialError(f"hangup request failed: {exc}") from exc
        finally:
            await self._close_peer()
        self._hangup_status = response.status_code
        return response.status_code

    async def disconnect(self) -> None:
        """Close the peer connection without asking the server to end the call, as a browser
        tab that is closed does; `close` then hangs nothing up."""
        self._disconnected = True
        await self._close_peer()

    async def close(self) -> None:
        """Hang up a call placed, unless hung up or disconnected already; release everything."""
        if self._location is not None and self._hangup_status is None and not self._disconnected:
            with contextlib.suppress(DialError):
                await self.hangup()
        await self._close_peer()
        await self._http.aclose()

    def report(self) -> DialReport:
        """A summary of the call so far."""
        return DialReport(
            location=self._location or "",
            ice_states=self.ice_states,
            connection_states=self.connection_states,
            dtls_connected=self._dtls_connected,
            frames_received=self._frames_received,
            peak_dbfs=self._peak_dbfs,
            event_counts=dict(Counter(str(event.get("type")) for event in self._events)),
            hangup_status=self._hangup_status,
        )

    def _outbound_frames(self) -> Iterator[av.AudioFrame]:
        if self._play is not None:
            return itertools.chain(read_wav_frames(self._play), silence_frames())
        return tone_frames(self._tone_hz)

    async def _post_offer(self, offer: str) -> str:
        try:
            if self._session is None:
                headers = {"Content-Type": "application/sdp", **self._auth}
                response = await self._http.post(self._url, content=offer, headers=headers)
            else:
                # A session configures the call at creation, so it must travel with the offer.
                files = {
                    "sdp": (None, offer.encode(), "application/sdp"),
                    "session": (None, json.dumps(self._session).encode(), "application/json"),
                }
                response = await self._http.post(self._url, files=files, headers=self._auth)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise DialError(f"POST {self._url} failed: {exc}") from exc
        if response.status_code != 201:
            detail = _error_detail(response)
            raise DialError(
                f"POST {self._url} answered {response.status_code}: {detail or 'no detail'}",
                status=response.status_code,
                detail=detail,
            )
        location = response.headers.get("location")
        if not location:
            raise DialError("the answer has no Location header", status=response.status_code)
        self._location = str(httpx.URL(self._url).join(location))
        return response.text

    async def _wait_until_up(self) -> None:
        assert self._pc is not None
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await self._settled.wait()
                if self._pc.connectionState != "connected":
                    raise DialError(f"the connection {self._pc.connectionState}")
                await self._channel_open.wait()
        except TimeoutError as exc:
            raise DialError(f"not connected after {self._connect_timeout_s} s") from exc

    def _on_connection_state(self) -> None:
        assert self._pc is not None
        state = self._pc.connectionState
        self._connection_states.append(state)
        if state == "connected":
            self._dtls_connected = all(
                transport.state == "connected" for transport in self._dtls_transports()
            )
        if state in ("connected", "failed", "closed"):
            self._settled.set()

    def _dtls_transports(self) -> list[RTCDtlsTransport]:
        assert self._pc is not None
        transports = [t.sender.transport for t in self._pc.getTransceivers()]
        if self._pc.sctp is not None:
            transports.append(self._pc.sctp.transport)
        return transports

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio":
            return
        task = asyncio.create_task(consume_audio(track, self._on_frame))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_frame(self, frame: av.AudioFrame) -> None:
        self._frames_received += 1
        self._peak_dbfs = max(self._peak_dbfs, rms_dbfs(self._pcm.convert(frame)))

    def _on_message(self, message: str | bytes) -> None:
        try:
            event = json.loads(message)
        except ValueError:
            return
        if isinstance(event, dict):
            self._events.append(event)
            self._queue.put_nowait(event)

    async def _close_peer(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._pc is not None:
            await self._pc.close()


async def dial(
    url: str,
    *,
    play: Path | None = None,
    seconds: float = 5.0,
    token: str | None = None,
    tone_hz: float = 440.0,
    on_answered: Callable[[str], None] | None = None,
) -> DialReport:
    """Place one call to `url`, keep it up for `seconds`, hang up, and report.
    `on_answered` is given the call's URL (its `Location`) as soon as the call is up, so that
    a caller can reach the call even if this run is cut short.

    Raises DialError when the call cannot be placed or does not connect.
    """
    async with CallClient(url, play=play, tone_hz=tone_hz, token=token) as client:
        if on_answered is not None and client.location is not None:
            on_answered(client.location)
        await asyncio.sleep(seconds)
        await client.hangup()
        return client.report()


def _error_detail(response: httpx.Response) -> str | None:
    """The explanation in an error response: problem+json or an OpenAI error body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200] or None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    for value in (
        body.get("detail"),
        body.get("title"),
        error.get("message") if isinstance(error, dict) else None,
    ):
        if isinstance(value, str) and value:
            return value
    return None
