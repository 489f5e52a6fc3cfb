"""The call core owns the whole call: link, outbox, tool calls, responses, settings, ends.

No sockets: the link is reported to the core and its actions are read back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from signaling.realtime.actions import (
    Action,
    Connect,
    EndCall,
    EnqueueHandoff,
    EventObserved,
    HandoffDelivered,
    HandoffExpired,
    HangUp,
    LimitReached,
    PublishTranscript,
    ReportError,
    SendEvent,
    SleepUntil,
)
from signaling.realtime.client_events import SessionConfig
from signaling.realtime.end_reasons import CallEnd, EndReason
from signaling.realtime.limits import CallLimits
from signaling.realtime.link import ReconnectPolicy
from signaling.realtime.state import CallState

CALL_ID = "rtc_core"
CONFIG = SessionConfig(instructions="Be brief.")
KEY = "sk-live-0123456789abcdef"


def make_state(limits: CallLimits | None = None, config: SessionConfig = CONFIG) -> CallState:
    count = iter(range(1, 10_000))
    return CallState(
        CALL_ID,
        config,
        limits=limits
        or CallLimits(reconnect=ReconnectPolicy(max_attempts=4, base_delay_s=1, max_delay_s=4)),
        new_item_id=lambda: f"ctl_{next(count)}",
        jitter=lambda: 0.0,
        secrets=[KEY],
    )


def open_state(limits: CallLimits | None = None, config: SessionConfig = CONFIG) -> CallState:
    state = make_state(limits, config)
    assert state.start(0.0) == [Connect()]
    state.link_opened(0.0)
    state.feed_raw(frame("session.created", session={}), 0.0)
    return state


def frame(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})


def sent(actions: Iterable[Action]) -> list[dict[str, Any]]:
    return [a.payload for a in actions if isinstance(a, SendEvent)]


def types(actions: Iterable[Action]) -> list[str]:
    return [p["type"] for p in sent(actions)]


def reports(actions: Iterable[Action]) -> list[ReportError]:
    return [a for a in actions if isinstance(a, ReportError)]


def call_item(call_id: str, name: str = "background_agent", **fields: Any) -> dict[str, Any]:
    item = {
        "id": f"item_{call_id}",
        "type": "function_call",
        "status": "completed",
        "call_id": call_id,
        "name": name,
        "arguments": '{"prompt":"run the tests"}',
    }
    return {**item, **fields}


def call_done(call_id: str, name: str = "background_agent", **fields: Any) -> str:
    return frame("conversation.item.done", item=call_item(call_id, name, **fields))


def response_done(status: str = "completed", **details: Any) -> str:
    response: dict[str, Any] = {"id": "resp_1", "status": status, "output": []}
    if details:
        response["status_details"] = {"type": status, **details}
    return frame("response.done", response=response)


def error_for(payload: dict[str, Any], code: str, message: str = "refused") -> str:
    error = {"type": "invalid_request_error", "code": code, "message": message}
    return frame("error", error={**error, "event_id": payload["event_id"]})


# 1. The link: rejoin storms, bounded backoff, one session.update per connection


def test_every_client_event_carries_our_own_event_id() -> None:
    state = make_state()
    state.start(0.0)
    actions = state.link_opened(0.0) + state.inject_user_text("hi")
    ids = [p["event_id"] for p in sent(actions)]
    assert len(ids) == 3
    assert len(set(ids)) == 3


def test_a_connection_that_closes_before_any_event_counts_as_a_failed_attempt() -> None:
    state = make_state()
    state.start(0.0)
    state.link_opened(0.0)
    assert state.link_closed(1011, "upstream error", 0.0) == [SleepUntil(0.5)]
    assert state.tick(0.4) == []
    assert state.tick(0.5) == [Connect()]


def test_rejoin_storms_back_off_exponentially_within_the_bound() -> None:
    limits = CallLimits(reconnect=ReconnectPolicy(max_attempts=10, base_delay_s=1, max_delay_s=4))
    state = make_state(limits)
    state.start(0.0)
    now, waits = 0.0, []
    for _ in range(6):
        state.link_opened(now)
        (sleep,) = state.link_closed(1009, "message too big", now)
        assert isinstance(sleep, SleepUntil)
        waits.append(sleep.at - now)
        now = sleep.at
        assert state.tick(now) == [Connect()]
    assert waits == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]


def test_after_the_last_attempt_the_call_ends_sideband_lost_and_is_hung_up() -> None:
    state = open_state()
    state.link_closed(1006, "", 1.0)
    actions: list[Action] = []
    for now in (1.0, 2.0, 4.0, 8.0):
        state.tick(now)
        actions = state.join_failed(503, None, now)
    assert actions[0] == HangUp()
    (end,) = [a.end for a in actions if isinstance(a, EndCall)]
    assert end.reason is EndReason.SIDEBAND_LOST
    assert not end.failed
    assert state.tick(100.0) == []


def test_a_connection_that_delivered_events_is_rejoined_at_once() -> None:
    state = open_state()
    assert state.link_closed(1006, "", 5.0) == [Connect()]


def test_exactly_one_session_update_goes_out_on_each_connection() -> None:
    state = open_state()
    state.update_session(SessionConfig(instructions="Be brief.", voice="ash"))
    state.link_closed(1006, "", 1.0)
    state.update_session(SessionConfig(instructions="Be terse.", voice="ash"))
    assert types(state.link_opened(1.0)).count("session.update") == 1


# The outbox: a send fails, the link rejoins, every client event arrives exactly once


class Provider:
    """Receives client events per connection; echoes items; may break the link on a send."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail_next_sends = 0

    def deliver(self, state: CallState, actions: list[Action]) -> None:
        for action in actions:
            if not isinstance(action, SendEvent):
                continue
            if self.fail_next_sends:
                self.fail_next_sends -= 1
                state.send_failed(action.payload, 1.0)
                continue
            self.received.append(action.payload)
            item = action.payload.get("item")
            if item is not None:
                state.feed_raw(frame("conversation.item.added", item=item), 1.0)


