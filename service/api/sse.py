"""Serving a call's event stream as Server-Sent Events with a bound on every write.

The SSE framing is the WHATWG HTML "Server-sent events" format
(https://html.spec.whatwg.org/multipage/server-sent-events.html). A subscriber whose socket
stops taking data holds a task and a write buffer; every write therefore has a deadline, and a
subscriber that misses it is dropped, during the call or after it ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping

from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

log = logging.getLogger("callbridge.api")


class EventStreamResponse(StreamingResponse):
    """`text/event-stream` whose each write must complete within `send_timeout_s` seconds.

    Past the deadline the response is abandoned (the server closes the connection) and the
    frame generator is closed, which ends its subscription.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        frames: AsyncGenerator[bytes, None],
        *,
        send_timeout_s: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(frames, media_type="text/event-stream", headers=headers)
        self._frames = frames
        self._send_timeout_s = send_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def bounded_send(message: Message) -> None:
            async with asyncio.timeout(self._send_timeout_s):
                await send(message)

        try:
            await super().__call__(scope, receive, bounded_send)
        except TimeoutError:
            log.info(
                "event-stream subscriber dropped: it took no data for %.1f s",
                self._send_timeout_s,
            )
        finally:
            await self._frames.aclose()
