"""A call's event stream: what `GET /v1/calls/{id}/events` serves as Server-Sent Events.

`CallEventStream` keeps the stream in this process (one instance, no Redis). In a cluster the
owner's `ClusterEventStream` also hands every event to the `CallStore`, which logs it in a Redis
stream, and `follow` serves that log from any instance: `Last-Event-ID` (a stream entry id)
resumes anywhere, across a takeover too.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from service.calls.store import CallStore, LoggedEvent


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


class ClusterEventStream(CallEventStream):
    """A `CallEventStream` whose events are also kept for the `CallStore` to log.

    `pending` holds events not yet saved; `on_publish` is told (with no arguments) when an
    event is added, so the owner saves them soon. The local history is kept small: subscribers
    read the Redis log.
    """

    def __init__(self, on_publish: Callable[[], None]) -> None:
        super().__init__(history=1, max_lag=1)
        self.pending: list[tuple[str, dict[str, Any]]] = []
        self._on_publish = on_publish

    def publish(self, name: str, data: dict[str, Any]) -> None:
        """Keep the event for the log (never blocks)."""
        if self.closed:
            return
        super().publish(name, data)
        self.pending.append((name, data))
        self._on_publish()

    def take_pending(self) -> list[tuple[str, dict[str, Any]]]:
        """The events not yet saved, handed to the caller (who puts them back on failure)."""
        taken, self.pending = self.pending, []
        return taken

    def put_back(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Events whose save failed: saved first next time, in their order."""
        self.pending = events + self.pending


async def follow(
    store: CallStore, call_id: str, after: str, *, keepalive_s: float, retry_s: float = 0.5
) -> AsyncIterator[LoggedEvent | None]:
    """A call's logged events after id `after` (`0`: all kept), until the one that ends the
    call; None whenever `keepalive_s` passes without one. A Redis outage is waited out."""
    block_ms = max(1, round(keepalive_s * 1000))
    while True:
        try:
            events = await store.read_events(call_id, after, block_ms)
        except (RedisError, OSError):
            await asyncio.sleep(retry_s)
            yield None
            continue
        if not events:
            yield None
            continue
        for event in events:
            after = event.event_id
            yield event
            if event.final:
                return
