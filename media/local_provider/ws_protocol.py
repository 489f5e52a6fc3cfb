"""uvicorn's WebSocket protocol, quiet about handshakes the app refuses on purpose.

uvicorn's default `websockets-sansio` protocol logs "ASGI callable returned without completing
handshake." at ERROR after every denial response (the ASGI `websocket.http.response`
extension), although the client got the denial: https://github.com/Kludex/uvicorn/pull/3138
The stand-in refuses sideband handshakes for unknown calls routinely, so it serves WebSockets
with this subclass, which counts a fully sent denial as a completed handshake.
"""

from __future__ import annotations

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class DenialAwareWebSocketProtocol(WebSocketsSansIOProtocol):
    """`WebSocketsSansIOProtocol` that treats a sent denial response as the handshake's end."""

    async def send(self, message: ASGISendEvent) -> None:
        """Send as uvicorn does; after the last body chunk of a denial, the handshake is over."""
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            self.handshake_complete = True
