"""The per-call state machine: recorded sideband sequences in, actions out."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signaling.realtime.actions import (
    Action,
    EndCall,
    EnqueueHandoff,
    EventObserved,
    HangUp,
    IgnoredEvent,
    PublishTranscript,
    ReportError,
    SendEvent,
    SessionReady,
    SessionSettings,
    SpeechActivity,
)
from signaling.realtime.client_events import SessionConfig, session_update
from signaling.realtime.delegation import Delegation
from signaling.realtime.end_reasons import CallEnd, EndReason
from signaling.realtime.state import CallState
from signaling.realtime.transcript import TranscriptEntry
from tests.unit.realtime_samples import (
    BETA_CALL,
    CODEX_E2E_HANDOFF,
    ENVELOPE_EXAMPLE_CALL,
    GA_CALL,
    LATE_USER_TRANSCRIPT,
)

CALL_ID = "rtc_u0_Dbq65nhak5eLjQZ73yhAy"
CONFIG = SessionConfig(instructions="Be brief.")
RESPONSE_CREATE = {"type": "response.create"}
STEER_ACK = "This was sent to steer the previous background agent task."


def control_ids() -> Iterator[str]:
    count = 0
    while True:
        count += 1
        yield f"ctl_{count}"


def new_state(config: SessionConfig = CONFIG) -> CallState:
    ids = control_ids()
    return CallState(CALL_ID, config, new_item_id=lambda: next(ids))


def joined_state(config: SessionConfig = CONFIG) -> CallState:
    state = new_state(config)
    state.start(0.0)
    state.link_opened(0.0)
    return state


def rejoin(state: CallState) -> list[Action]:
    """The link drops after delivering events, and a new connection opens."""
    state.link_closed(1006, "", 0.0)
    return state.link_opened(0.0)


def feed_all(state: CallState, frames: Iterable[str]) -> list[Action]:
    return [action for frame in frames for action in state.feed_raw(frame)]


def significant(actions: Iterable[Action]) -> list[Action]:
    return [
        strip_ids(action)
        for action in actions
        if not isinstance(action, EventObserved | SessionSettings)
    ]


def strip_ids(action: Action) -> Action:
    """`action` without our event id, which every client event carries."""
    if isinstance(action, SendEvent):
        return SendEvent({k: v for k, v in action.payload.items() if k != "event_id"})
    return action


def sent(actions: Iterable[Action]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in action.payload.items() if k != "event_id"}
        for action in actions
        if isinstance(action, SendEvent)
    ]


def delegations(actions: Iterable[Action]) -> list[Delegation]:
    return [action.delegation for action in actions if isinstance(action, EnqueueHandoff)]


def created_items(actions: Iterable[Action]) -> list[dict[str, Any]]:
    return [payload for payload in sent(actions) if payload["type"] == "conversation.item.create"]


def output(item_id: str, call_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {
            "id": item_id,
            "type": "function_call_output",
            "call_id": call_id,
            "output": text,
        },
    }


def user_text(item_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {
            "id": item_id,
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


def backend_message(item_id: str, text: str) -> dict[str, Any]:
    return user_text(item_id, f"[BACKEND] {text}")


def echo(payload: dict[str, Any], event_type: str = "conversation.item.added") -> str:
    """The provider's report that the item `payload` created is in the conversation."""
    return json.dumps({"type": event_type, "previous_item_id": None, "item": payload["item"]})