def test_a_failed_send_reaches_the_provider_exactly_once_after_the_rejoin() -> None:
    provider = Provider()
    state = make_state()
    state.start(0.0)
    provider.deliver(state, state.link_opened(0.0))
    state.feed_raw(call_done("call_1"), 0.0)
    provider.deliver(state, state.inject_user_text("before the drop"))
    provider.fail_next_sends = 1
    provider.deliver(state, state.submit_result(f"{CALL_ID}:call_1", "All green."))
    provider.deliver(state, state.submit_progress(f"{CALL_ID}:call_1", "ignored after result"))
    provider.deliver(state, state.link_closed(1006, "", 1.0))
    provider.deliver(state, state.inject_user_text("while down"))
    provider.deliver(state, state.link_opened(2.0))
    items = [p["item"]["id"] for p in provider.received if p["type"] == "conversation.item.create"]
    assert items == ["ctl_1", "ctl_2", "ctl_3"]
    event_ids = [p["event_id"] for p in provider.received]
    assert len(event_ids) == len(set(event_ids))
    assert [p["type"] for p in provider.received].count("session.update") == 2


# 2. Response arbitration


def test_an_answer_refused_for_an_active_response_is_spoken_once_that_response_is_done() -> None:
    state = open_state()
    state.feed_raw(call_done("call_1"), 0.0)
    actions = state.submit_result(f"{CALL_ID}:call_1", "All green.")
    (create,) = [p for p in sent(actions) if p["type"] == "response.create"]
    refused = state.feed_raw(error_for(create, "conversation_already_has_active_response"))
    assert reports(refused) == []
    assert sent(refused) == []
    assert types(state.feed_raw(response_done())) == ["response.create"]


def test_an_answer_arriving_while_a_response_is_active_waits_for_it() -> None:
    state = open_state()
    state.feed_raw(call_done("call_1"), 0.0)
    state.feed_raw(frame("response.created", response={"id": "resp_1"}))
    assert types(state.submit_result(f"{CALL_ID}:call_1", "ok")) == ["conversation.item.create"]
    assert types(state.feed_raw(response_done())) == ["response.create"]


