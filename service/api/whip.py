"""ASGI middleware: every OPTIONS answer on the WHIP endpoint carries `Accept-Post`.

CORS preflights are answered by the CORS middleware before any route runs, so the header is
added here, outside it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ACCEPT_POST = b"application/sdp, multipart/form-data"


class AcceptPostOnOptions:
    """Adds `Accept-Post` to OPTIONS responses for `/v1/calls`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS" or scope["path"] != "/v1/calls":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"accept-post"]
                headers.append((b"accept-post", ACCEPT_POST))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)