def function_call_item(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": f"item_{call_id}",
        "object": "realtime.item",
        "type": "function_call",
        "status": "completed",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def call_done(
    call_id: str, name: str = "background_agent", arguments: str = '{"prompt":"run the tests"}'
) -> str:
    """`conversation.item.done` completing a tool call."""
    item = function_call_item(call_id, name, arguments)
    return json.dumps({"type": "conversation.item.done", "event_id": "e", "item": item})


def output_item_done(call_id: str, arguments: str = '{"prompt":"run the tests"}') -> str:
    item = function_call_item(call_id, "background_agent", arguments)
    return json.dumps({"type": "response.output_item.done", "response_id": "resp_1", "item": item})


def arguments_done(call_id: str, arguments: str = '{"prompt":"run the tests"}') -> str:
    return json.dumps(
        {
            "type": "response.function_call_arguments.done",
            "response_id": "resp_1",
            "item_id": f"item_{call_id}",
            "output_index": 0,
            "call_id": call_id,
            "name": "background_agent",
            "arguments": arguments,
        }
    )


def response_created(response_id: str) -> str:
    return json.dumps({"type": "response.created", "response": {"id": response_id}})


def response_done(response_id: str) -> str:
    return json.dumps(
        {"type": "response.done", "response": {"id": response_id, "status": "completed"}}
    )


def user_said(item_id: str, text: str) -> str:
    return json.dumps(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": item_id,
            "content_index": 0,
            "transcript": text,
        }
    )


def typed_item(item_id: str, text: str) -> str:
    return json.dumps(
        {
            "type": "conversation.item.added",
            "previous_item_id": None,
            "item": {
                "id": item_id,
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            },
        }
    )


def handoff_id(tool_call_id: str) -> str:
    return f"{CALL_ID}:{tool_call_id}"


# Connection and session


def test_joining_sends_the_session_update_first() -> None:
    state = CallState(CALL_ID, CONFIG)
    assert sent(state.link_opened(0.0)) == [session_update(CONFIG)]


def test_sends_before_the_first_join_are_flushed_after_the_session_update() -> None:
    state = CallState(CALL_ID, CONFIG)
    assert state.inject_user_text("hello") == []
    actions = state.link_opened(0.0)
    assert sent(actions)[0]["type"] == "session.update"
    assert sent(actions)[1]["item"]["content"] == [{"type": "input_text", "text": "hello"}]
    assert sent(actions)[2:] == [RESPONSE_CREATE]


def test_sends_while_disconnected_wait_for_the_next_join() -> None:
    state = joined_state()
    feed_all(state, [call_done("call_1")])
    state.link_closed(1006, "", 0.0)
    assert state.submit_result(handoff_id("call_1"), "All green.") == []
    assert sent(state.link_opened(0.0)) == [
        session_update(CONFIG),
        output("ctl_1", "call_1", "All green."),
        RESPONSE_CREATE,
    ]


def test_a_rejoin_sends_the_queue_only_once() -> None:
    state = new_state()
    state.inject_user_text("hello")
    state.link_opened(0.0)
    state.feed_raw(typed_item("ctl_1", "hello"))
    state.link_closed(1006, "", 0.0)
    assert sent(state.link_opened(0.0)) == [session_update(CONFIG)]


def test_a_rejoin_does_not_wait_for_a_response_that_ended_unseen() -> None:
    state = joined_state()
    feed_all(state, [call_done("call_1"), response_created("resp_1")])
    answer = output("ctl_1", "call_1", "ok")
    assert sent(state.submit_result(handoff_id("call_1"), "ok")) == [answer]
    state.feed_raw(echo(answer))
    state.link_closed(1006, "", 0.0)
    assert sent(state.link_opened(0.0))[1:] == [RESPONSE_CREATE]


def test_updating_the_session_while_connected_sends_it() -> None:
    state = joined_state()
    text_config = SessionConfig(instructions="Be brief.", output_modality="text")
    assert sent(state.update_session(text_config)) == [session_update(text_config)]
    assert state.config == text_config


def test_updating_the_session_while_disconnected_applies_it_on_join() -> None:
    state = joined_state()
    state.link_closed(1006, "", 0.0)
    text_config = SessionConfig(instructions="Be brief.", output_modality="text")
    assert sent(state.update_session(text_config)) == []
    assert sent(state.link_opened(0.0)) == [session_update(text_config)]


def test_session_updated_makes_the_session_ready_with_its_id() -> None:
    state = joined_state()
    actions = significant(feed_all(state, GA_CALL[:2]))
    assert actions == [SessionReady("sess_u0_Dbpi8nhak5eLjQZ73yhAy")]
    assert state.session_id == "sess_u0_Dbpi8nhak5eLjQZ73yhAy"


