"""A call's event stream: what `GET /v1/calls/{id}/events` serves as Server-Sent Events.

`CallEventStream` keeps the stream in this process (one instance, no Redis). In a cluster the
owner's `ClusterEventStream` also hands every event to the `CallStore`, which logs it in a Redis
stream, and `follow` serves that log from any instance: `Last-Event-ID` (a stream entry id)
resumes anywhere, across a takeover too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from service.calls.errors import CallError
from service.calls.store import CallStore, KeptEvents, LoggedEvent
from service.redis_client import redis_failures, redis_waited_out
from service.redis_reports import log_redis_failure

log = logging.getLogger("callbridge.calls")

GAP_EVENT = "stream.gap"
"""The event that tells a subscriber it missed events no longer kept: first on a stream resumed
from a `Last-Event-ID` older than the history, or (Redis) where a follower fell behind the
log's trimming. Its id is the point the stream goes on after."""


def _gap(last_event_id: str, resumes_after: str) -> dict[str, str]:
    return {"last_event_id": last_event_id, "resumes_after": resumes_after}


def _gap_event(first_kept: int | None, after: int, resumed: bool) -> StreamEvent | None:
    """The `GAP_EVENT` a subscriber resumed from `after` is sent first, when the history
    (whose first sequence number is `first_kept`, None when empty) no longer holds what
    followed it."""
    dropped = first_kept - 1 if first_kept is not None else 0
    if resumed and after < dropped:
        return StreamEvent(dropped, GAP_EVENT, _gap(str(after), str(dropped)))
    return None


class UnissuedEventId(ValueError):
    """A `Last-Event-ID` beyond the last id the stream has issued."""


def _check_issued(after: int, last_seq: int) -> None:
    if after > last_seq:
        raise UnissuedEventId(f"event {after} was never sent")


class EventLogUnavailable(CallError):
    """The call's event log cannot be read now (Redis unreachable)."""


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
        if not self._subscribers:
            return
        for queue in list(self._subscribers):
            if queue.qsize() >= self._max_lag:
                self._subscribers.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(event)

    def check_resumable(self, after: int) -> None:
        """Raise `UnissuedEventId` when `after` is beyond the last sequence number published."""
        _check_issued(after, self._seq)

    def kept(self) -> KeptEventStream:
        """The history as a `KeptEventStream`, for serving once the stream is closed."""
        return KeptEventStream(self._history, self._seq)

    def close(self) -> None:
        """End every subscription after what was already published."""
        self.closed = True
        for queue in self._subscribers:
            queue.put_nowait(None)
        self._subscribers.clear()

    async def subscribe(
        self, after: int = 0, *, keepalive_s: float | None = None, resumed: bool = False
    ) -> AsyncIterator[StreamEvent | None]:
        """Events with a sequence number above `after` (history first), until closed.

        With `keepalive_s`, None is yielded whenever that long passes without an event. With
        `resumed` (`after` is the client's `Last-Event-ID`), a `GAP_EVENT` comes first when
        events after `after` are no longer in the history; its `seq` is the last one dropped.
        """
        queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue()
        # Decided with the history copied below, in one step: nothing can drop in between.
        gap = _gap_event(self._history[0].seq if self._history else None, after, resumed)
        if gap is not None:
            queue.put_nowait(gap)
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


class KeptEventStream:
    """A closed stream's history, each event's data kept as compact JSON text: an ended
    call's events are kept for minutes within a byte budget measured as JSON, and as Python
    objects they take about four times more."""

    __slots__ = ("_events", "_seq")

    def __init__(self, history: Iterable[StreamEvent], last_seq: int) -> None:
        self._events = tuple(
            (event.seq, event.name, json.dumps(event.data, separators=(",", ":")))
            for event in history
        )
        self._seq = last_seq

    def history_bytes(self) -> int:
        """What the kept events measure: each one's name and its data as compact JSON, in
        bytes (the JSON is ASCII)."""
        return sum(len(name) + len(data) for _, name, data in self._events)

    def check_resumable(self, after: int) -> None:
        """Raise `UnissuedEventId` when `after` is beyond the last sequence number published."""
        _check_issued(after, self._seq)

    async def subscribe(
        self, after: int = 0, *, keepalive_s: float | None = None, resumed: bool = False
    ) -> AsyncIterator[StreamEvent | None]:
        """As `CallEventStream.subscribe` on the closed stream: the kept events above `after`
        (a `GAP_EVENT` first when some were dropped), then the end. `keepalive_s` is taken
        for the same signature: a closed stream never waits."""
        gap = _gap_event(self._events[0][0] if self._events else None, after, resumed)
        if gap is not None:
            yield gap
        for seq, name, data in self._events:
            if seq > after:
                yield StreamEvent(seq, name, json.loads(data))


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


