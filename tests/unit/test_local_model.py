"""The local provider's offline model: client events in, GA server events out."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from media.local_provider.model import Conversation
from media.local_provider.server_events import IdFactory, JsonObject


def counting_ids() -> IdFactory:
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(counter)}"


def conversation(**kwargs: Any) -> Conversation:
    return Conversation(new_id=counting_ids(), **kwargs)


def types(events: list[JsonObject]) -> list[str]:
    return [event["type"] for event in events]


def user_text(text: str, **extra: Any) -> JsonObject:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return {"type": "conversation.item.create", "item": {**item, **extra}}


def tool_output(call_id: str, output: str) -> JsonObject:
    item = {"type": "function_call_output", "call_id": call_id, "output": output}
    return {"type": "conversation.item.create", "item": item}


def respond(conv: Conversation) -> list[JsonObject]:
    """A whole response: `response.create` and then its completion."""
    return conv.handle_client_event({"type": "response.create"}) + conv.finish_response()


def only(events: list[JsonObject], kind: str) -> JsonObject:
    matching = [event for event in events if event["type"] == kind]
    assert len(matching) == 1, types(events)
    return matching[0]


def error_of(events: list[JsonObject]) -> JsonObject:
    assert types(events) == ["error"]
    error: JsonObject = events[0]["error"]
    return error


REALTIME_UPDATE = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "instructions": "Be brief.",
        "output_modalities": ["text"],
        "audio": {"output": {"voice": "cedar"}},
        "tools": [{"type": "function", "name": "background_agent", "parameters": {}}],
    },
}


# -- session ----------------------------------------------------------------------------------


def test_session_created_carries_a_session_id() -> None:
    event = conversation().session_created()

    assert event["type"] == "session.created"
    assert event["session"]["id"].startswith("sess_")
    assert event["session"]["type"] == "realtime"


def test_session_update_answers_session_updated_with_the_same_session_id() -> None:
    conv = conversation()
    session_id = conv.session_created()["session"]["id"]

    event = only(conv.handle_client_event(REALTIME_UPDATE), "session.updated")

    assert event["session"]["id"] == session_id


def test_session_updated_echoes_the_configuration() -> None:
    session = conversation().handle_client_event(REALTIME_UPDATE)[0]["session"]

    assert session["instructions"] == "Be brief."
    assert session["output_modalities"] == ["text"]
    assert session["tools"][0]["name"] == "background_agent"
    assert session["audio"]["output"]["voice"] == "cedar"


def test_session_update_merges_nested_audio_settings() -> None:
    session = conversation().handle_client_event(REALTIME_UPDATE)[0]["session"]

    assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}


def test_session_update_accepts_a_model() -> None:
    update = {"type": "session.update", "session": {"type": "realtime", "model": "gpt-realtime"}}

    assert types(conversation().handle_client_event(update)) == ["session.updated"]


def test_session_update_cannot_change_the_session_id() -> None:
    conv = conversation()
    session_id = conv.session["id"]
    update = {"type": "session.update", "session": {"type": "realtime", "id": "sess_mine"}}

    assert conv.handle_client_event(update)[0]["session"]["id"] == session_id


def test_session_update_with_an_unknown_type_is_an_invalid_value_error() -> None:
    update = {"type": "session.update", "session": {"type": "quicksilver"}, "event_id": "ev_1"}

    error = error_of(conversation().handle_client_event(update))

    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_value"
    assert error["param"] == "session.type"
    assert error["event_id"] == "ev_1"


def test_session_update_without_a_type_is_a_missing_parameter_error() -> None:
    update = {"type": "session.update", "session": {"instructions": "hi"}}

    error = error_of(conversation().handle_client_event(update))

    assert error["code"] == "missing_required_parameter"
    assert error["param"] == "session.type"


def test_a_refused_session_update_leaves_the_session_unchanged() -> None:
    conv = conversation()
    before = conv.session

    conv.handle_client_event({"type": "session.update", "session": {"type": "bogus"}})

    assert conv.session == before


def test_transcription_session_shows_no_instructions_or_tools() -> None:
    update = {"type": "session.update", "session": {"type": "transcription"}}

    session = conversation().handle_client_event(update)[0]["session"]

    assert session["type"] == "transcription"
    assert "instructions" not in session
    assert "tools" not in session
    assert "output" not in session["audio"]


def test_the_call_creation_session_configures_the_conversation() -> None:
    conv = conversation(session={"type": "transcription", "model": "gpt-realtime"})

    assert conv.session_created()["session"]["type"] == "transcription"


def test_an_unacceptable_call_creation_session_is_refused() -> None:
    with pytest.raises(ValueError, match="Supported values"):
        conversation(session={"type": "beta"})


# -- items ------------------------------------------------------------------------------------


def test_item_create_answers_item_added_then_item_done() -> None:
    events = conversation().handle_client_event(user_text("hello"))

    assert types(events) == ["conversation.item.added", "conversation.item.done"]
    item = events[0]["item"]
    assert item["object"] == "realtime.item"
    assert item["id"].startswith("item_")
    assert item["content"] == [{"type": "input_text", "text": "hello"}]


def test_item_added_names_the_previous_item() -> None:
    conv = conversation()
    first = conv.handle_client_event(user_text("one"))[0]
    second = conv.handle_client_event(user_text("two"))[0]

    assert first["previous_item_id"] is None
    assert second["previous_item_id"] == first["item"]["id"]


def test_item_create_keeps_a_client_given_item_id() -> None:
    events = conversation().handle_client_event(user_text("hi", id="item_client"))

    assert events[0]["item"]["id"] == "item_client"


def test_item_create_with_a_used_item_id_is_an_error() -> None:
    conv = conversation()
    conv.handle_client_event(user_text("hi", id="item_client"))

    error = error_of(conv.handle_client_event(user_text("again", id="item_client")))

    assert error["param"] == "item.id"


def test_an_item_created_after_root_goes_first() -> None:
    conv = conversation()
    conv.handle_client_event(user_text("later"))

    added = conv.handle_client_event({**user_text("earlier"), "previous_item_id": "root"})[0]

    assert added["previous_item_id"] is None


def test_an_item_can_be_inserted_after_a_named_item() -> None:
    conv = conversation()
    first = conv.handle_client_event(user_text("one"))[0]["item"]["id"]
    conv.handle_client_event(user_text("three"))

    added = conv.handle_client_event({**user_text("two"), "previous_item_id": first})[0]

    assert added["previous_item_id"] == first


def test_an_unknown_previous_item_id_is_an_error() -> None:
    event = {**user_text("lost"), "previous_item_id": "item_missing"}

    assert error_of(conversation().handle_client_event(event))["param"] == "previous_item_id"


def test_item_create_with_an_unknown_item_type_is_an_error() -> None:
    event = {"type": "conversation.item.create", "item": {"type": "image"}}

    error = error_of(conversation().handle_client_event(event))

    assert (error["code"], error["param"]) == ("invalid_value", "item.type")


def test_function_call_output_needs_a_call_id() -> None:
    event = {"type": "conversation.item.create", "item": {"type": "function_call_output"}}

    error = error_of(conversation().handle_client_event(event))

    assert error["param"] == "item.call_id"


def test_item_delete_removes_the_item() -> None:
    conv = conversation()
    item_id = conv.handle_client_event(user_text("oops"))[0]["item"]["id"]

    deleted = conv.handle_client_event({"type": "conversation.item.delete", "item_id": item_id})
    retrieved = conv.handle_client_event({"type": "conversation.item.retrieve", "item_id": item_id})

    assert only(deleted, "conversation.item.deleted")["item_id"] == item_id
    assert error_of(retrieved)["param"] == "item_id"


def test_item_retrieve_returns_the_item() -> None:
    conv = conversation()
    item_id = conv.handle_client_event(user_text("keep"))[0]["item"]["id"]

    event = {"type": "conversation.item.retrieve", "item_id": item_id}

    assert only(conv.handle_client_event(event), "conversation.item.retrieved")["item"]["id"] == (
        item_id
    )


def test_truncating_an_assistant_message_confirms_the_cut() -> None:
    conv = conversation()
    conv.handle_client_event(user_text("hello"))
    reply_id = only(respond(conv), "response.output_item.done")["item"]["id"]
    event = {"type": "conversation.item.truncate", "item_id": reply_id, "audio_end_ms": 120}

    truncated = only(conv.handle_client_event(event), "conversation.item.truncated")

    assert (truncated["item_id"], truncated["audio_end_ms"]) == (reply_id, 120)


# -- responses --------------------------------------------------------------------------------


def test_response_create_starts_a_response_that_stays_in_progress() -> None:
    conv = conversation()
    conv.handle_client_event(user_text("hello"))

    events = conv.handle_client_event({"type": "response.create"})

    assert types(events) == ["response.created"]
    assert events[0]["response"]["status"] == "in_progress"
    assert conv.active_response_id == events[0]["response"]["id"]


def test_a_trigger_phrase_makes_the_model_call_the_background_agent() -> None:
    conv = conversation()
    conv.handle_client_event(user_text("Ask the background agent to list files"))

    events = respond(conv)

    assert types(events) == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]


def test_the_background_agent_call_carries_one_call_id_and_the_users_words() -> None:
    conv = conversation()
    conv.handle_client_event(user_text("background agent: run ls"))

    events = respond(conv)

    arguments_done = only(events, "response.function_call_arguments.done")
    output_item = only(events, "response.output_item.done")["item"]
    item_done = only(events, "conversation.item.done")["item"]
    assert arguments_done["call_id"] == output_item["call_id"] == item_done["call_id"]
    assert item_done["name"] == arguments_done["name"] == "background_agent"
    assert json.loads(item_done["arguments"]) == {"prompt": "background agent: run ls"}
    assert item_done["type"] == "function_call"
    assert item_done["status"] == "completed"


def test_function_call_argument_deltas_join_to_the_arguments() -> None:
    conv = conversation()
    conv.handle_client_event(user_text("background agent please"))

    events = respond(conv)

    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert "".join(deltas) == only(events, "response.function_call_arguments.done")["arguments"]


def test_the_trigger_phrase_is_case_insensitive() -> None:
    conv = conversation(trigger_phrase="Background Agent")
    conv.handle_client_event(user_text("BACKGROUND AGENT do it"))

    assert "response.function_call_arguments.done" in types(respond(conv))


def test_the_tool_is_called_once_per_user_turn() -> None:
    conv = conversation()
    conv.handle_client_event(user_text("background agent, go"))
    respond(conv)

    again = respond(conv)

    assert "response.function_call_arguments.done" not in types(again)
    assert "response.output_audio_transcript.done" in types(again)


def test_a_function_call_output_is_spoken_back() -> None:
    conv = conversation()
    conv.handle_client_event(user_text("background agent: weather?"))
    call_id = only(respond(conv), "conversation.item.done")["item"]["call_id"]
    conv.handle_client_event(tool_output(call_id, "sunny, 21 C"))

    events = respond(conv)

    transcript = only(events, "response.output_audio_transcript.done")["transcript"]
    assert transcript == "Here is what the background agent found: sunny, 21 C"


def test_an_empty_function_call_output_gets_a_silent_response() -> None:
    conv = conversation()
    conv.handle_client_event(user_text("background agent: hush"))
    call_id = only(respond(conv), "conversation.item.done")["item"]["call_id"]
    conv.handle_client_event(tool_output(call_id, ""))

    events = respond(conv)

    assert types(events) == ["response.created", "response.done"]
    assert events[-1]["response"]["output"] == []


def test_without_the_trigger_phrase_the_model_repeats_the_user() -> None:
    conv = conversation()
    conv.handle_client_event(user_text("hello there"))

    events = respond(conv)

    assert only(events, "response.output_audio_transcript.done")["transcript"] == (
        "You said: hello there"
    )


def test_audio_transcript_deltas_join_to_the_done_transcript() -> None:
    conv = conversation()
    conv.handle_client_event(user_text("one two three four"))

    events = respond(conv)

    deltas = [e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta"]
    assert len(deltas) > 1
    assert "".join(deltas) == only(events, "response.output_audio_transcript.done")["transcript"]


def test_an_assistant_message_ends_with_item_done_then_response_done() -> None:
    conv = conversation()
    conv.handle_client_event(user_text("hi"))

    events = respond(conv)

    assert types(events)[:3] == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
    ]
    assert types(events)[-3:] == [
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    done = events[-1]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"] == [{"type": "output_audio", "transcript": "You said: hi"}]


def test_text_modality_streams_output_text_events() -> None:
    conv = conversation()
    conv.handle_client_event(REALTIME_UPDATE)
    conv.handle_client_event(user_text("in text please"))

    events = respond(conv)

    assert only(events, "response.output_text.done")["text"] == "You said: in text please"
    assert "response.output_text.delta" in types(events)
    assert not [kind for kind in types(events) if "audio_transcript" in kind]


def test_a_response_can_ask_for_text_on_its_own() -> None:
    conv = conversation()
    conv.handle_client_event(user_text("hi"))
    conv.handle_client_event(
        {"type": "response.create", "response": {"output_modalities": ["text"]}}
    )

    assert "response.output_text.done" in types(conv.finish_response())


def test_response_create_during_an_active_response_is_an_error() -> None:
    conv = conversation()
    conv.handle_client_event({"type": "response.create"})

    events = conv.handle_client_event({"type": "response.create", "event_id": "ev_2"})

    error = error_of(events)
    assert error["code"] == "conversation_already_has_active_response"
    assert error["message"].startswith("Conversation already has an active response in progress:")
    assert error["event_id"] == "ev_2"


def test_after_a_response_finishes_a_new_one_can_start() -> None:
    conv = conversation()
    respond(conv)

    assert types(conv.handle_client_event({"type": "response.create"})) == ["response.created"]


def test_finishing_without_an_active_response_emits_nothing() -> None:
    assert conversation().finish_response() == []


def test_response_cancel_ends_the_active_response_as_cancelled() -> None:
    conv = conversation()
    conv.handle_client_event({"type": "response.create"})

    events = conv.handle_client_event({"type": "response.cancel"})

    assert only(events, "response.done")["response"]["status"] == "cancelled"
    assert conv.active_response_id is None
    assert conv.finish_response() == []


def test_response_cancel_without_an_active_response_is_an_error() -> None:
    error = error_of(conversation().handle_client_event({"type": "response.cancel"}))

    assert error["code"] == "response_cancel_not_active"


# -- speech -----------------------------------------------------------------------------------


def test_user_speech_produces_vad_item_and_transcription_events_then_a_response() -> None:
    events = conversation().user_spoke("hello world")

    assert types(events) == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
    ]


def test_speech_events_share_the_user_items_id() -> None:
    events = conversation().user_spoke("hello world")

    item = only(events, "conversation.item.added")["item"]
    assert item["role"] == "user"
    assert item["content"][0]["type"] == "input_audio"
    ids = {e["item_id"] for e in events if "item_id" in e}
    assert ids == {item["id"]}


def test_transcription_deltas_join_to_the_completed_transcript() -> None:
    events = conversation().user_spoke("please call the background agent")

    deltas = [e["delta"] for e in events if e["type"].endswith("transcription.delta")]
    completed = only(events, "conversation.item.input_audio_transcription.completed")
    assert "".join(deltas) == completed["transcript"] == "please call the background agent"


def test_spoken_trigger_phrase_calls_the_background_agent() -> None:
    conv = conversation()
    conv.user_spoke("background agent, book a table")

    arguments = only(conv.finish_response(), "response.function_call_arguments.done")

    assert json.loads(arguments["arguments"]) == {"prompt": "background agent, book a table"}


def test_speech_without_response_creating_turn_detection_starts_no_response() -> None:
    conv = conversation()
    no_vad = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    conv.handle_client_event({"type": "session.update", "session": no_vad})

    assert "response.created" not in types(conv.user_spoke("hello"))


def test_transcription_session_speech_only_transcribes() -> None:
    conv = conversation(session={"type": "transcription"})

    events = conv.user_spoke("just transcribe me")

    assert "response.created" not in types(events)
    assert "conversation.item.input_audio_transcription.completed" in types(events)


def test_transcription_session_refuses_response_create() -> None:
    conv = conversation(session={"type": "transcription"})
    conv.handle_client_event(user_text("hello"))

    error = error_of(conv.handle_client_event({"type": "response.create"}))

    assert error["type"] == "invalid_request_error"
    assert conv.active_response_id is None


# -- bad input and bookkeeping ----------------------------------------------------------------


def test_an_unknown_event_type_is_an_invalid_value_error() -> None:
    error = error_of(conversation().handle_client_event({"type": "ping", "event_id": "ev_9"}))

    assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "type", "ev_9")
    assert "Supported values are" in error["message"]


def test_an_event_without_a_type_is_an_error() -> None:
    error = error_of(conversation().handle_client_event({"session": {}}))

    assert (error["code"], error["param"]) == ("missing_required_parameter", "type")


def test_invalid_json_is_an_error() -> None:
    error = error_of(conversation().handle_client_text("{not json"))

    assert error["code"] == "invalid_json"
    assert error["event_id"] is None


def test_a_json_value_that_is_not_an_object_is_an_error() -> None:
    assert error_of(conversation().handle_client_text("[1, 2]"))["code"] == "invalid_json"


def test_the_conversation_keeps_working_after_an_error() -> None:
    conv = conversation()
    conv.handle_client_text("garbage")
    conv.handle_client_event({"type": "nope"})

    conv.handle_client_event(user_text("still there?"))

    assert "response.done" in types(respond(conv))


def test_every_server_event_has_its_own_event_id() -> None:
    conv = conversation()
    events = [conv.session_created(), *conv.user_spoke("hi there"), *conv.finish_response()]

    ids = [event["event_id"] for event in events]
    assert all(event_id.startswith("event_") for event_id in ids)
    assert len(set(ids)) == len(ids)


def test_returned_events_do_not_share_state_with_the_conversation() -> None:
    conv = conversation()
    conv.handle_client_event(user_text("original"))[0]["item"]["content"][0]["text"] = "changed"

    transcript = only(respond(conv), "response.output_audio_transcript.done")["transcript"]

    assert transcript == "You said: original"


def test_client_events_are_recorded_in_order() -> None:
    conv = conversation()
    conv.handle_client_event(REALTIME_UPDATE)
    conv.handle_client_event({"type": "nope"})

    assert types(conv.client_events) == ["session.update", "nope"]


def test_function_call_outputs_are_counted_per_call_id() -> None:
    conv = conversation()
    conv.handle_client_event(tool_output("call_a", "one"))
    conv.handle_client_event(tool_output("call_a", "two"))
    conv.handle_client_event(tool_output("call_b", "three"))

    assert conv.function_call_output_counts() == {"call_a": 2, "call_b": 1}


def test_json_nesting_too_deeply_is_an_error() -> None:
    deep = "[" * 20_000 + "]" * 20_000
    assert error_of(conversation().handle_client_text(deep))["code"] == "invalid_json"
