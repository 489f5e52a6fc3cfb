"""The SDP offer the benchmarks start calls with."""

from __future__ import annotations


async def make_offer() -> str:
    """An SDP offer as aiortc writes it: audio plus the `oai-events` data channel.

    Needs the `callbridge[local]` extra (aiortc).
    """
    from aiortc import RTCPeerConnection

    peer = RTCPeerConnection()
    try:
        peer.addTransceiver("audio", direction="sendrecv")
        peer.createDataChannel("oai-events")
        await peer.setLocalDescription(await peer.createOffer())
        sdp: str = peer.localDescription.sdp
        return sdp
    finally:
        await peer.close()
