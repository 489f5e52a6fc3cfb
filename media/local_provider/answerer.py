"""The provider's side of a call's WebRTC: an aiortc peer answering the caller's offer."""

from __future__ import annotations

import json

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.exceptions import OperationError

from media.local_provider.calls import LocalCall
from media.local_provider.server_events import JsonObject
from media.rtc import EVENTS_CHANNEL, PacedAudioTrack, consume_audio


class InvalidOffer(ValueError):
    """The caller's SDP offer cannot be answered."""


class DataChannelSink:
    """Sends a call's server events over the caller's `oai-events` data channel."""

    def __init__(self, channel: RTCDataChannel) -> None:
        self._channel = channel

    async def send_event(self, event: JsonObject) -> bool:
        """Queue `event` on the channel; False once the channel has closed."""
        if self._channel.readyState != "open":
            return False
        self._channel.send(json.dumps(event))
        return True

    async def close(self) -> None:
        """Nothing to do: closing the peer connection closes the channel."""


async def answer_offer(call: LocalCall, offer_sdp: str) -> str:
    """Attach an aiortc peer to `call` and return its SDP answer to `offer_sdp`.

    Raises InvalidOffer when aiortc cannot use the offer.
    """
    # A local stand-in answers on this host's addresses; a STUN lookup would only add delay.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    call.peer = pc

    @pc.on("datachannel")
    def on_datachannel(channel: RTCDataChannel) -> None:
        if channel.label != EVENTS_CHANNEL:
            return

        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            text = message if isinstance(message, str) else message.decode("utf-8", "replace")
            call.spawn(call.handle_client_text(text))

        call.spawn(call.subscribe(DataChannelSink(channel)))

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            call.spawn(consume_audio(track, call.on_user_audio))

    @pc.on("connectionstatechange")
    def on_connection_state() -> None:
        # The caller left: it closed its peer connection (aiortc closes ours when DTLS is shut
        # down from the other side) or stopped answering ICE checks. The provider ends the
        # call, as a phone caller's hang-up does.
        if pc.connectionState in ("failed", "closed") and call.state == "active":
            call.spawn(call.end())

    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
    except (ValueError, IndexError, KeyError, OperationError) as exc:
        await pc.close()
        call.peer = None
        raise InvalidOffer(str(exc)) from exc
    pc.addTrack(PacedAudioTrack(call.voice.frames()))
    await pc.setLocalDescription(await pc.createAnswer())
    return pc.localDescription.sdp
