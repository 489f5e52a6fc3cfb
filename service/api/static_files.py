"""The call page's files, served whole.

Starlette's `StaticFiles` takes `Range` requests, and answers one it cannot parse or satisfy
with a `text/plain` 400 or 416, an unknown range unit included, which RFC 9110 §14.2 says a
server MUST ignore. The page's files are a few KiB: ranges buy nothing, so here `Range` and
`If-Range` are ignored (§14.2: a server MAY ignore `Range`), every answer is the whole file,
and `Accept-Ranges: none` says so (§14.3).
"""

from __future__ import annotations

from typing import Final

from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

_RANGE_FIELDS: Final = frozenset({b"range", b"if-range"})


class WholeFiles(StaticFiles):
    """`StaticFiles` that ignores `Range` and answers `Accept-Ranges: none`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _RANGE_FIELDS]

        async def send_whole(message: Message) -> None:
            if message["type"] == "http.response.start":
                fields = [(k, v) for k, v in message.get("headers", []) if k != b"accept-ranges"]
                message = {**message, "headers": [*fields, (b"accept-ranges", b"none")]}
            await send(message)

        await super().__call__({**scope, "headers": headers}, receive, send_whole)
