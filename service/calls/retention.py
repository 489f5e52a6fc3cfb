"""`EndedCalls`: the ended calls one instance keeps for `GET /v1/calls/{id}`, and, without
Redis, their last events for `GET /v1/calls/{id}/events`, within one count and one byte budget.

With Redis, an ended call's events are read from its Redis stream, which expires with its state
(`CallStore`); on one instance they are kept here, so a subscriber that dropped just before the
end can still resume with `Last-Event-ID` (WHATWG HTML, "Server-sent events",
https://html.spec.whatwg.org/multipage/server-sent-events.html).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass

from service.calls.record import Call
from service.calls.stream import CallEventStream, KeptEventStream


@dataclass(slots=True)
class _Kept:
    call: Call
    record_bytes: int
    events: KeptEventStream | None
    events_bytes: int


class EndedCalls:
    """At most `max_calls` ended calls, whose records and events together measure at most
    `max_bytes` as JSON; the oldest ended go first. A call's events are kept `events_for_s`
    seconds from its end (its record stays until evicted); a call larger than the whole
    budget is not kept. Times are `time.monotonic()` seconds, passed in.
    """

    def __init__(self, *, max_calls: int, max_bytes: int, events_for_s: float) -> None:
        self._max_calls = max_calls
        self._max_bytes = max_bytes
        self._events_for_s = events_for_s
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        # When each kept event stream is due to go, in the order the calls ended (so in due
        # order too: the retention time is one for all).
        self._events_until: OrderedDict[str, float] = OrderedDict()
        self.total_bytes = 0
        """What the kept records and events measure as JSON, in bytes."""

    def keep(self, call: Call, events: CallEventStream | None, now: float) -> None:
        """Keep an ended `call` (and its closed event stream, if any), evicting the oldest
        ended calls as the count and the budget require.

        The record is measured as `GET /v1/calls/{id}` would serve it, each event as its name
        and JSON data.
        """
        self._expire(now)
        self._forget(call.call_id)
        record_bytes = len(json.dumps(call.to_json(full=True), separators=(",", ":")))
        kept_events = events.kept() if events is not None else None
        events_bytes = kept_events.history_bytes() if kept_events is not None else 0
        self._kept[call.call_id] = _Kept(call, record_bytes, kept_events, events_bytes)
        self.total_bytes += record_bytes + events_bytes
        if events is not None:
            self._events_until[call.call_id] = now + self._events_for_s
        while self._kept and (
            len(self._kept) > self._max_calls or self.total_bytes > self._max_bytes
        ):
            self._forget(next(iter(self._kept)))

    def get(self, call_id: str) -> Call | None:
        """The kept record of an ended call, or None."""
        kept = self._kept.get(call_id)
        return kept.call if kept is not None else None

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._kept

    def events(self, call_id: str, now: float) -> KeptEventStream | None:
        """The kept (closed) event stream of an ended call; None once its time has passed,
        the call was evicted, or none was kept."""
        self._expire(now)
        kept = self._kept.get(call_id)
        return kept.events if kept is not None else None

    def _expire(self, now: float) -> None:
        while self._events_until:
            call_id, until = next(iter(self._events_until.items()))
            if until > now:
                return
            del self._events_until[call_id]
            kept = self._kept[call_id]
            self.total_bytes -= kept.events_bytes
            kept.events, kept.events_bytes = None, 0

    def _forget(self, call_id: str) -> None:
        kept = self._kept.pop(call_id, None)
        if kept is None:
            return
        self._events_until.pop(call_id, None)
        self.total_bytes -= kept.record_bytes + kept.events_bytes
