"""A provider that misbehaves on purpose, served for real on a loopback port.

Each call-creation request takes the next behaviour from `script`; everything it saw is recorded.
A `held` creation answers only once the test sets `release` (`holding` is set when one waits).
The sideband can be scripted as real providers behave in public bug reports (PROTOCOL §10):
connections upgraded and closed at once, handshakes refused with a JSON error, `response.create`
refused while a response is active, voice changes refused. Hang-ups take their answer's status
from `hangup_statuses` (200 once it is empty); the first `hold_hangups` of them answer only once
the test sets `release`.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request, Response, WebSocket

Behaviour = Literal[
    "ok",
    "error500",
    "timeout",
    "held",
    "no_location",
    "bad_location",
    "not_utf8",
    "echo_key",
    "echo_key_mangled",
    "key_in_answer",
    "key_in_call_id",
    "key_in_bad_location",
    "key_at_error_cut",
    "key_at_location_cut",
]

ERROR_TEXT_CHARS = 2000
"""How much of an error body callbridge reads for its message (`signaling.provider`)."""
LOCATION_SHOWN_CHARS = 120
"""How much of a bad Location callbridge quotes (`signaling.location`)."""

ANSWER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def mangled(key: str) -> list[str]:
    """The ways a careless provider may quote a key other than verbatim: URL-encoded, with a
    Unicode hyphen (U+2010), JSON-escaped, and base64-encoded in a `Basic` credential."""
    return [
        "".join(f"%{byte:02X}" if not chr(byte).isalnum() else chr(byte) for byte in key.encode()),
        key.replace("-", "\u2010"),
        json.dumps(key.replace("-", "\u2010"))[1:-1],
        "Basic " + base64.b64encode(f"user:{key}".encode()).decode(),
    ]


@dataclass
class FaultyProvider:
    """Script and records of the misbehaving provider."""

    script: list[Behaviour] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    hangups: list[str] = field(default_factory=list)
    hangup_statuses: list[int] = field(default_factory=list)
    hold_hangups: int = 0
    sideband_attempts: int = 0
    refuse_sideband: int = 0
    delay_s: float = 30.0
    ended: set[str] = field(default_factory=set)
    received: list[dict[str, Any]] = field(default_factory=list)
    sockets: dict[str, WebSocket] = field(default_factory=dict)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    close_at_once: int = 0
    close_code: int = 1011
    close_reason: str = ""
    refuse_next_join: tuple[int, str] | None = None
    refuse_response_creates: int = 0
    refuse_voice_updates: bool = False
    connections: list[list[dict[str, Any]]] = field(default_factory=list)
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def _refuse(self, socket: WebSocket, event: dict[str, Any], code: str, text: str) -> None:
        error: dict[str, Any] = {"type": "invalid_request_error", "code": code, "message": text}
        error["event_id"] = event.get("event_id")
        await socket.send_text(json.dumps({"type": "error", "event_id": "evt_p", "error": error}))

    async def _answer(self, socket: WebSocket, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "session.update":
            voice = event["session"].get("audio", {}).get("output", {}).get("voice")
            if self.refuse_voice_updates and voice is not None:
                text = "Cannot update a conversation's voice if assistant audio is present."
                await self._refuse(socket, event, "cannot_update_voice", text)
                return
            reply = {"type": "session.updated", "session": {"id": "sess_fault"}}
            await socket.send_text(json.dumps(reply))
        elif kind == "response.create":
            if self.refuse_response_creates > 0:
                self.refuse_response_creates -= 1
                text = "Conversation already has an active response in progress: resp_vad."
                await self._refuse(socket, event, "conversation_already_has_active_response", text)
                return
            response = {"id": f"resp_{len(self.received)}", "status": "completed", "output": []}
            await socket.send_text(json.dumps({"type": "response.created", "response": response}))
            await socket.send_text(json.dumps({"type": "response.done", "response": response}))
        elif kind == "conversation.item.create":
            echo = {"type": "conversation.item.added", "item": event["item"]}
            await socket.send_text(json.dumps(echo))

    async def push(self, call_id: str, *frames: str | bytes) -> None:
        """Send raw frames to the call's sideband, as the provider would."""
        socket = self.sockets[call_id]
        for frame in frames:
            if isinstance(frame, bytes):
                await socket.send_bytes(frame)
            else:
                await socket.send_text(frame)

    async def drop(self, call_id: str) -> None:
        """Break the sideband without ending the call."""
        self.connected.clear()
        await self.sockets[call_id].close(code=1011)

    async def end_call(self, call_id: str, code: int = 1000, reason: str = "call_ended") -> None:
        """End the call provider-side, closing its sideband with `code` (1000: as the other
        party hanging up would; 1011: as a provider fault would)."""
        self.ended.add(call_id)
        socket = self.sockets.get(call_id)
        if socket is not None:
            await socket.close(code=code, reason=reason)

    def app(self) -> FastAPI:
        """The ASGI app."""
        app = FastAPI()

        @app.post("/v1/realtime/calls")
        async def create(request: Request) -> Response:
            await request.body()
            behaviour = self.script.pop(0) if self.script else "ok"
            call_id = f"rtc_fault{len(self.created)}"
            self.created.append(call_id)
            if behaviour == "error500":
                return Response(
                    '{"error":{"message":"upstream exploded","type":"server_error"}}',
                    status_code=500,
                    media_type="application/json",
                )
            if behaviour == "echo_key":
                # A careless provider that quotes the credential it was given.
                message = f"Incorrect API key: {request.headers.get('authorization')}"
                return Response(
                    json.dumps({"error": {"message": message, "type": "invalid_request_error"}}),
                    status_code=401,
                    media_type="application/json",
                )
            key = request.headers.get("authorization", "").removeprefix("Bearer ")
            if behaviour == "echo_key_mangled":
                message = "Incorrect API key provided: " + ", ".join(mangled(key))
                return Response(
                    json.dumps({"error": {"message": message, "type": "invalid_request_error"}}),
                    status_code=401,
                    media_type="application/json",
                )
            if behaviour == "key_at_error_cut":
                # The key straddles the point where the error text is cut: all but its last
                # character fall before it.
                filler = "E" * (ERROR_TEXT_CHARS - len(key) + 1)
                return Response(filler + key, status_code=400, media_type="text/plain")
            if behaviour == "key_at_location_cut":
                filler = "Z" * (LOCATION_SHOWN_CHARS - len("/v1/realtime/calls/") - len(key) + 1)
                return Response(
                    ANSWER,
                    status_code=201,
                    media_type="application/sdp",
                    headers={"Location": f"/v1/realtime/calls/{filler}{key}"},
                )
            if behaviour == "key_in_answer":
                return Response(
                    ANSWER.replace("s=-", f"s={key}"),
                    status_code=201,
                    media_type="application/sdp",
                    headers={"Location": f"/v1/realtime/calls/{call_id}"},
                )
            if behaviour in ("key_in_call_id", "key_in_bad_location"):
                # A call id that is the key (valid characters), or a Location quoting it.
                suffix = "" if behaviour == "key_in_call_id" else "!"
                return Response(
                    ANSWER,
                    status_code=201,
                    media_type="application/sdp",
                    headers={"Location": f"/v1/realtime/calls/rtc_{key}{suffix}"},
                )
            if behaviour == "timeout":
                await asyncio.sleep(self.delay_s)
            if behaviour == "held":
                self.holding.set()
                await self.release.wait()
            if behaviour == "no_location":
                return Response(ANSWER, status_code=201, media_type="application/sdp")
            if behaviour == "bad_location":
                return Response(
                    ANSWER,
                    status_code=201,
                    media_type="application/sdp",
                    headers={"Location": "/v1/realtime/calls/not-an-id"},
                )
            if behaviour == "not_utf8":
                return Response(
                    b"\xff\xfe",
                    status_code=201,
                    media_type="application/sdp",
                    headers={"Location": f"/v1/realtime/calls/{call_id}"},
                )
            return Response(
                ANSWER,
                status_code=201,
                media_type="application/sdp",
                headers={"Location": f"/v1/realtime/calls/{call_id}"},
            )

        @app.post("/v1/realtime/calls/{call_id}/hangup")
        async def hangup(call_id: str) -> Response:
            self.hangups.append(call_id)
            if self.hold_hangups > 0:
                self.hold_hangups -= 1
                await self.release.wait()
            status = self.hangup_statuses.pop(0) if self.hangup_statuses else 200
            if status != 200:
                error = {"error": {"code": None, "message": f"hang-up answered {status}"}}
                return Response(json.dumps(error), status, media_type="application/json")
            await self.end_call(call_id)
            return Response(status_code=200)

        @app.websocket("/v1/realtime")
        async def sideband(websocket: WebSocket) -> None:
            self.sideband_attempts += 1
            call_id = websocket.query_params.get("call_id", "")
            if self.refuse_sideband > 0:
                self.refuse_sideband -= 1
                await websocket.send_denial_response(Response(status_code=503))
                return
            if self.refuse_next_join is not None:
                status, code = self.refuse_next_join
                self.refuse_next_join = None
                error = {"code": code, "message": "No session found for the provided call_id"}
                body = json.dumps({"error": error})
                denial = Response(body, status_code=status, media_type="application/json")
                await websocket.send_denial_response(denial)
                return
            if call_id in self.ended or call_id not in self.created:
                await websocket.send_denial_response(Response(status_code=404))
                return
            await websocket.accept()
            if self.close_at_once > 0:
                self.close_at_once -= 1
                await websocket.close(code=self.close_code, reason=self.close_reason)
                return
            connection: list[dict[str, Any]] = []
            self.connections.append(connection)
            self.sockets[call_id] = websocket
            self.connected.set()
            await websocket.send_text(json.dumps({"type": "session.created", "session": {}}))
            try:
                while True:
                    event = json.loads(await websocket.receive_text())
                    self.received.append(event)
                    connection.append(event)
                    await self._answer(websocket, event)
            except Exception:
                return
            finally:
                if self.sockets.get(call_id) is websocket:
                    del self.sockets[call_id]

        return app
