"""The ended calls one instance keeps: their events for the retention time, records and events
within one byte budget."""

from __future__ import annotations

from service.calls.record import Call
from service.calls.retention import EndedCalls
from service.calls.stream import CallEventStream
from signaling.ids import CallId
from signaling.realtime import SessionConfig

RETENTION_S = 300.0


def _call(call_id: str) -> Call:
    return Call(call_id=CallId(call_id), config=SessionConfig(), owner="a", state="ended")


def _events(text: str) -> CallEventStream:
    stream = CallEventStream(history=10)
    stream.publish("transcript.done", {"role": "user", "item_id": "item_1", "text": text})
    stream.publish("call.state", {"state": "ended", "reason": "hangup"})
    stream.close()
    return stream


def _kept(max_bytes: int = 1 << 20) -> EndedCalls:
    return EndedCalls(max_calls=10, max_bytes=max_bytes, events_for_s=RETENTION_S)


def _record_bytes(call: Call) -> int:
    alone = _kept()
    alone.keep(call, None, 0.0)
    return alone.total_bytes


def test_an_ended_calls_events_are_served_until_the_retention_time_has_passed() -> None:
    ended = _kept()
    call, events = _call("rtc_a"), _events("hello")
    ended.keep(call, events, 100.0)
    assert ended.events("rtc_a", 100.0 + RETENTION_S - 0.001) is events
    assert ended.events("rtc_a", 100.0 + RETENTION_S) is None


def test_an_ended_calls_record_outlives_its_events() -> None:
    ended = _kept()
    call = _call("rtc_a")
    ended.keep(call, _events("hello"), 100.0)
    ended.events("rtc_a", 100.0 + RETENTION_S)
    assert ended.get("rtc_a") is call


def test_events_count_against_the_budget_until_they_are_dropped() -> None:
    ended = _kept()
    call, events = _call("rtc_a"), _events("hello")
    ended.keep(call, events, 100.0)
    assert ended.total_bytes == _record_bytes(call) + events.history_bytes()
    ended.events("rtc_a", 100.0 + RETENTION_S)
    assert ended.total_bytes == _record_bytes(call)


def test_events_past_their_time_are_dropped_before_a_record_is_evicted() -> None:
    older, newer = _call("rtc_a"), _call("rtc_b")
    events = _events("x" * 1000)
    # Room for both records and one call's events, not two.
    ended = _kept(2 * _record_bytes(older) + events.history_bytes() + 100)
    ended.keep(older, events, 100.0)
    ended.keep(newer, _events("x" * 1000), 100.0 + RETENTION_S)
    assert ended.get("rtc_a") is older
    assert ended.events("rtc_b", 100.0 + RETENTION_S) is not None


def test_the_oldest_call_is_evicted_with_its_events_when_the_budget_is_passed() -> None:
    older, newer = _call("rtc_a"), _call("rtc_b")
    events = _events("x" * 1000)
    ended = _kept(2 * _record_bytes(older) + events.history_bytes() + 100)
    ended.keep(older, events, 100.0)
    ended.keep(newer, _events("x" * 1000), 101.0)
    assert ("rtc_a" in ended, ended.events("rtc_a", 101.0)) == (False, None)
    assert ended.total_bytes == _record_bytes(newer) + events.history_bytes()