def test_a_session_update_echo_without_id_keeps_the_known_id() -> None:
    state = joined_state()
    feed_all(state, GA_CALL[1:2])
    echo = json.dumps({"type": "session.updated", "session": {"type": "realtime"}})
    assert significant(state.feed_raw(echo)) == [SessionReady("sess_u0_Dbpi8nhak5eLjQZ73yhAy")]


# Items the provider has not confirmed


def test_a_message_the_provider_never_echoed_is_sent_again_after_a_rejoin() -> None:
    state = joined_state()
    state.inject_user_text("hello")
    state.link_closed(1006, "", 0.0)
    assert created_items(state.link_opened(0.0)) == [user_text("ctl_1", "hello")]


@pytest.mark.parametrize(
    "event_type",
    ["conversation.item.added", "conversation.item.created", "conversation.item.done"],
)
def test_a_message_the_provider_echoed_is_not_sent_again(event_type: str) -> None:
    state = joined_state()
    state.inject_user_text("hello")
    state.feed_raw(echo(user_text("ctl_1", "hello"), event_type))
    state.link_closed(1006, "", 0.0)
    assert sent(state.link_opened(0.0)) == [session_update(CONFIG)]


def test_the_echo_of_another_item_does_not_confirm_ours() -> None:
    state = joined_state()
    state.inject_user_text("hello")
    state.feed_raw(typed_item("item_t1", "hello"))
    state.link_closed(1006, "", 0.0)
    assert created_items(state.link_opened(0.0)) == [user_text("ctl_1", "hello")]


def test_a_progress_message_the_provider_never_echoed_is_sent_again_after_a_rejoin() -> None:
    state = joined_state()
    feed_all(state, [call_done("call_1")])
    state.submit_progress(handoff_id("call_1"), "Running tests")
    state.link_closed(1006, "", 0.0)
    assert created_items(state.link_opened(0.0)) == [backend_message("ctl_1", "Running tests")]


def test_an_unconfirmed_tool_output_is_sent_again_under_the_same_item_id() -> None:
    state = joined_state()
    feed_all(state, [call_done("call_1")])
    first = created_items(state.submit_result(handoff_id("call_1"), "All green."))
    state.link_closed(1006, "", 0.0)
    assert (
        created_items(state.link_opened(0.0)) == first == [output("ctl_1", "call_1", "All green.")]
    )


def test_resending_a_tool_output_does_not_answer_the_call_again() -> None:
    state = joined_state()
    feed_all(state, [call_done("call_1")])
    state.submit_result(handoff_id("call_1"), "All green.")
    state.link_closed(1006, "", 0.0)
    state.link_opened(0.0)
    assert state.answered == frozenset({"call_1"})
    assert state.submit_result(handoff_id("call_1"), "All green.") == []


def test_items_queued_while_disconnected_are_sent_once_on_the_next_join() -> None:
    state = joined_state()
    state.link_closed(1006, "", 0.0)
    state.inject_user_text("hello")
    assert sent(state.link_opened(0.0)) == [
        session_update(CONFIG),
        user_text("ctl_1", "hello"),
        RESPONSE_CREATE,
    ]


def test_unconfirmed_items_are_sent_again_before_the_queued_ones() -> None:
    state = joined_state()
    state.inject_user_text("first")
    state.link_closed(1006, "", 0.0)
    state.inject_user_text("second")
    assert sent(state.link_opened(0.0)) == [
        session_update(CONFIG),
        user_text("ctl_1", "first"),
        user_text("ctl_2", "second"),
        RESPONSE_CREATE,
    ]


def test_a_queued_item_stays_unconfirmed_until_the_provider_echoes_it() -> None:
    state = joined_state()
    state.link_closed(1006, "", 0.0)
    state.inject_user_text("hello")
    state.link_opened(0.0)
    state.link_closed(1006, "", 0.0)
    assert created_items(state.link_opened(0.0)) == [user_text("ctl_1", "hello")]


