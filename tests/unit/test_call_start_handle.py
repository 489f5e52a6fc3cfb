"""`CallStart.open()`: a started call is opened once, however often it is asked."""

from __future__ import annotations

from service.calls import CallStart
from service.calls.record import Call
from signaling.ids import CallId
from signaling.realtime import SessionConfig


def test_a_started_call_is_opened_once() -> None:
    opened: list[str] = []
    call = Call(call_id=CallId("rtc_1"), config=SessionConfig(), owner="cb-test", answered_at=0.0)
    started = CallStart(call, "v=0\r\n", lambda: opened.append(call.call_id))
    started.open()
    started.open()
    assert opened == ["rtc_1"]
