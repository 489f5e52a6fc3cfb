"""The realtime WebSocket `/v1/realtime`: a call's sideband, or a session of its own.

`?call_id=` joins an existing call (https://platform.openai.com/docs/guides/realtime-server-controls);
`?model=` (or `?intent=transcription`) opens a plain WebSocket session, a call without media that
lasts as long as its socket. A refused handshake is answered with an HTTP error response carrying
the OpenAI error body.
"""

from __future__ import annotations

import contextlib
import json

from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect

from media.local_provider.calls import LocalCall
from media.local_provider.context import ProviderContext
from media.local_provider.errors import ProviderError, call_id_not_found, invalid_api_key
from media.local_provider.server_events import JsonObject

REALTIME_PATH = "/v1/realtime"
CALL_ENDED_REASON = "call_ended"


class WebSocketSink:
    """Sends a call's server events over one WebSocket."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket

    async def send_event(self, event: JsonObject) -> bool:
        """Send `event` as a text frame; False once the socket is gone."""
        try:
            await self._websocket.send_text(json.dumps(event))
        except (WebSocketDisconnect, RuntimeError):
            return False
        return True

    async def close(self) -> None:
        """Close the socket normally, saying why."""
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await self._websocket.close(code=1000, reason=CALL_ENDED_REASON)


def add_realtime_socket(app: FastAPI, context: ProviderContext) -> None:
    """Serve `/v1/realtime` on `app`."""

    @app.websocket(REALTIME_PATH)
    async def realtime_socket(websocket: WebSocket) -> None:
        if not context.access.authorized(websocket.headers):
            await _deny(websocket, invalid_api_key())
            return
        params = websocket.query_params
        call_id = params.get("call_id")
        if call_id:
            call = context.calls.active(call_id)
            if call is None:
                await _deny(websocket, call_id_not_found(call_id))
                return
            await websocket.accept()
            await _relay(websocket, call)
            return
        if params.get("intent") == "transcription":
            session: JsonObject = {"type": "transcription"}
        elif params.get("model"):
            session = {"type": "realtime", "model": params["model"]}
        else:
            await _deny(
                websocket,
                ProviderError(
                    400,
                    "Missing required parameter: 'model' (or 'call_id').",
                    code="missing_required_parameter",
                    param="model",
                ),
            )
            return
        call = context.calls.create(session, audio=False)
        await websocket.accept()
        try:
            await _relay(websocket, call)
        finally:
            # Nothing can join a plain session, so nothing needs its record afterwards.
            await call.end()
            context.calls.forget(call)


def add_unknown_socket_refusal(app: FastAPI) -> None:
    """Refuse WebSockets on any other path with 404 and the OpenAI error object.

    Add it after every other WebSocket route: it matches every path.
    """

    @app.websocket("/{path:path}")
    async def unknown_socket(websocket: WebSocket, path: str) -> None:
        message = f"Invalid URL (GET /{path})"
        await _deny(websocket, ProviderError(404, message, code=None))


async def _relay(websocket: WebSocket, call: LocalCall) -> None:
    """Greet the socket, then feed its messages to the call until either side closes."""
    sink = WebSocketSink(websocket)
    await call.subscribe(sink)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", "replace")
            await call.handle_client_text(text)
    finally:
        call.unsubscribe(sink)


async def _deny(websocket: WebSocket, error: ProviderError) -> None:
    """Refuse the WebSocket handshake with a plain HTTP error response."""
    await websocket.send_denial_response(error.response())