def test_a_handoff_counts_as_delivered_only_once_its_response_started() -> None:
    state = open_state()
    state.feed_raw(call_done("call_1"), 0.0)
    actions = state.submit_result(f"{CALL_ID}:call_1", "All green.")
    assert not [a for a in actions if isinstance(a, HandoffDelivered)]
    started = state.feed_raw(frame("response.created", response={"id": "resp_2"}))
    assert HandoffDelivered(f"{CALL_ID}:call_1") in started


def test_at_most_one_response_create_is_in_flight() -> None:
    state = open_state()
    assert types(state.inject_user_text("one")).count("response.create") == 1
    assert types(state.inject_user_text("two")).count("response.create") == 0


# 3 and 4. Tools we did not offer; truncated and malformed tool calls


def test_an_incomplete_function_call_item_is_not_handed_off_and_asks_for_a_retry() -> None:
    state = open_state()
    actions = state.feed_raw(call_done("call_1", status="incomplete", arguments='{"prom'))
    assert not [a for a in actions if isinstance(a, EnqueueHandoff)]
    assert [r.code for r in reports(actions)] == ["tool_call_incomplete"]
    (output,) = [p for p in sent(actions) if p["type"] == "conversation.item.create"]
    assert "again" in output["item"]["output"]
    assert types(actions)[-1] == "response.create"


def test_a_call_in_an_incomplete_response_is_not_handed_off() -> None:
    state = open_state()
    response: dict[str, Any] = {
        "id": "resp_1",
        "status": "incomplete",
        "output": [call_item("call_1")],
    }
    response["status_details"] = {"type": "incomplete", "reason": "max_output_tokens"}
    actions = state.feed_raw(frame("response.done", response=response))
    assert not [a for a in actions if isinstance(a, EnqueueHandoff)]
    assert [r.code for r in reports(actions)] == ["max_output_tokens", "tool_call_incomplete"]


def test_arguments_without_a_string_prompt_are_refused() -> None:
    state = open_state()
    for n, arguments in enumerate(['{"prompt": 3}', "[1]", '{"prompt":"cut', '"just text"']):
        actions = state.feed_raw(call_done(f"call_{n}", arguments=arguments))
        assert not [a for a in actions if isinstance(a, EnqueueHandoff)]
        assert [r.code for r in reports(actions)] == ["tool_call_malformed"]
    assert {c.status for c in state.tool_calls} == {"refused"}


# 5. Failed responses


def test_a_failed_response_is_reported_with_its_code_and_message() -> None:
    state = open_state()
    actions = state.feed_raw(
        response_done(
            "failed", error={"type": "server_error", "code": "insufficient_quota", "message": "x"}
        )
    )
    (report,) = reports(actions)
    assert report.code == "insufficient_quota"
    assert "failed: x" in report.message


def test_a_response_cut_short_by_the_user_talking_is_not_an_error() -> None:
    state = open_state()
    assert reports(state.feed_raw(response_done("cancelled", reason="turn_detected"))) == []


# 6. Refused session updates


def test_a_refused_session_update_is_reported_and_the_confirmed_settings_stay() -> None:
    state = open_state()
    state.feed_raw(frame("session.updated", session={"id": "sess_1"}))
    assert state.confirmed_config == CONFIG
    voice = SessionConfig(instructions="Be brief.", voice="ash")
    (update,) = sent(state.update_session(voice))
    assert update["session"] == {"type": "realtime", "audio": {"output": {"voice": "ash"}}}
    actions = state.feed_raw(error_for(update, "cannot_update_voice", "Cannot update voice"))
    assert [r.code for r in reports(actions)] == ["cannot_update_voice"]
    assert state.config == state.confirmed_config == CONFIG


