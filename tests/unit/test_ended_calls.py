"""The ended calls one instance keeps: their events for the retention time, records and events
within one byte budget."""

from __future__ import annotations

from service.calls.record import Call
from service.calls.retention import EndedCalls
from service.calls.stream import CallEventStream, KeptEventStream, StreamEvent
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
    assert ended.events("rtc_a", 100.0 + RETENTION_S - 0.001) is not None
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
    assert ended.total_bytes == _record_bytes(call) + events.kept().history_bytes()
    ended.events("rtc_a", 100.0 + RETENTION_S)
    assert ended.total_bytes == _record_bytes(call)


def test_events_past_their_time_are_dropped_before_a_record_is_evicted() -> None:
    older, newer = _call("rtc_a"), _call("rtc_b")
    events = _events("x" * 1000)
    # Room for both records and one call's events, not two.
    ended = _kept(2 * _record_bytes(older) + events.kept().history_bytes() + 100)
    ended.keep(older, events, 100.0)
    ended.keep(newer, _events("x" * 1000), 100.0 + RETENTION_S)
    assert ended.get("rtc_a") is older
    assert ended.events("rtc_b", 100.0 + RETENTION_S) is not None


def test_the_oldest_call_is_evicted_with_its_events_when_the_budget_is_passed() -> None:
    older, newer = _call("rtc_a"), _call("rtc_b")
    events = _events("x" * 1000)
    ended = _kept(2 * _record_bytes(older) + events.kept().history_bytes() + 100)
    ended.keep(older, events, 100.0)
    ended.keep(newer, _events("x" * 1000), 101.0)
    assert ("rtc_a" in ended, ended.events("rtc_a", 101.0)) == (False, None)
    assert ended.total_bytes == _record_bytes(newer) + events.kept().history_bytes()


async def _replayed(
    stream: CallEventStream | KeptEventStream, after: int, resumed: bool
) -> list[StreamEvent | None]:
    return [event async for event in stream.subscribe(after, resumed=resumed)]


async def test_a_kept_stream_replays_what_its_closed_stream_would() -> None:
    events = _events("hello")
    assert await _replayed(events.kept(), 1, True) == await _replayed(events, 1, True)
    assert await _replayed(events.kept(), 0, False) == await _replayed(events, 0, False)


async def test_a_kept_stream_resumed_from_before_its_history_starts_with_a_gap() -> None:
    stream = CallEventStream(history=2)
    for n in range(5):
        stream.publish("transcript.delta", {"n": n})
    stream.close()
    replayed = await _replayed(stream.kept(), 1, True)
    assert [(event.seq, event.name) for event in replayed if event is not None] == [
        (3, "stream.gap"),
        (4, "transcript.delta"),
        (5, "transcript.delta"),
    ]


def test_a_kept_stream_measures_its_events_as_json() -> None:
    events = _events("hello")
    kept = events.kept()
    assert kept.history_bytes() == len("transcript.done") + len(
        '{"role":"user","item_id":"item_1","text":"hello"}'
    ) + len("call.state") + len('{"state":"ended","reason":"hangup"}')