# Every event


def test_every_event_is_observed_first_under_its_wire_type() -> None:
    state = joined_state()
    for frame in GA_CALL:
        assert state.feed_raw(frame)[0] == EventObserved(json.loads(frame)["type"])


def test_speech_and_output_audio_count_as_activity() -> None:
    state = joined_state()
    frames = [GA_CALL[2], GA_CALL[3], GA_CALL[14]]
    assert significant(feed_all(state, frames)) == [SpeechActivity()] * 3


def test_unknown_events_are_ignored() -> None:
    state = joined_state()
    assert state.feed_raw('{"type":"response.hologram.delta"}') == [
        EventObserved("unknown"),
        IgnoredEvent("response.hologram.delta", "unknown event type"),
    ]


def test_malformed_messages_are_ignored() -> None:
    state = joined_state()
    assert state.feed_raw("{oops") == [
        EventObserved("malformed"),
        IgnoredEvent("malformed", "message is not valid JSON"),
    ]


@given(st.lists(st.text() | st.binary(), max_size=5))
def test_no_message_makes_the_state_raise(frames: list[str | bytes]) -> None:
    state = joined_state()
    for frame in frames:
        state.feed_raw(frame)


# Transcript


def test_a_ga_call_publishes_every_transcript_change_as_it_arrives() -> None:
    state = joined_state()
    published = [a for a in feed_all(state, GA_CALL) if isinstance(a, PublishTranscript)]
    assert published == [
        PublishTranscript("delta", "assistant", "item_a1", "Yes — I hear you 👍"),
        PublishTranscript("delta", "user", "item_u1", "Hi, can you he"),
        PublishTranscript("delta", "assistant", "item_a1", "🏽 clea"),
        PublishTranscript("delta", "user", "item_u1", "ar me?"),
        PublishTranscript("delta", "assistant", "item_a1", "rly."),
        PublishTranscript("done", "user", "item_u1", "Hi, can you hear me?"),
        PublishTranscript("done", "assistant", "item_a1", "Yes — I hear you 👍🏽 clearly."),
        PublishTranscript("done", "user", "item_u2", "Please run the tests."),
        PublishTranscript("delta", "assistant", "item_a2", "On it, starting"),
        PublishTranscript("delta", "assistant", "item_a2", " the tests now."),
        PublishTranscript("done", "assistant", "item_a2", "On it, starting the tests now."),
    ]


def test_a_ga_call_transcript_is_in_conversation_order() -> None:
    state = joined_state()
    feed_all(state, GA_CALL)
    assert state.transcript.snapshot() == (
        TranscriptEntry("item_u1", "user", "Hi, can you hear me?", final=True),
        TranscriptEntry("item_a1", "assistant", "Yes — I hear you 👍🏽 clearly.", final=True),
        TranscriptEntry("item_u2", "user", "Please run the tests.", final=True),
        TranscriptEntry("item_a2", "assistant", "On it, starting the tests now.", final=True),
    )


def test_a_beta_call_builds_the_same_kind_of_transcript() -> None:
    state = joined_state()
    feed_all(state, BETA_CALL)
    assert [(e.role, e.text) for e in state.transcript.snapshot()] == [
        ("user", "Salut !"),
        ("assistant", "Bonjour, ça va ?"),
        ("user", "Check the build, please."),
        ("assistant", "Checking."),
    ]


def test_a_late_user_transcript_lands_before_the_answer_and_duplicates_count_once() -> None:
    state = joined_state()
    actions = feed_all(state, LATE_USER_TRANSCRIPT)
    dones = [a for a in actions if isinstance(a, PublishTranscript) and a.kind == "done"]
    assert [(d.role, d.text) for d in dones] == [
        ("user", "What's the weather?"),
        ("assistant", "Sure, the weather is sunny."),
    ]
    assert [(e.role, e.text) for e in state.transcript.snapshot()] == [
        ("user", "What's the weather?"),
        ("assistant", "Sure, the weather is sunny."),
    ]