def test_after_a_refused_update_a_later_one_sends_only_what_changed() -> None:
    state = open_state()
    state.feed_raw(frame("session.updated", session={"id": "sess_1"}))
    (update,) = sent(state.update_session(SessionConfig(instructions="Be brief.", voice="ash")))
    state.feed_raw(error_for(update, "cannot_update_voice"))
    (later,) = sent(state.update_session(SessionConfig(instructions="Be terse.")))
    assert later["session"] == {"type": "realtime", "instructions": "Be terse."}
    state.feed_raw(frame("session.updated", session={"id": "sess_1"}))
    assert state.confirmed_config == SessionConfig(instructions="Be terse.")


# 7. Sideband refused right after the call was created


def test_a_sideband_refused_before_it_was_ever_joined_fails_the_call_and_hangs_up() -> None:
    state = make_state()
    state.start(0.0)
    actions = state.join_failed(404, "call_id_not_found", 0.0, "No session found")
    assert actions == [
        HangUp(),
        EndCall(
            CallEnd(
                EndReason.SIDEBAND_REFUSED,
                failed=True,
                code="call_id_not_found",
                message="the provider refused the sideband (HTTP 404): No session found",
            )
        ),
    ]


def test_a_normal_close_then_a_404_on_the_rejoin_ends_the_call_as_a_remote_hangup() -> None:
    state = open_state()
    state.link_closed(1000, "call_ended", 1.0)
    actions = state.join_failed(404, "call_id_not_found", 1.0, "No session found")
    message = "the sideband closed normally and the rejoin was refused (HTTP 404 call_id_not_found)"
    assert actions == [EndCall(CallEnd(EndReason.REMOTE_HANGUP, message=message))]


def test_an_abnormal_close_then_a_404_on_the_rejoin_means_the_provider_ended_the_call() -> None:
    state = open_state()
    state.link_closed(1011, "upstream error", 1.0)
    (end,) = state.join_failed(404, None, 1.0)
    assert end == EndCall(CallEnd(EndReason.PROVIDER_ENDED, code="404", message="HTTP 404"))


def test_only_the_last_close_decides_what_a_404_on_the_rejoin_means() -> None:
    state = open_state()
    state.link_closed(1000, "", 1.0)
    state.link_opened(1.0)
    state.feed_raw(frame("session.updated", session={"id": "sess_1"}), 1.0)
    state.link_closed(None, "", 2.0)
    (end,) = state.join_failed(404, "call_id_not_found", 2.0)
    assert isinstance(end, EndCall)
    assert end.end.reason == EndReason.PROVIDER_ENDED


# Idle and maximum duration


def test_a_call_with_nothing_said_ends_idle_and_is_hung_up() -> None:
    state = open_state(CallLimits(idle_timeout_s=10, max_duration_s=100))
    said = frame(
        "conversation.item.input_audio_transcription.completed",
        item_id="item_1",
        content_index=0,
        transcript="hello",
    )
    state.feed_raw(said, 8.0)
    assert state.wake_at == 18.0
    assert state.tick(17.9) == []
    assert state.tick(18.0) == [HangUp(), EndCall(CallEnd(EndReason.IDLE_TIMEOUT))]


def test_a_call_reaching_its_maximum_duration_ends() -> None:
    state = open_state(CallLimits(idle_timeout_s=1000, max_duration_s=60))
    assert state.tick(60.0) == [HangUp(), EndCall(CallEnd(EndReason.MAX_DURATION))]


# Handoff deadlines: a handoff whose answer never comes fails instead of staying open

DEADLINE = CallLimits(handoff_deadline_s=30.0, idle_timeout_s=1000.0)
NO_ANSWER = "it did not answer within 30 s"


def outputs(actions: Iterable[Action]) -> list[str]:
    return [
        p["item"]["output"]
        for p in sent(actions)
        if p["type"] == "conversation.item.create" and p["item"]["type"] == "function_call_output"
    ]


def test_a_handoff_is_due_for_its_deadline_at_wake_at() -> None:
    state = open_state(DEADLINE)
    state.feed_raw(call_done("call_1"), 5.0)
    assert state.wake_at == 35.0


