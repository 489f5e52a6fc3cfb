"""A call's event stream: what `GET /v1/calls/{id}/events` serves as Server-Sent Events."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One SSE message: `id`, `event` name and JSON `data`."""

    seq: int
    name: str
    data: dict[str, Any]


class CallEventStream:
    """Fans events out to subscribers and keeps recent history for late or resuming ones.

    A subscriber that falls `max_lag` events behind is cut off rather than slowing the call:
    it can reconnect with `Last-Event-ID` and resume from history.
    """

    def __init__(self, *, history: int = 1000, max_lag: int = 1000) -> None:
        self._history: deque[StreamEvent] = deque(maxlen=history)
        self._subscribers: set[asyncio.Queue[StreamEvent | None]] = set()
        # None in a subscriber's queue means "stream over" (closed, or the subscriber lagged).
        self._seq = 0
        self._max_lag = max_lag
        self.closed = False

    def publish(self, name: str, data: dict[str, Any]) -> None:
        """Send an event to every subscriber (never blocks)."""
        if self.closed:
            return
        self._seq += 1
        event = StreamEvent(self._seq, name, data)
        self._history.append(event)
        for queue in list(self._subscribers):
            if queue.qsize() >= self._max_lag:
                self._subscribers.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(event)

    def close(self) -> None:
        """End every subscription after what was already published."""
        self.closed = True
        for queue in self._subscribers:
            queue.put_nowait(None)
        self._subscribers.clear()

    async def subscribe(
        self, after: int = 0, *, keepalive_s: float | None = None
    ) -> AsyncIterator[StreamEvent | None]:
        """Events with a sequence number above `after` (history first), until closed.

        With `keepalive_s`, None is yielded whenever that long passes without an event.
        """
        queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue()
        for past in self._history:
            if past.seq > after:
                queue.put_nowait(past)
        if self.closed:
            queue.put_nowait(None)
        else:
            self._subscribers.add(queue)
        try:
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), keepalive_s)
                except TimeoutError:
                    yield None
                    continue
                if event is None:
                    return
                yield event
        finally:
            self._subscribers.discard(queue)