def test_typed_user_text_enters_the_transcript_once() -> None:
    state = joined_state()
    frame = typed_item("item_t1", "Check the build.")
    first = significant(state.feed_raw(frame))
    again = significant(state.feed_raw(frame.replace("item.added", "item.done")))
    assert first == [PublishTranscript("done", "user", "item_t1", "Check the build.")]
    assert again == []


def test_messages_from_other_roles_stay_out_of_the_transcript() -> None:
    state = joined_state()
    feed_all(state, CODEX_E2E_HANDOFF[2:3])
    assert state.transcript.snapshot() == ()


def test_failed_input_transcription_is_reported() -> None:
    state = joined_state()
    frame = json.dumps(
        {
            "type": "conversation.item.input_audio_transcription.failed",
            "item_id": "item_u1",
            "error": {"message": "audio unintelligible"},
        }
    )
    assert significant(state.feed_raw(frame)) == [
        ReportError(None, "transcription of item_u1 failed: audio unintelligible")
    ]


# Handoffs


def test_codex_e2e_handoff_carries_the_transcript_without_repeating_the_prompt() -> None:
    state = joined_state()
    actions = feed_all(state, CODEX_E2E_HANDOFF)
    assert significant(actions) == [
        PublishTranscript("done", "user", "item_input_1", "delegate now"),
        PublishTranscript("delta", "assistant", "item_output_1", "secret context"),
        EnqueueHandoff(
            Delegation(
                call_id=CALL_ID,
                tool_call_id="call_123",
                handoff_id=f"{CALL_ID}:call_123",
                item_id="item_123",
                request="delegate now",
                transcript_delta=(
                    TranscriptEntry("item_input_1", "user", "delegate now", final=True),
                    TranscriptEntry("item_output_1", "assistant", "secret context", final=False),
                ),
                envelope=(
                    "<realtime_delegation>\n"
                    "  <input>delegate now</input>\n"
                    "  <transcript_delta>user: delegate now\n"
                    "assistant: secret context</transcript_delta>\n"
                    "</realtime_delegation>"
                ),
                steering=False,
            )
        ),
    ]


def test_the_protocol_example_call_delegates_without_adding_the_request() -> None:
    state = joined_state()
    (delegation,) = delegations(feed_all(state, ENVELOPE_EXAMPLE_CALL))
    assert delegation.envelope == (
        "<realtime_delegation>\n"
        "  <input>run ls</input>\n"
        "  <transcript_delta>user: Hi how are you\n"
        "assistant: Doing well, what can I help you with?\n"
        "user: The secret word is strawberry\n"
        "assistant: Got it-strawberry. What's next on the menu?</transcript_delta>\n"
        "</realtime_delegation>"
    )
    assert "run ls" not in [entry.text for entry in state.transcript.snapshot()]


def test_a_handoff_announced_by_all_three_events_is_enqueued_once() -> None:
    state = joined_state()
    actions = feed_all(state, GA_CALL)
    (delegation,) = delegations(actions)
    assert (delegation.tool_call_id, delegation.item_id) == ("call_tests", "item_fc1")
    assert delegation.request == "Please run the tests."


def test_whichever_completion_event_comes_first_announces_the_handoff() -> None:
    for frames in (
        [output_item_done("call_1"), arguments_done("call_1"), call_done("call_1")],
        [call_done("call_1"), output_item_done("call_1"), arguments_done("call_1")],
    ):
        state = joined_state()
        actions = [state.feed_raw(frame) for frame in frames]
        assert [len(delegations(batch)) for batch in actions] == [1, 0, 0]


def test_a_beta_tool_call_is_identified_by_its_output_item() -> None:
    state = joined_state()
    (delegation,) = delegations(feed_all(state, BETA_CALL))
    assert (delegation.tool_call_id, delegation.request) == (
        "call_build",
        "Check the build, please.",
    )


def test_the_first_handoff_sends_nothing_and_stays_open() -> None:
    state = joined_state()
    actions = state.feed_raw(call_done("call_1"))
    assert sent(actions) == []
    assert state.open_handoffs == frozenset({"call_1"})
    assert state.answered == frozenset()