def test_a_handoff_without_a_result_by_its_deadline_gets_a_failure_output() -> None:
    state = open_state(DEADLINE)
    state.feed_raw(call_done("call_1"), 5.0)
    assert state.tick(34.9) == []
    actions = state.tick(35.0)
    assert HandoffExpired(f"{CALL_ID}:call_1", NO_ANSWER) in actions
    assert outputs(actions) == [f"The background agent failed: {NO_ANSWER}"]
    assert types(actions)[-1] == "response.create"
    assert state.open_handoffs == frozenset()


def test_a_result_after_the_deadline_is_not_sent_to_the_model() -> None:
    state = open_state(DEADLINE)
    state.feed_raw(call_done("call_1"), 5.0)
    state.tick(35.0)
    assert state.submit_result(f"{CALL_ID}:call_1", "late answer", 36.0) == []


def test_a_handoff_expires_once() -> None:
    state = open_state(DEADLINE)
    state.feed_raw(call_done("call_1"), 5.0)
    state.tick(35.0)
    assert state.tick(40.0) == []
    assert state.wake_at == 35.0 + 1000.0


def test_a_handoff_answered_in_time_has_no_deadline_left() -> None:
    state = open_state(DEADLINE)
    state.feed_raw(call_done("call_1"), 5.0)
    state.submit_result(f"{CALL_ID}:call_1", "All green.", 6.0)
    assert state.tick(35.0) == []
    assert state.wake_at == 6.0 + 1000.0


def test_progress_does_not_extend_a_handoffs_deadline() -> None:
    state = open_state(DEADLINE)
    state.feed_raw(call_done("call_1"), 5.0)
    state.submit_progress(f"{CALL_ID}:call_1", "still working", 30.0)
    assert HandoffExpired(f"{CALL_ID}:call_1", NO_ANSWER) in state.tick(35.0)


def test_a_steering_handoff_past_its_deadline_is_reported_to_the_model_as_failed() -> None:
    state = open_state(DEADLINE)
    state.feed_raw(call_done("call_1"), 5.0)
    state.feed_raw(call_done("call_2"), 10.0)
    state.submit_result(f"{CALL_ID}:call_1", "All green.", 11.0)
    actions = state.tick(40.0)
    assert HandoffExpired(f"{CALL_ID}:call_2", NO_ANSWER) in actions
    (message,) = [p["item"] for p in sent(actions) if p["type"] == "conversation.item.create"]
    assert message["content"][0]["text"] == f"[BACKEND] The background agent failed: {NO_ANSWER}"


def test_a_handoff_made_by_an_event_without_a_time_is_timed_from_the_next_tick() -> None:
    state = open_state(DEADLINE)
    state.feed_raw(call_done("call_1"))
    assert state.tick(7.0) == []
    assert state.wake_at == 37.0


def test_a_handoffs_deadline_survives_a_snapshot() -> None:
    state = open_state(DEADLINE)
    state.feed_raw(call_done("call_1"), 5.0)
    restored = CallState.restore(json.loads(json.dumps(state.snapshot())), limits=DEADLINE)
    restored.start(20.0)
    restored.link_opened(20.0)
    assert restored.wake_at == 35.0
    assert outputs(restored.tick(35.0)) == [f"The background agent failed: {NO_ANSWER}"]


def test_a_handoff_still_waiting_when_the_call_ends_is_closed_before_the_end() -> None:
    state = open_state(DEADLINE)
    state.feed_raw(call_done("call_1"), 5.0)
    actions = state.end(EndReason.HANGUP)
    expired = HandoffExpired(f"{CALL_ID}:call_1", "the call ended before it answered")
    assert actions == [HangUp(), expired, EndCall(CallEnd(EndReason.HANGUP))]


# Hostile provider text: redaction, metric labels, caps


def test_the_provider_key_quoted_in_an_error_is_redacted() -> None:
    state = open_state()
    error = {"code": "invalid_api_key", "message": f"Incorrect API key: {KEY} (sk-other-999999999)"}
    (report,) = reports(state.feed_raw(frame("error", error=error)))
    assert KEY not in report.message
    assert "sk-other" not in report.message


