"""A provider that misbehaves on purpose, served for real on a loopback port.

Each call-creation request takes the next behaviour from `script`; everything it saw is recorded.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Literal

from fastapi import FastAPI, Request, Response, WebSocket

Behaviour = Literal[
    "ok", "error500", "timeout", "no_location", "bad_location", "not_utf8", "echo_key"
]

ANSWER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


@dataclass
class FaultyProvider:
    """Script and records of the misbehaving provider."""

    script: list[Behaviour] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    hangups: list[str] = field(default_factory=list)
    sideband_attempts: int = 0
    refuse_sideband: int = 0
    delay_s: float = 30.0

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
            if behaviour == "timeout":
                await asyncio.sleep(self.delay_s)
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
            return Response(status_code=200)

        @app.websocket("/v1/realtime")
        async def sideband(websocket: WebSocket) -> None:
            self.sideband_attempts += 1
            if self.refuse_sideband > 0:
                self.refuse_sideband -= 1
                await websocket.send_denial_response(Response(status_code=503))
                return
            await websocket.accept()
            try:
                while True:
                    await websocket.receive_text()
            except Exception:
                return

        return app