# Redis stream ids are `ms-seq`, two unsigned 64-bit numbers (https://redis.io/docs/latest/develop/data-types/streams/#entry-ids).
_MAX_ID_PART = 2**64 - 1


def _entry_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


def _just_before(entry_id: str) -> str:
    ms, seq = _entry_id(entry_id)
    return f"{ms}-{seq - 1}" if seq > 0 else f"{ms - 1}-{_MAX_ID_PART}"


async def check_resumable(store: CallStore, call_id: str, after: str) -> bool:
    """Whether the call's log is over at log id `after` (`ms-seq`, a client's
    `Last-Event-ID`): `after` is the event that ended the call, so nothing follows it and
    `follow` would wait forever.

    Raises `UnissuedEventId` when `after` is beyond the last id the log issued,
    `EventLogUnavailable` when Redis cannot be reached.
    """
    try:
        newest = await store.last_event(call_id)
    except redis_failures() as exc:
        raise EventLogUnavailable(f"the call's event log cannot be read: {exc}") from None
    newest_id = _entry_id(newest.event_id) if newest is not None else (0, 0)
    if _entry_id(after) > newest_id:
        raise UnissuedEventId(f"event {after} was never sent")
    return newest is not None and newest.final and _entry_id(after) == newest_id


def _trimmed_after(kept: KeptEvents | None, after: str) -> str | None:
    """The id just before the oldest event kept, when events after `after` may have been
    trimmed; else None. Only the oldest kept id is known, not the newest trimmed one, so an
    `after` that was the very last event trimmed counts as a gap too."""
    if kept is None or not kept.may_be_trimmed:
        return None
    resumes_after = _just_before(kept.oldest)
    return resumes_after if _entry_id(after) < _entry_id(resumes_after) else None


async def follow(
    store: CallStore,
    call_id: str,
    after: str,
    *,
    keepalive_s: float,
    retry_s: float = 0.5,
    resumed: bool = False,
) -> AsyncGenerator[LoggedEvent | None, None]:
    """A call's logged events after id `after` (`0`: all kept), until the one that ends the
    call; None whenever `keepalive_s` passes without one. A Redis outage is waited out; Redis
    refusing a read (a key of the wrong type, say) ends the stream, logged, as reading again
    would only be refused again.

    When events after the last one delivered (or after `after`, with `resumed`: it is the
    client's `Last-Event-ID`) were trimmed before they could be read, a `GAP_EVENT` comes
    first; its id is just before the oldest event kept. Each batch is read at one instant
    with the log's oldest id, so no event is trimmed unseen between the two.
    """
    block_ms = max(1, round(keepalive_s * 1000))
    report_gaps = resumed
    while True:
        try:
            kept, events = await store.read_after(call_id, after)
            if not events and not await store.wait_for_events(call_id, after, block_ms):
                yield None
                continue
        except redis_waited_out():
            await asyncio.sleep(retry_s)
            yield None
            continue
        except redis_failures() as exc:
            log_redis_failure(log, exc, "event stream of call %s ended: %s", call_id)
            return
        # Woken by new events: they are read on the next turn, with the log's bounds.
        if not events:
            continue
        gap = _trimmed_after(kept, after) if report_gaps else None
        if gap is not None:
            yield LoggedEvent(gap, GAP_EVENT, _gap(after, gap))
        for event in events:
            after = event.event_id
            report_gaps = True
            yield event
            if event.final:
                return