def test_unknown_event_types_share_one_metric_label() -> None:
    state = open_state()
    labels = {state.feed_raw(frame(f"made.up.{n}"))[0] for n in range(50)}
    assert labels == {EventObserved("unknown")}


def test_errors_past_the_cap_are_counted_and_the_cap_is_reported_once() -> None:
    state = open_state(CallLimits(max_errors=3))
    actions = [
        a for n in range(10) for a in state.feed_raw(frame("error", error={"message": f"{n}"}))
    ]
    assert len(reports(actions)) == 3
    assert [a for a in actions if isinstance(a, LimitReached)] == [LimitReached("errors", 3)]
    assert state.dropped_errors == 7


def test_transcript_text_past_the_byte_cap_is_dropped_and_reported_once() -> None:
    state = open_state(CallLimits(max_transcript_bytes=100))
    actions: list[Action] = []
    for n in range(5):
        delta = frame("response.output_audio_transcript.delta", item_id=f"i{n}", delta="x" * 40)
        actions += state.feed_raw(delta)
    assert len([a for a in actions if isinstance(a, PublishTranscript)]) == 2
    assert [a for a in actions if isinstance(a, LimitReached)] == [
        LimitReached("transcript_bytes", 100)
    ]
    assert state.transcript.size == 80


# Snapshots and gap repair


def test_a_snapshot_is_json_and_restores_with_the_link_not_yet_open() -> None:
    state = open_state()
    state.feed_raw(frame("session.updated", session={"id": "sess_1"}))
    state.feed_raw(call_done("call_1"), 0.0)
    snapshot = json.loads(json.dumps(state.snapshot()))
    restored = CallState.restore(snapshot)
    assert restored.link_status == "joining"
    assert restored.confirmed_config == CONFIG
    assert restored.open_handoffs == frozenset({"call_1"})
    assert snapshot["pending_handoffs"] == [f"{CALL_ID}:call_1"]


def test_a_tool_call_answered_before_a_restore_is_never_answered_again() -> None:
    state = open_state()
    state.feed_raw(call_done("call_1"), 0.0)
    state.submit_result(f"{CALL_ID}:call_1", "All green.")
    restored = CallState.restore(json.loads(json.dumps(state.snapshot())))
    restored.start(1.0)
    first = restored.link_opened(1.0)
    outputs = [p for p in sent(first) if p["type"] == "conversation.item.create"]
    assert [p["item"]["call_id"] for p in outputs] == ["call_1"], "resent once, same item id"
    assert restored.submit_result(f"{CALL_ID}:call_1", "again") == []
    assert restored.feed_raw(call_done("call_1")) == [EventObserved("conversation.item.done")]


def test_a_pending_handoff_gets_exactly_one_output_after_a_restore() -> None:
    state = open_state()
    state.feed_raw(call_done("call_1"), 0.0)
    restored = CallState.restore(json.loads(json.dumps(state.snapshot())))
    restored.start(1.0)
    restored.link_opened(1.0)
    first = restored.submit_result(f"{CALL_ID}:call_1", "done")
    assert [p["item"]["call_id"] for p in sent(first) if "item" in p] == ["call_1"]
    assert restored.submit_result(f"{CALL_ID}:call_1", "done") == []


def queued(actions: Iterable[Action]) -> list[EnqueueHandoff]:
    return [a for a in actions if isinstance(a, EnqueueHandoff)]


def test_a_restored_call_queues_its_handoffs_without_a_result_again_as_it_starts() -> None:
    state = open_state()
    (handed_off,) = queued(state.feed_raw(call_done("call_1"), 0.0))
    restored = CallState.restore(json.loads(json.dumps(state.snapshot())))
    assert queued(restored.start(1.0)) == [EnqueueHandoff(handed_off.delegation, again=True)]


def test_a_restored_call_queues_its_handoffs_again_before_it_joins() -> None:
    state = open_state()
    state.feed_raw(call_done("call_1"), 0.0)
    restored = CallState.restore(json.loads(json.dumps(state.snapshot())))
    actions = restored.start(1.0)
    assert [type(a) for a in actions] == [EnqueueHandoff, Connect]


