"""Serving a call's event stream as Server-Sent Events with a bound on every write.

The SSE framing is the WHATWG HTML "Server-sent events" format
(https://html.spec.whatwg.org/multipage/server-sent-events.html). A subscriber whose socket
stops taking data holds a task and a write buffer; every write therefore has a deadline, and a
subscriber that misses it is dropped, during the call or after it ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Mapping

from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

log = logging.getLogger("callbridge.api")


class StreamSeats:
    """Event streams open on this instance, per call, at most `per_call` each: every stream
    copies each of its call's events, so one client opening thousands would make each event
    cost thousands of copies. Only calls with an open stream have an entry."""

    def __init__(self, per_call: int) -> None:
        self.per_call = per_call
        self._open: dict[str, int] = {}
        self.closing = asyncio.Event()
        """Set once the instance has drained: every open stream then ends cleanly, and its
        client resumes elsewhere with `Last-Event-ID`, rather than being cut by the server's
        shutdown."""

    def take(self, call_id: str) -> bool:
        """Count one more stream on `call_id`; False (nothing counted) when it has `per_call`."""
        taken = self._open.get(call_id, 0)
        if taken >= self.per_call:
            return False
        self._open[call_id] = taken + 1
        return True

    def give_back(self, call_id: str) -> None:
        """A stream `take` counted on `call_id` has ended."""
        left = self._open.pop(call_id, 0) - 1
        if left > 0:
            self._open[call_id] = left


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
        closing: asyncio.Event,
        headers: Mapping[str, str] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        """`on_close` is called once the response is over, however it ended; once `closing`
        is set, the response ends (its body complete) after the frame being sent."""
        super().__init__(frames, media_type="text/event-stream", headers=headers)
        self._frames = frames
        self._send_timeout_s = send_timeout_s
        self._closing = closing
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = finished = False

        async def bounded_send(message: Message) -> None:
            nonlocal started, finished
            async with asyncio.timeout(self._send_timeout_s):
                await send(message)
            started = True
            finished = message["type"] == "http.response.body" and not message.get("more_body")

        streaming = asyncio.ensure_future(super().__call__(scope, receive, bounded_send))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({streaming, closing}, return_when=asyncio.FIRST_COMPLETED)
            if not streaming.done():
                streaming.cancel()
                # Not `await streaming`: a cancellation of this task must not be taken for it.
                await asyncio.wait({streaming})
            if not streaming.cancelled():
                # It ended by itself (meanwhile, perhaps): its error, if any, is this one's.
                streaming.result()
            elif started and not finished:
                await bounded_send({"type": "http.response.body", "body": b""})
        except TimeoutError:
            log.info(
                "event-stream subscriber dropped: it took no data for %.1f s",
                self._send_timeout_s,
            )
        finally:
            closing.cancel()
            if not streaming.done():
                # Cancelled itself (uvicorn's graceful timeout): the generator is the
                # streaming task's until that task has ended (`aclose` would raise).
                streaming.cancel()
                await asyncio.wait({streaming})
            try:
                await self._frames.aclose()
            finally:
                if self._on_close is not None:
                    self._on_close()