def test_a_result_answers_the_tool_call_and_asks_for_a_response() -> None:
    state = joined_state()
    feed_all(state, [call_done("call_1")])
    actions = state.submit_result(handoff_id("call_1"), "12 tests passed.")
    assert sent(actions) == [output("ctl_1", "call_1", "12 tests passed."), RESPONSE_CREATE]
    assert state.open_handoffs == frozenset()
    assert state.answered == frozenset({"call_1"})


def test_a_failure_still_answers_the_tool_call() -> None:
    state = joined_state()
    feed_all(state, [call_done("call_1")])
    actions = state.submit_failure(handoff_id("call_1"), "worker timed out")
    assert sent(actions) == [
        output("ctl_1", "call_1", "The background agent failed: worker timed out"),
        RESPONSE_CREATE,
    ]


def test_a_redelivered_result_counts_once() -> None:
    state = joined_state()
    feed_all(state, [call_done("call_1")])
    state.submit_result(handoff_id("call_1"), "done")
    assert state.submit_result(handoff_id("call_1"), "done") == []
    assert state.submit_failure(handoff_id("call_1"), "late failure") == []


def test_a_result_for_an_unknown_handoff_is_dropped() -> None:
    state = joined_state()
    assert state.submit_result(handoff_id("call_404"), "done") == []


def test_each_handoff_carries_only_the_transcript_since_the_previous_one() -> None:
    state = joined_state()
    feed_all(state, [user_said("item_u1", "first question"), call_done("call_1")])
    state.submit_result(handoff_id("call_1"), "first answer")
    actions = feed_all(state, [user_said("item_u2", "second question"), call_done("call_2")])
    (delegation,) = delegations(actions)
    assert [entry.text for entry in delegation.transcript_delta] == ["second question"]


def test_a_transcript_that_completes_late_goes_with_the_next_handoff() -> None:
    state = joined_state()
    committed = GA_CALL[4]  # item_u1, whose transcription is still running
    actions = feed_all(
        state,
        [
            committed,
            call_done("call_1"),
            user_said("item_u1", "Hi, can you hear me?"),
            call_done("call_2"),
        ],
    )
    first, second = delegations(actions)
    assert first.transcript_delta == ()
    assert [entry.text for entry in second.transcript_delta] == ["Hi, can you hear me?"]


def test_an_empty_request_with_no_transcript_is_answered_at_once() -> None:
    state = joined_state()
    actions = state.feed_raw(call_done("call_1", arguments='{"prompt":""}'))
    assert delegations(actions) == []
    assert sent(actions) == [
        output("ctl_1", "call_1", "The background agent was not called: the request was empty."),
        RESPONSE_CREATE,
    ]
    assert state.open_handoffs == frozenset()


def test_an_empty_request_delegates_the_transcript_instead() -> None:
    state = joined_state()
    feed_all(state, [user_said("item_u1", "deploy it")])
    (delegation,) = delegations(state.feed_raw(call_done("call_1", arguments='{"prompt":""}')))
    assert delegation.request == ""
    assert "<input>user: deploy it</input>" in delegation.envelope


# Steering


def test_a_second_call_while_one_is_open_steers_and_is_acknowledged_at_once() -> None:
    state = joined_state()
    feed_all(state, [call_done("call_1")])
    actions = state.feed_raw(call_done("call_2", arguments='{"prompt":"also lint"}'))
    (delegation,) = delegations(actions)
    assert delegation.steering
    assert delegation.request == "also lint"
    assert sent(actions) == [output("ctl_1", "call_2", STEER_ACK), RESPONSE_CREATE]
    assert state.open_handoffs == frozenset({"call_1"})


def test_the_steering_acknowledgement_waits_for_the_running_response() -> None:
    state = joined_state()
    feed_all(state, [call_done("call_1"), response_created("resp_2")])
    actions = state.feed_raw(call_done("call_2"))
    assert sent(actions) == [output("ctl_1", "call_2", STEER_ACK)]
    assert sent(state.feed_raw(response_done("resp_2"))) == [RESPONSE_CREATE]