def test_a_restored_call_queues_its_handoffs_again_only_once() -> None:
    state = open_state()
    state.feed_raw(call_done("call_1"), 0.0)
    restored = CallState.restore(json.loads(json.dumps(state.snapshot())))
    restored.start(1.0)
    assert queued(restored.start(2.0)) == []


def test_a_handoff_with_its_result_before_the_snapshot_is_not_queued_again() -> None:
    state = open_state()
    state.feed_raw(call_done("call_1"), 0.0)
    state.submit_result(f"{CALL_ID}:call_1", "All green.")
    restored = CallState.restore(json.loads(json.dumps(state.snapshot())))
    assert queued(restored.start(1.0)) == []


def test_a_handoff_past_its_deadline_at_the_restore_fails_rather_than_being_queued_again() -> None:
    state = open_state(DEADLINE)
    state.feed_raw(call_done("call_1"), 5.0)
    restored = CallState.restore(json.loads(json.dumps(state.snapshot())), limits=DEADLINE)
    actions = restored.start(40.0)
    assert queued(actions) == []
    assert HandoffExpired(f"{CALL_ID}:call_1", NO_ANSWER) in actions


def test_a_handoff_whose_texts_pass_the_transcript_cap_is_not_kept_for_a_successor() -> None:
    state = open_state(CallLimits(max_transcript_bytes=100))
    state.feed_raw(call_done("call_1", arguments=json.dumps({"prompt": "x" * 101})), 0.0)
    snapshot = json.loads(json.dumps(state.snapshot()))
    assert snapshot["pending_handoffs"] == [f"{CALL_ID}:call_1"]
    assert snapshot["pending_delegations"] == []


def test_a_handoff_is_awaited_until_its_result() -> None:
    state = open_state()
    state.feed_raw(call_done("call_1"), 0.0)
    awaited = state.awaits_result(f"{CALL_ID}:call_1")
    state.submit_result(f"{CALL_ID}:call_1", "All green.")
    assert (awaited, state.awaits_result(f"{CALL_ID}:call_1")) == (True, False)


def test_a_snapshot_from_before_delegations_were_kept_restores_and_queues_nothing_again() -> None:
    state = open_state()
    state.feed_raw(call_done("call_1"), 0.0)
    snapshot = json.loads(json.dumps(state.snapshot()))
    del snapshot["pending_delegations"]
    restored = CallState.restore(snapshot)
    assert queued(restored.start(1.0)) == []
    assert restored.open_handoffs == frozenset({"call_1"})


def test_after_a_rejoin_an_unknown_previous_item_is_retrieved() -> None:
    state = open_state()
    state.feed_raw(frame("conversation.item.added", item={"id": "item_a", "type": "message"}))
    state.link_closed(1006, "", 1.0)
    state.link_opened(1.0)
    gap = frame(
        "conversation.item.added",
        previous_item_id="item_missed",
        item={"id": "item_b", "type": "message", "role": "user"},
    )
    retrieve = [p for p in sent(state.feed_raw(gap)) if p["type"] == "conversation.item.retrieve"]
    assert [p["item_id"] for p in retrieve] == ["item_missed"]
    assert sent(state.feed_raw(gap)) == [], "asked once"


def test_a_retrieved_item_enters_the_transcript_in_place() -> None:
    state = open_state()
    state.link_closed(1006, "", 1.0)
    state.link_opened(1.0)
    later = frame(
        "conversation.item.input_audio_transcription.completed",
        item_id="item_b",
        content_index=0,
        transcript="and then?",
    )
    state.feed_raw(
        frame(
            "conversation.item.added",
            previous_item_id="item_a",
            item={"id": "item_b", "type": "message"},
        )
    )
    state.feed_raw(later)
    missed = {
        "id": "item_a",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_audio", "transcript": "It is done."}],
    }
    state.feed_raw(frame("conversation.item.retrieved", item=missed))
    assert [e.text for e in state.transcript.snapshot()] == ["It is done.", "and then?"]


