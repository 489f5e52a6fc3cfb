"""Provider text in tool calls and errors is bounded where it enters the call core.

A hostile provider can send megabyte tool names, prompts, call ids and error messages; none
of them may reach the call's state, its handoffs, its record or its log lines at that size.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from service.calls.record import Call
from service.calls.reporting import REPORTS, CallReporter
from service.calls.stream import CallEventStream
from signaling.ids import CallId
from signaling.realtime.actions import (
    Action,
    EndCall,
    EnqueueHandoff,
    LimitReached,
    ReportError,
    SendEvent,
)
from signaling.realtime.client_events import SessionConfig
from signaling.realtime.events import MalformedEvent, parse_server_event
from signaling.realtime.limits import MAX_ID_CHARS, CallLimits, clip, utf8_size
from signaling.realtime.state import CallState

CALL_ID = "rtc_caps"
MB = 1_000_000
LIMITS = CallLimits()
SECRET = "whsec_abcdefghijklmnopqrstuvwxyz0123"


def open_state(limits: CallLimits = LIMITS) -> CallState:
    count = iter(range(1, 100_000))
    state = CallState(
        CALL_ID,
        SessionConfig(instructions="Be brief."),
        limits=limits,
        new_item_id=lambda: f"ctl_{next(count)}",
        jitter=lambda: 0.0,
        secrets=[SECRET],
    )
    state.start(0.0)
    state.link_opened(0.0)
    return state


def response_done(n: int, name: str = "background_agent", **fields: Any) -> str:
    item = {
        "id": f"item_{n}",
        "type": "function_call",
        "status": "completed",
        "call_id": f"call_{n}",
        "name": name,
        "arguments": json.dumps({"prompt": "run the tests"}),
        **fields,
    }
    response = {"id": f"resp_{n}", "status": "completed", "output": [item]}
    return json.dumps({"type": "response.done", "response": response})


def big_prompt(n: int) -> str:
    return response_done(n, arguments=json.dumps({"prompt": "p" * MB}))


def outputs(actions: Iterable[Action]) -> list[str]:
    return [
        a.payload["item"]["output"]
        for a in actions
        if isinstance(a, SendEvent) and a.payload["type"] == "conversation.item.create"
    ]


def handoffs(actions: Iterable[Action]) -> list[EnqueueHandoff]:
    return [a for a in actions if isinstance(a, EnqueueHandoff)]


def errors(actions: Iterable[Action]) -> list[ReportError]:
    return [a for a in actions if isinstance(a, ReportError)]


def limits_hit(actions: Iterable[Action]) -> list[LimitReached]:
    return [a for a in actions if isinstance(a, LimitReached)]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def reporter() -> tuple[CallReporter, list[str]]:
    """A reporter over a fresh record, and the log lines it writes (at every level)."""
    logger = logging.getLogger("test_provider_text_caps")
    logger.propagate = False
    handler = _Lines()
    logger.handlers = [handler]
    logger.setLevel(logging.DEBUG)
    call = Call(CallId(CALL_ID), SessionConfig(), owner="here")
    adapter = logging.LoggerAdapter(logger)
    return CallReporter(call, CallEventStream(), adapter, 0.0), handler.lines


def apply(target: CallReporter, actions: Iterable[Action]) -> None:
    for action in actions:
        if isinstance(action, EnqueueHandoff):
            target.handoff_queued(action.delegation)
        elif isinstance(action, REPORTS):
            target.apply(action)


# Prompts


def test_a_megabyte_prompt_is_refused_not_handed_off() -> None:
    actions = open_state().feed_raw(big_prompt(1), 0.0)
    assert handoffs(actions) == []
    [output] = outputs(actions)
    assert "shorter prompt" in output
    assert utf8_size(output) < 1000
    assert LimitReached("handoff_request_bytes", LIMITS.max_request_bytes) in actions


def test_a_megabyte_prompt_leaves_no_megabyte_in_the_record() -> None:
    target, _ = reporter()
    apply(target, open_state().feed_raw(big_prompt(1), 0.0))
    assert target.call.handoffs == {}
    assert len(json.dumps(target.call.to_json())) < 10_000
    assert target.call.limits_reached == {"handoff_request_bytes": LIMITS.max_request_bytes}


def test_a_prompt_at_the_cap_is_handed_off_unchanged() -> None:
    prompt = "é" * (LIMITS.max_request_bytes // 2)
    arguments = json.dumps({"prompt": prompt}, ensure_ascii=False)
    [handoff] = handoffs(open_state().feed_raw(response_done(1, arguments=arguments), 0.0))
    assert handoff.delegation.request == prompt


def test_a_normal_prompt_is_handed_off_unchanged_and_recorded() -> None:
    target, _ = reporter()
    actions = open_state().feed_raw(response_done(1), 0.0)
    apply(target, actions)
    [handoff] = handoffs(actions)
    assert handoff.delegation.request == "run the tests"
    assert [h.request for h in target.call.handoffs.values()] == ["run the tests"]
    assert limits_hit(actions) == []


# Tool names


def test_a_megabyte_unknown_tool_name_is_cut_in_the_error_and_the_output() -> None:
    actions = open_state().feed_raw(response_done(1, name="n" * MB), 0.0)
    [error] = errors(actions)
    [output] = outputs(actions)
    assert utf8_size(error.message) <= LIMITS.max_error_bytes
    assert f"cut: {MB} bytes" in error.message
    assert utf8_size(output) < 1000
    assert f"cut: {MB} bytes" in output
    assert LimitReached("tool_name_bytes", LIMITS.max_name_bytes) in actions


def test_a_megabyte_unknown_tool_name_keeps_the_record_and_log_line_small() -> None:
    target, lines = reporter()
    apply(target, open_state().feed_raw(response_done(1, name="n" * MB), 0.0))
    assert len(json.dumps(target.call.to_json())) < 10_000
    assert lines
    assert max(len(line) for line in lines) <= LIMITS.max_error_bytes + 100


def test_a_tool_call_record_keeps_the_name_cut() -> None:
    state = open_state()
    state.feed_raw(response_done(1, name="n" * MB), 0.0)
    [call] = state.tool_calls
    assert utf8_size(call.name) <= LIMITS.max_name_bytes


def test_many_megabyte_tool_calls_keep_the_call_bounded() -> None:
    state = open_state()
    target, lines = reporter()
    for n in range(100):
        apply(target, state.feed_raw(big_prompt(n), 0.0))
        apply(target, state.feed_raw(response_done(1000 + n, name="n" * MB), 0.0))
    assert len(state.tool_calls) == 200
    assert len(json.dumps(state.snapshot())) < 2 * MB
    assert len(json.dumps(target.call.to_json())) < 400_000
    assert sum(len(line) for line in lines) < 500_000


# Call ids and item ids


def test_a_megabyte_call_id_is_reported_cut_and_not_answered() -> None:
    state = open_state()
    actions = state.feed_raw(response_done(1, call_id="c" * MB), 0.0)
    [error] = errors(actions)
    assert error.code == "tool_call_id_too_long"
    assert utf8_size(error.message) <= LIMITS.max_error_bytes
    assert str(MB) in error.message
    assert outputs(actions) == []
    assert handoffs(actions) == []
    assert state.tool_calls == ()
    assert LimitReached("tool_call_id_chars", MAX_ID_CHARS) in actions


def test_a_megabyte_item_id_makes_a_transcript_event_malformed() -> None:
    raw = json.dumps({"type": "response.output_text.delta", "item_id": "i" * MB, "delta": "hello"})
    event = parse_server_event(raw)
    assert isinstance(event, MalformedEvent)
    assert len(event.reason) < 200
    state = open_state()
    state.feed_raw(raw, 0.0)
    assert len(state.transcript) == 0


def test_a_megabyte_optional_id_reads_as_absent() -> None:
    raw = json.dumps({"type": "session.updated", "session": {"id": "s" * MB}})
    state = open_state()
    state.feed_raw(raw, 0.0)
    assert state.session_id is None


# Error messages and codes


def test_a_megabyte_error_message_and_code_are_cut() -> None:
    error = {"type": "server_error", "code": "c" * MB, "message": "m" * MB}
    actions = open_state().feed_raw(json.dumps({"type": "error", "error": error}), 0.0)
    [report] = errors(actions)
    assert report.code is not None
    assert utf8_size(report.code) <= LIMITS.max_name_bytes
    assert utf8_size(report.message) <= LIMITS.max_error_bytes
    assert LimitReached("error_bytes", LIMITS.max_error_bytes) in actions
    assert LimitReached("error_code_bytes", LIMITS.max_name_bytes) in actions


def test_a_short_error_message_is_unchanged() -> None:
    error = {"type": "server_error", "code": "oops", "message": "try again"}
    actions = open_state().feed_raw(json.dumps({"type": "error", "error": error}), 0.0)
    assert errors(actions) == [ReportError("oops", "try again")]
    assert limits_hit(actions) == []


def test_an_error_message_is_redacted_before_it_is_cut() -> None:
    # The secret straddles the cut: cutting first would leave most of it unrecognisable.
    head = "m" * (LIMITS.max_error_bytes - 40)
    message = head + SECRET + "m" * MB
    actions = open_state().feed_raw(json.dumps({"type": "error", "error": {"message": message}}))
    [report] = errors(actions)
    assert "abcdefghij" not in report.message
    assert utf8_size(report.message) <= LIMITS.max_error_bytes


def test_a_megabyte_terminal_error_ends_the_call_with_a_cut_message() -> None:
    error = {"code": "session_expired", "message": "m" * MB}
    actions = open_state().feed_raw(json.dumps({"type": "error", "error": error}), 0.0)
    [end] = [a for a in actions if isinstance(a, EndCall)]
    assert end.end.message is not None
    assert utf8_size(end.end.message) <= LIMITS.max_error_bytes


def test_clip_keeps_text_that_fits_and_marks_text_that_does_not() -> None:
    assert clip("short", 10) == "short"
    cut = clip("é" * 100, 50)
    assert utf8_size(cut) <= 50
    assert cut.endswith("[cut: 200 bytes]")