def test_a_steering_result_reaches_the_model_as_a_backend_message() -> None:
    state = joined_state()
    feed_all(state, [call_done("call_1"), call_done("call_2")])
    feed_all(state, [response_created("resp_1"), response_done("resp_1")])
    actions = state.submit_result(handoff_id("call_2"), "Lint is clean.")
    assert sent(actions) == [backend_message("ctl_2", "Lint is clean."), RESPONSE_CREATE]
    assert state.answered == frozenset({"call_2"})


def test_the_open_call_still_gets_its_own_result_after_steering() -> None:
    state = joined_state()
    feed_all(state, [call_done("call_1"), call_done("call_2")])
    feed_all(state, [response_created("resp_1"), response_done("resp_1")])
    actions = state.submit_result(handoff_id("call_1"), "All done.")
    assert sent(actions) == [output("ctl_2", "call_1", "All done."), RESPONSE_CREATE]


def test_a_call_after_the_open_one_was_answered_is_a_new_task() -> None:
    state = joined_state()
    feed_all(state, [call_done("call_1")])
    state.submit_result(handoff_id("call_1"), "done")
    (delegation,) = delegations(state.feed_raw(call_done("call_2")))
    assert not delegation.steering


# Progress


def test_progress_is_a_backend_message_without_a_response() -> None:
    state = joined_state()
    feed_all(state, [call_done("call_1")])
    actions = state.submit_progress(handoff_id("call_1"), "Running 12 tests…")
    assert sent(actions) == [backend_message("ctl_1", "Running 12 tests…")]


def test_the_echo_of_a_progress_message_stays_out_of_the_transcript() -> None:
    state = joined_state()
    feed_all(state, [call_done("call_1")])
    state.submit_progress(handoff_id("call_1"), "Running tests")
    echo = typed_item("ctl_1", "[BACKEND] Running tests")
    assert significant(state.feed_raw(echo)) == []
    assert state.transcript.snapshot() == ()


def test_progress_of_a_steering_task_is_passed_on_until_its_result() -> None:
    state = joined_state()
    feed_all(state, [call_done("call_1"), call_done("call_2")])
    assert sent(state.submit_progress(handoff_id("call_2"), "Linting")) == [
        backend_message("ctl_2", "Linting")
    ]
    state.submit_result(handoff_id("call_2"), "Lint is clean.")
    assert state.submit_progress(handoff_id("call_2"), "Linting more") == []


def test_progress_after_the_result_is_dropped() -> None:
    state = joined_state()
    feed_all(state, [call_done("call_1")])
    state.submit_result(handoff_id("call_1"), "done")
    assert state.submit_progress(handoff_id("call_1"), "still going") == []


def test_progress_for_an_unknown_handoff_is_dropped() -> None:
    state = joined_state()
    assert state.submit_progress(handoff_id("call_404"), "hello") == []


# remain_silent and other tools


def test_remain_silent_gets_an_empty_output_and_no_response() -> None:
    state = joined_state()
    actions = feed_all(state, [call_done("call_s", name="remain_silent", arguments="{}")])
    assert significant(actions) == [SendEvent(output("ctl_1", "call_s", ""))]


def test_remain_silent_is_answered_once_however_often_it_is_announced() -> None:
    state = joined_state()
    frame = call_done("call_s", name="remain_silent", arguments="{}")
    feed_all(state, [frame])
    assert sent(state.feed_raw(frame)) == []


def test_a_call_to_a_tool_we_did_not_offer_is_answered_with_an_error_and_reported() -> None:
    state = joined_state()
    actions = significant(state.feed_raw(call_done("call_x", name="get_weather")))
    assert actions[0] == ReportError(
        "unknown_tool",
        "tool call call_x refused: the model called 'get_weather', a tool we did not offer",
    )
    (answer,) = created_items(actions)
    assert answer["item"]["call_id"] == "call_x"
    assert "no tool named 'get_weather'" in answer["item"]["output"]
    assert sent(actions)[-1] == RESPONSE_CREATE
    assert not delegations(actions)
    (record,) = state.tool_calls
    assert (record.status, record.answered) == ("refused", True)