def test_a_tool_call_found_by_gap_repair_is_handed_off_once() -> None:
    state = open_state()
    state.link_closed(1006, "", 1.0)
    state.link_opened(1.0)
    retrieved = frame("conversation.item.retrieved", item=call_item("call_gap"))
    handoffs = [a for a in state.feed_raw(retrieved) if isinstance(a, EnqueueHandoff)]
    assert [h.delegation.tool_call_id for h in handoffs] == ["call_gap"]
    assert not [a for a in state.feed_raw(call_done("call_gap")) if isinstance(a, EnqueueHandoff)]


def taken_over(state: CallState) -> CallState:
    """`state` carried on by another instance, from its saved snapshot, and joined."""
    restored = CallState.restore(json.loads(json.dumps(state.snapshot())))
    restored.start(1.0)
    restored.link_opened(1.0)
    return restored


def spoken_turn(item_id: str, previous_item_id: str) -> list[str]:
    """The item events of a user's spoken turn, as the API sends them: committed, then added."""
    item = {"id": item_id, "type": "message", "role": "user", "content": [{"type": "input_audio"}]}
    placed = {"previous_item_id": previous_item_id}
    return [
        frame("input_audio_buffer.committed", item_id=item_id, **placed),
        frame("conversation.item.added", item=item, **placed),
    ]


def test_a_spoken_turn_after_a_takeover_retrieves_the_unknown_item_before_it() -> None:
    state = taken_over(open_state())
    committed, added = spoken_turn("item_u2", previous_item_id="item_missed")
    retrieve = sent(state.feed_raw(committed))
    assert [(p["type"], p["item_id"]) for p in retrieve] == [
        ("conversation.item.retrieve", "item_missed")
    ]
    assert sent(state.feed_raw(added)) == [], "asked once"


def test_a_tool_call_made_while_nobody_held_the_call_is_handed_off_once() -> None:
    state = taken_over(open_state())
    at_the_provider = {"item_call_gap": call_item("call_gap")}
    handoffs: list[EnqueueHandoff] = []
    for raw in spoken_turn("item_u2", previous_item_id="item_call_gap"):
        for asked in sent(state.feed_raw(raw)):
            item = at_the_provider[asked["item_id"]]
            retrieved = state.feed_raw(frame("conversation.item.retrieved", item=item))
            handoffs += [a for a in retrieved if isinstance(a, EnqueueHandoff)]
    assert [h.delegation.tool_call_id for h in handoffs] == ["call_gap"]


def test_a_retrieved_item_naming_no_predecessor_follows_the_conversation_so_far() -> None:
    state = open_state()
    state.feed_raw(frame("conversation.item.added", item={"id": "item_u0", "type": "message"}))
    state.feed_raw(
        frame(
            "conversation.item.input_audio_transcription.completed",
            item_id="item_u0",
            content_index=0,
            transcript="hello",
        )
    )
    state = taken_over(state)
    for raw in spoken_turn("item_u2", previous_item_id="item_a1"):
        state.feed_raw(raw)
    state.feed_raw(
        frame(
            "conversation.item.input_audio_transcription.completed",
            item_id="item_u2",
            content_index=0,
            transcript="and then?",
        )
    )
    missed = {
        "id": "item_a1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_audio", "transcript": "It is done."}],
    }
    # As the API sends it: the item alone, without `previous_item_id`.
    state.feed_raw(frame("conversation.item.retrieved", item=missed))
    assert [e.text for e in state.transcript.snapshot()] == ["hello", "It is done.", "and then?"]


def test_a_rejoin_sends_only_what_changed_since_the_provider_confirmed() -> None:
    state = open_state()
    state.feed_raw(frame("session.updated", session={"id": "sess_1"}))
    state.link_closed(1006, "", 1.0)
    (update,) = sent(state.link_opened(1.0))
    assert update["session"] == {"type": "realtime"}
    state.link_closed(1006, "", 2.0)
    state.update_session(SessionConfig(instructions="Be terse."))
    (update,) = sent(state.link_opened(2.0))
    assert update["session"] == {"type": "realtime", "instructions": "Be terse."}
