"""Parsing sideband server events: GA and beta names, tolerance, and never raising."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signaling.realtime.events import (
    ConversationItemAdded,
    ConversationItemDone,
    ErrorEvent,
    FunctionCallArgumentsDone,
    InputAudioCommitted,
    InputTranscriptCompleted,
    InputTranscriptDelta,
    InputTranscriptFailed,
    Item,
    KnownIgnored,
    MalformedEvent,
    OutputAudioDelta,
    OutputItemDone,
    OutputTranscriptDelta,
    OutputTranscriptDone,
    RateLimit,
    RateLimitsUpdated,
    ResponseCancelled,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    UnknownEvent,
    event_type_name,
    parse_server_event,
)
from tests.unit.realtime_samples import BETA_CALL, GA_CALL


def parse(event: dict[str, Any]) -> ServerEvent:
    return parse_server_event(json.dumps(event))


FUNCTION_CALL_ITEM = {
    "id": "item_fc",
    "object": "realtime.item",
    "type": "function_call",
    "status": "completed",
    "call_id": "call_1",
    "name": "background_agent",
    "arguments": '{"prompt":"run ls"}',
}
FUNCTION_CALL = Item(
    id="item_fc",
    type="function_call",
    role=None,
    name="background_agent",
    call_id="call_1",
    arguments='{"prompt":"run ls"}',
    text=None,
    status="completed",
    content_types=(),
)
IDS = {"response_id": "resp_1", "item_id": "item_1", "output_index": 0, "content_index": 0}


def test_session_created_keeps_the_session_object() -> None:
    session = {"type": "realtime", "id": "sess_1"}
    assert parse({"type": "session.created", "session": session}) == SessionCreated(session)


def test_session_updated_reads_the_session_id() -> None:
    session = {"type": "realtime", "id": "sess_u0_abc", "instructions": "Be brief."}
    event = parse({"type": "session.updated", "event_id": "event_1", "session": session})
    assert event == SessionUpdated(session_id="sess_u0_abc", session=session)


def test_session_updated_without_an_id_has_no_session_id() -> None:
    event = parse({"type": "session.updated", "session": {"type": "realtime"}})
    assert event == SessionUpdated(session_id=None, session={"type": "realtime"})


def test_input_transcription_delta() -> None:
    event = parse(
        {
            "type": "conversation.item.input_audio_transcription.delta",
            "item_id": "item_u1",
            "content_index": 0,
            "delta": "Hel",
        }
    )
    assert event == InputTranscriptDelta(item_id="item_u1", content_index=0, delta="Hel")


def test_input_transcription_delta_without_text_is_an_empty_delta() -> None:
    event = parse({"type": "conversation.item.input_audio_transcription.delta", "item_id": "i"})
    assert event == InputTranscriptDelta(item_id="i", content_index=0, delta="")


def test_input_transcription_completed() -> None:
    event = parse(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "item_u1",
            "content_index": 1,
            "transcript": "Hello there",
            "usage": {"type": "duration", "seconds": 1},
        }
    )
    assert event == InputTranscriptCompleted(
        item_id="item_u1", content_index=1, transcript="Hello there"
    )


def test_input_transcription_failed_reads_the_error_message() -> None:
    event = parse(
        {
            "type": "conversation.item.input_audio_transcription.failed",
            "item_id": "item_u1",
            "content_index": 0,
            "error": {"type": "transcription_error", "message": "audio unintelligible"},
        }
    )
    assert event == InputTranscriptFailed(item_id="item_u1", message="audio unintelligible")


@pytest.mark.parametrize(
    "wire_type", ["response.output_audio_transcript.delta", "response.audio_transcript.delta"]
)
def test_audio_transcript_delta_has_ga_and_beta_names(wire_type: str) -> None:
    event = parse({"type": wire_type, **IDS, "delta": "Hi"})
    assert event == OutputTranscriptDelta("resp_1", "item_1", "Hi", source="audio")


@pytest.mark.parametrize(
    "wire_type", ["response.output_audio_transcript.done", "response.audio_transcript.done"]
)
def test_audio_transcript_done_has_ga_and_beta_names(wire_type: str) -> None:
    event = parse({"type": wire_type, **IDS, "transcript": "Hi there."})
    assert event == OutputTranscriptDone("resp_1", "item_1", "Hi there.", source="audio")


@pytest.mark.parametrize("wire_type", ["response.output_text.delta", "response.text.delta"])
def test_text_delta_has_ga_and_beta_names(wire_type: str) -> None:
    event = parse({"type": wire_type, **IDS, "delta": "Hi"})
    assert event == OutputTranscriptDelta("resp_1", "item_1", "Hi", source="text")


@pytest.mark.parametrize("wire_type", ["response.output_text.done", "response.text.done"])
def test_text_done_has_ga_and_beta_names(wire_type: str) -> None:
    event = parse({"type": wire_type, **IDS, "text": "Hi there."})
    assert event == OutputTranscriptDone("resp_1", "item_1", "Hi there.", source="text")


def test_output_delta_without_response_id_still_parses() -> None:
    event = parse({"type": "response.output_text.delta", "item_id": "item_1", "delta": "x"})
    assert event == OutputTranscriptDelta(None, "item_1", "x", source="text")


@pytest.mark.parametrize("wire_type", ["response.output_audio.delta", "response.audio.delta"])
def test_output_audio_delta_keeps_only_the_decoded_size(wire_type: str) -> None:
    event = parse({"type": wire_type, **IDS, "delta": "AAAAAAAAAAA="})
    assert event == OutputAudioDelta(response_id="resp_1", item_id="item_1", byte_count=8)


@pytest.mark.parametrize("wire_type", ["conversation.item.added", "conversation.item.created"])
def test_item_added_and_created_are_one_event(wire_type: str) -> None:
    event = parse({"type": wire_type, "previous_item_id": "item_0", "item": FUNCTION_CALL_ITEM})
    assert event == ConversationItemAdded(item=FUNCTION_CALL, previous_item_id="item_0")


def test_item_done_without_previous_item_id() -> None:
    event = parse({"type": "conversation.item.done", "item": FUNCTION_CALL_ITEM})
    assert event == ConversationItemDone(item=FUNCTION_CALL, previous_item_id=None)


def test_output_item_done_carries_the_item() -> None:
    event = parse(
        {"type": "response.output_item.done", "response_id": "r", "item": FUNCTION_CALL_ITEM}
    )
    assert event == OutputItemDone(response_id="r", item=FUNCTION_CALL)


def test_message_item_text_joins_text_parts_and_transcripts() -> None:
    event = parse(
        {
            "type": "conversation.item.done",
            "item": {
                "id": "item_u1",
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "typed"},
                    {"type": "input_audio", "transcript": "spoken"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                ],
            },
        }
    )
    assert isinstance(event, ConversationItemDone)
    assert event.item.text == "typed\nspoken"
    assert event.item.content_types == ("input_text", "input_audio", "input_image")


def test_assistant_item_text_comes_from_output_parts() -> None:
    event = parse(
        {
            "type": "conversation.item.done",
            "item": {
                "id": "item_a1",
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_audio", "transcript": "Sure."}],
            },
        }
    )
    assert isinstance(event, ConversationItemDone)
    assert (event.item.role, event.item.text) == ("assistant", "Sure.")


def test_item_without_text_has_none() -> None:
    event = parse(
        {
            "type": "conversation.item.added",
            "item": {
                "id": "item_u1",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_audio", "transcript": None}, "junk"],
            },
        }
    )
    assert isinstance(event, ConversationItemAdded)
    assert event.item.text is None
    assert event.item.content_types == ("input_audio",)


def test_function_call_arguments_done() -> None:
    event = parse(
        {
            "type": "response.function_call_arguments.done",
            **IDS,
            "call_id": "call_1",
            "name": "background_agent",
            "arguments": "{}",
        }
    )
    assert event == FunctionCallArgumentsDone(
        "resp_1", "item_1", "call_1", "background_agent", "{}"
    )


def test_function_call_arguments_done_in_the_beta_shape_has_no_name() -> None:
    event = parse(
        {
            "type": "response.function_call_arguments.done",
            **IDS,
            "call_id": "call_1",
            "arguments": "{}",
        }
    )
    assert event == FunctionCallArgumentsDone("resp_1", "item_1", "call_1", None, "{}")


def test_response_created_reads_the_response_id() -> None:
    event = parse({"type": "response.created", "response": {"id": "resp_1", "status": "x"}})
    assert event == ResponseCreated(response_id="resp_1")


def test_response_created_falls_back_to_a_top_level_response_id() -> None:
    event = parse({"type": "response.created", "response_id": "resp_2"})
    assert event == ResponseCreated(response_id="resp_2")


def test_response_done_reads_the_status() -> None:
    event = parse({"type": "response.done", "response": {"id": "resp_1", "status": "cancelled"}})
    assert event == ResponseDone(response_id="resp_1", status="cancelled")


def test_response_cancelled_is_understood() -> None:
    event = parse({"type": "response.cancelled", "response_id": "resp_1"})
    assert event == ResponseCancelled(response_id="resp_1")


def test_speech_started_and_stopped() -> None:
    started = parse({"type": "input_audio_buffer.speech_started", "item_id": "item_u1"})
    stopped = parse({"type": "input_audio_buffer.speech_stopped", "item_id": "item_u1"})
    assert (started, stopped) == (SpeechStarted("item_u1"), SpeechStopped("item_u1"))


def test_input_audio_committed_reads_the_placement() -> None:
    event = parse(
        {
            "type": "input_audio_buffer.committed",
            "item_id": "item_u2",
            "previous_item_id": "item_a1",
        }
    )
    assert event == InputAudioCommitted(item_id="item_u2", previous_item_id="item_a1")


def test_error_reads_every_field() -> None:
    event = parse(
        {
            "type": "error",
            "event_id": "event_9",
            "error": {
                "type": "invalid_request_error",
                "code": "session_expired",
                "message": "Your session hit the maximum duration of 60 minutes.",
                "param": None,
                "event_id": "client_7",
            },
        }
    )
    assert event == ErrorEvent(
        type="invalid_request_error",
        code="session_expired",
        message="Your session hit the maximum duration of 60 minutes.",
        param=None,
        event_id="client_7",
    )


def test_error_message_prefers_a_top_level_message() -> None:
    event = parse({"type": "error", "message": "top", "error": {"message": "nested"}})
    assert isinstance(event, ErrorEvent)
    assert event.message == "top"


def test_error_message_falls_back_to_the_error_message() -> None:
    event = parse({"type": "error", "error": {"type": "server_error", "message": "nested"}})
    assert isinstance(event, ErrorEvent)
    assert event.message == "nested"


def test_error_message_falls_back_to_the_raw_error_json() -> None:
    event = parse({"type": "error", "error": {"code": "boom"}})
    assert isinstance(event, ErrorEvent)
    assert (event.code, event.message) == ("boom", '{"code": "boom"}')


def test_error_that_is_not_an_object_is_still_an_error() -> None:
    event = parse({"type": "error", "error": "it broke"})
    assert event == ErrorEvent(
        type=None, code=None, message='"it broke"', param=None, event_id=None
    )


def test_rate_limits_updated_skips_entries_that_are_not_objects() -> None:
    event = parse(
        {
            "type": "rate_limits.updated",
            "rate_limits": [
                {"name": "tokens", "limit": 100, "remaining": 40, "reset_seconds": 2},
                "junk",
            ],
        }
    )
    assert event == RateLimitsUpdated((RateLimit("tokens", 100, 40, 2.0),))


@pytest.mark.parametrize(
    "wire_type",
    [
        "response.output_item.added",
        "response.content_part.added",
        "response.content_part.done",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
        "response.output_audio.done",
        "response.audio.done",
        "response.function_call_arguments.delta",
        "transcription_session.updated",
        "conversation.item.truncated",
        "input_audio_buffer.cleared",
    ],
)
def test_known_events_without_use_are_known_and_ignored(wire_type: str) -> None:
    assert parse({"type": wire_type, "event_id": "e"}) == KnownIgnored(wire_type)


def test_unknown_types_are_reported_as_unknown() -> None:
    assert parse({"type": "response.hologram.delta"}) == UnknownEvent("response.hologram.delta")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "message is not valid JSON"),
        ("", "message is not valid JSON"),
        ("[1, 2]", "event is not a JSON object"),
        ('"session.created"', "event is not a JSON object"),
        ("{}", "event has no string 'type'"),
        ('{"type": 7}', "event has no string 'type'"),
        ('{"type": "Not An Event Name"}', "event type is not an event name"),
        (b"\xff\xfe{}", "message is not valid UTF-8"),
        ("[" * 100_000, "message is not valid JSON"),
        ('{"type": "x", "n": ' + "9" * 5000 + "}", "message is not valid JSON"),
        # A lone surrogate could be stored nowhere as JSON and served to nobody.
        ('{"type": "response.output_text.delta", "delta": "\\ud800"}', "message is not valid JSON"),
    ],
)
def test_unusable_messages_are_malformed(raw: str | bytes, reason: str) -> None:
    event = parse_server_event(raw)
    assert isinstance(event, MalformedEvent)
    assert event.reason == reason


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            {"type": "response.output_text.delta", "item_id": "i"},
            "response.output_text.delta: field 'delta' must be a string",
        ),
        (
            {"type": "conversation.item.input_audio_transcription.completed", "item_id": 3},
            "conversation.item.input_audio_transcription.completed: "
            "field 'item_id' must be a string",
        ),
        (
            {"type": "conversation.item.done", "item": "item_1"},
            "conversation.item.done: field 'item' must be an object",
        ),
        (
            {"type": "conversation.item.added", "item": {"id": "item_1"}},
            "conversation.item.added: field 'type' must be a string",
        ),
        (
            {"type": "session.updated", "session": None},
            "session.updated: field 'session' must be an object",
        ),
    ],
)
def test_missing_or_ill_typed_required_fields_are_malformed(
    event: dict[str, Any], reason: str
) -> None:
    parsed = parse(event)
    assert isinstance(parsed, MalformedEvent)
    assert parsed.reason == reason


def test_bytes_in_utf8_parse_like_text() -> None:
    raw = '{"type":"response.output_text.delta","item_id":"i","delta":"café ☕"}'
    assert parse_server_event(raw.encode()) == parse_server_event(raw)


def test_malformed_excerpt_is_the_start_of_the_message() -> None:
    event = parse_server_event("x" * 10_000)
    assert isinstance(event, MalformedEvent)
    assert event.raw_excerpt == "x" * 200


def test_malformed_excerpt_of_bad_bytes_is_readable() -> None:
    event = parse_server_event(b"\xffabc")
    assert isinstance(event, MalformedEvent)
    assert event.raw_excerpt == "\ufffdabc"


def test_every_recorded_ga_event_reports_its_wire_type() -> None:
    for raw in GA_CALL:
        assert event_type_name(parse_server_event(raw)) == json.loads(raw)["type"]


@pytest.mark.parametrize(
    ("beta", "ga"),
    [
        ("response.audio_transcript.delta", "response.output_audio_transcript.delta"),
        ("response.text.done", "response.output_text.done"),
        ("response.audio.delta", "response.output_audio.delta"),
        ("conversation.item.created", "conversation.item.added"),
    ],
)
def test_beta_aliases_report_the_ga_type_name(beta: str, ga: str) -> None:
    frame = next(raw for raw in BETA_CALL if json.loads(raw)["type"] == beta)
    assert event_type_name(parse_server_event(frame)) == ga


def test_unknown_and_malformed_type_names() -> None:
    assert event_type_name(UnknownEvent("new.thing")) == "new.thing"
    assert event_type_name(MalformedEvent("bad", "")) == "malformed"


def test_recorded_calls_parse_without_unknown_or_malformed_events() -> None:
    for raw in GA_CALL + BETA_CALL:
        assert not isinstance(parse_server_event(raw), UnknownEvent | MalformedEvent), raw


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
KNOWN_TYPES = st.sampled_from(
    [
        "session.created",
        "session.updated",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.failed",
        "response.output_audio_transcript.delta",
        "response.audio_transcript.done",
        "response.output_text.done",
        "response.output_audio.delta",
        "conversation.item.added",
        "conversation.item.done",
        "response.output_item.done",
        "response.function_call_arguments.done",
        "response.created",
        "response.done",
        "response.cancelled",
        "input_audio_buffer.committed",
        "error",
        "rate_limits.updated",
    ]
)
FIELD_NAMES = st.sampled_from(
    [
        "item",
        "item_id",
        "previous_item_id",
        "delta",
        "transcript",
        "text",
        "session",
        "response",
        "response_id",
        "call_id",
        "name",
        "arguments",
        "error",
        "message",
        "rate_limits",
        "content_index",
    ]
)
ITEMS = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "function_call"]) | JSON_VALUES},
    optional={
        "id": st.text() | JSON_VALUES,
        "role": st.sampled_from(["user", "assistant"]) | JSON_VALUES,
        "content": st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["input_text", "output_audio"]) | JSON_VALUES},
                optional={"text": JSON_VALUES, "transcript": JSON_VALUES},
            )
            | JSON_VALUES,
            max_size=3,
        ),
        "name": JSON_VALUES,
        "arguments": JSON_VALUES,
    },
)


@given(st.text())
def test_parser_never_raises_on_any_text(raw: str) -> None:
    assert parse_server_event(raw) is not None


@given(st.binary())
def test_parser_never_raises_on_any_bytes(raw: bytes) -> None:
    assert parse_server_event(raw) is not None


@given(st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=6))
def test_parser_never_raises_on_any_json_object(obj: dict[str, Any]) -> None:
    assert parse_server_event(json.dumps(obj)) is not None


@given(
    KNOWN_TYPES,
    st.dictionaries(FIELD_NAMES, JSON_VALUES | ITEMS, max_size=6),
)
def test_parser_never_raises_on_known_types_with_arbitrary_fields(
    wire_type: str, fields: dict[str, Any]
) -> None:
    assert parse({**fields, "type": wire_type}) is not None