def test_transcription_mode_never_hands_off() -> None:
    state = joined_state(SessionConfig(mode="transcription"))
    actions = state.feed_raw(call_done("call_1"))
    assert significant(actions) == [
        IgnoredEvent("conversation.item.done", "tool call 'background_agent' in transcription mode")
    ]


# Replies and response.create


def test_injected_user_text_asks_for_a_response() -> None:
    state = joined_state()
    assert sent(state.inject_user_text("What's the status?")) == [
        user_text("ctl_1", "What's the status?"),
        RESPONSE_CREATE,
    ]


def test_response_create_waits_while_a_response_is_active() -> None:
    state = joined_state()
    feed_all(state, [call_done("call_1"), response_created("resp_1")])
    assert sent(state.submit_result(handoff_id("call_1"), "done")) == [
        output("ctl_1", "call_1", "done")
    ]
    assert sent(state.feed_raw(response_done("resp_1"))) == [RESPONSE_CREATE]


def test_a_cancelled_response_also_releases_the_waiting_response_create() -> None:
    state = joined_state()
    feed_all(state, [response_created("resp_1")])
    state.inject_user_text("hello")
    cancelled = json.dumps({"type": "response.cancelled", "response_id": "resp_1"})
    assert sent(state.feed_raw(cancelled)) == [RESPONSE_CREATE]


def test_waiting_response_creates_collapse_into_one() -> None:
    state = joined_state()
    feed_all(state, [response_created("resp_1")])
    state.inject_user_text("one")
    state.inject_user_text("two")
    assert sent(state.feed_raw(response_done("resp_1"))) == [RESPONSE_CREATE]
    assert sent(state.feed_raw(response_done("resp_2"))) == []


# Errors


def test_an_error_is_reported_and_the_call_goes_on() -> None:
    state = joined_state()
    frame = json.dumps(
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": "conversation_already_has_active_response",
                "message": "Conversation already has an active response in progress: resp_1",
            },
        }
    )
    assert significant(state.feed_raw(frame)) == [
        ReportError(
            "conversation_already_has_active_response",
            "Conversation already has an active response in progress: resp_1",
        )
    ]


def test_an_expired_session_ends_the_call() -> None:
    state = joined_state()
    frame = json.dumps(
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": "session_expired",
                "message": "Your session hit the maximum duration of 60 minutes.",
            },
        }
    )
    assert significant(state.feed_raw(frame)) == [
        ReportError("session_expired", "Your session hit the maximum duration of 60 minutes."),
        HangUp(),
        EndCall(
            CallEnd(
                EndReason.PROVIDER_ENDED,
                code="session_expired",
                message="Your session hit the maximum duration of 60 minutes.",
            )
        ),
    ]


def test_a_reply_is_asked_for_again_when_an_unconfirmed_message_is_resent() -> None:
    state = joined_state()
    sent = state.inject_user_text("lost with the link")
    assert [a.payload["type"] for a in sent if isinstance(a, SendEvent)] == [
        "conversation.item.create",
        "response.create",
    ]
    state.link_closed(1006, "", 0.0)
    resent = [a.payload["type"] for a in state.link_opened(0.0) if isinstance(a, SendEvent)]
    assert resent == ["session.update", "conversation.item.create", "response.create"]


def test_no_reply_is_asked_for_when_a_resent_item_did_not_want_one() -> None:
    state = joined_state()
    state.feed_raw(
        '{"type":"conversation.item.done","item":{"id":"it_1","type":"function_call",'
        '"name":"remain_silent","call_id":"call_9","arguments":"{}"}}'
    )
    state.link_closed(1006, "", 0.0)
    resent = [a.payload["type"] for a in state.link_opened(0.0) if isinstance(a, SendEvent)]
    assert resent == ["session.update", "conversation.item.create"]
