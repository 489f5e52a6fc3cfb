"""The stand-in's model through a spoken turn: VAD timing, spoken replies, barge-in, refusals."""

from __future__ import annotations

import itertools
from typing import Any

from media.local_provider.model import MAX_CLIENT_EVENTS, Conversation
from media.local_provider.server_events import IdFactory, JsonObject


def counting_ids() -> IdFactory:
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(counter)}"


def conversation(**kwargs: Any) -> Conversation:
    return Conversation(new_id=counting_ids(), **kwargs)


def types(events: list[JsonObject]) -> list[str]:
    return [event["type"] for event in events]


def only(events: list[JsonObject], kind: str) -> JsonObject:
    matching = [event for event in events if event["type"] == kind]
    assert len(matching) == 1, types(events)
    return matching[0]


def spoken_reply(conv: Conversation) -> tuple[str, str]:
    """The user says something, the reply finishes and starts playing: (response id, item id)."""
    conv.user_spoke("hello can you hear me")
    done = only(conv.finish_response(), "response.done")["response"]
    conv.audio_started(done["id"])
    return done["id"], done["output"][0]["id"]


def test_speech_started_goes_out_alone_at_the_onset() -> None:
    events = conversation().speech_started(740)

    assert types(events) == ["input_audio_buffer.speech_started"]
    assert events[0]["audio_start_ms"] == 740


def test_speech_stopped_commits_the_audio_before_any_transcript() -> None:
    conv = conversation()
    started = conv.speech_started(500)[0]

    events, item_id = conv.speech_stopped(2100)

    assert types(events) == [
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    assert item_id == started["item_id"] == events[0]["item_id"]
    assert events[0]["audio_end_ms"] == 2100
    assert events[3]["item"]["content"] == [{"type": "input_audio", "transcript": None}]


def test_the_transcription_follows_the_commit_and_starts_the_reply() -> None:
    conv = conversation()
    conv.speech_started(500)
    _, item_id = conv.speech_stopped(2100)

    events = conv.speech_transcribed(item_id, "what time is it")

    assert types(events)[-2:] == [
        "conversation.item.input_audio_transcription.completed",
        "response.created",
    ]
    completed = events[-2]
    assert (completed["item_id"], completed["transcript"]) == (item_id, "what time is it")
    assert completed["usage"] == {"type": "duration", "seconds": 1.6}


def test_silence_transcribed_as_nothing_starts_no_reply() -> None:
    conv = conversation()
    conv.speech_started(0)
    _, item_id = conv.speech_stopped(300)

    assert "response.created" not in types(conv.speech_transcribed(item_id, ""))


def test_a_failed_transcription_is_reported_for_its_item() -> None:
    conv = conversation()
    conv.speech_started(0)
    _, item_id = conv.speech_stopped(300)

    failed = only(
        conv.speech_not_transcribed(item_id, "decoder crashed"),
        "conversation.item.input_audio_transcription.failed",
    )

    assert failed["item_id"] == item_id
    assert failed["error"]["message"] == "decoder crashed"


def test_a_spoken_reply_is_framed_by_output_audio_buffer_started_and_stopped() -> None:
    conv = conversation()
    conv.user_spoke("hello")
    response_id = only(conv.finish_response(), "response.done")["response"]["id"]

    started = conv.audio_started(response_id)
    stopped = conv.audio_stopped(response_id)

    assert [(e["type"], e["response_id"]) for e in started + stopped] == [
        ("output_audio_buffer.started", response_id),
        ("output_audio_buffer.stopped", response_id),
    ]


def test_a_text_reply_never_plays() -> None:
    conv = conversation()
    conv.handle_client_event(
        {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}}
    )
    conv.user_spoke("hello")
    response_id = only(conv.finish_response(), "response.done")["response"]["id"]

    assert conv.audio_started(response_id) == []


def test_speech_during_a_spoken_reply_clears_it_and_truncates_it_to_what_was_played() -> None:
    conv = conversation()
    response_id, reply_id = spoken_reply(conv)

    events = conv.speech_started(9000, played_ms=1240)

    assert types(events) == [
        "input_audio_buffer.speech_started",
        "output_audio_buffer.cleared",
        "conversation.item.truncated",
    ]
    assert events[1]["response_id"] == response_id
    assert (events[2]["item_id"], events[2]["audio_end_ms"]) == (reply_id, 1240)
    assert conv.audio_stopped(response_id) == []


def test_speech_during_a_response_in_progress_cancels_it_as_turn_detected() -> None:
    conv = conversation()
    conv.user_spoke("hello")

    done = only(conv.speech_started(4000), "response.done")["response"]

    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert conv.active_response_id is None


def test_without_interrupt_response_speech_does_not_cut_the_reply() -> None:
    conv = conversation()
    conv.handle_client_event(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"interrupt_response": False}}},
            },
        }
    )
    spoken_reply(conv)

    assert types(conv.speech_started(9000, played_ms=500)) == ["input_audio_buffer.speech_started"]


def test_output_audio_buffer_clear_names_the_response_it_cleared() -> None:
    conv = conversation()
    response_id, _ = spoken_reply(conv)

    events = conv.handle_client_event({"type": "output_audio_buffer.clear"})

    assert [(e["type"], e["response_id"]) for e in events] == [
        ("output_audio_buffer.cleared", response_id)
    ]


def test_output_audio_buffer_clear_before_anything_was_spoken_is_refused() -> None:
    events = conversation().handle_client_event(
        {"type": "output_audio_buffer.clear", "event_id": "c1"}
    )

    assert types(events) == ["error"]
    assert events[0]["error"]["event_id"] == "c1"


def test_a_second_response_create_is_refused_naming_the_client_event() -> None:
    conv = conversation()
    conv.handle_client_event({"type": "response.create"})

    events = conv.handle_client_event({"type": "response.create", "event_id": "evt_again"})

    error = only(events, "error")["error"]
    assert (error["code"], error["event_id"]) == (
        "conversation_already_has_active_response",
        "evt_again",
    )


def test_a_voice_change_after_assistant_audio_is_refused_whole() -> None:
    conv = conversation()
    spoken_reply(conv)
    update = {
        "type": "session.update",
        "event_id": "evt_voice",
        "session": {
            "type": "realtime",
            "instructions": "new",
            "audio": {"output": {"voice": "ash"}},
        },
    }

    events = conv.handle_client_event(update)

    error = only(events, "error")["error"]
    assert (error["code"], error["event_id"]) == ("cannot_update_voice", "evt_voice")
    assert conv.session["instructions"] == ""
    assert conv.session["audio"]["output"]["voice"] == "marin"


def test_a_voice_change_before_assistant_audio_is_accepted() -> None:
    conv = conversation()
    update = {
        "type": "session.update",
        "session": {"type": "realtime", "audio": {"output": {"voice": "ash"}}},
    }

    assert types(conv.handle_client_event(update)) == ["session.updated"]


def test_repeating_the_current_voice_after_assistant_audio_is_accepted() -> None:
    conv = conversation()
    spoken_reply(conv)
    update = {
        "type": "session.update",
        "session": {"type": "realtime", "audio": {"output": {"voice": "marin"}}},
    }

    assert types(conv.handle_client_event(update)) == ["session.updated"]


def test_retrieving_an_item_answers_with_the_item() -> None:
    conv = conversation()
    conv.user_spoke("hello")
    item_id = only(conv.finish_response(), "response.output_item.done")["item"]["id"]

    retrieved = only(
        conv.handle_client_event({"type": "conversation.item.retrieve", "item_id": item_id}),
        "conversation.item.retrieved",
    )

    assert retrieved["item"]["id"] == item_id


def test_retrieving_an_unknown_item_is_an_error_naming_the_client_event() -> None:
    events = conversation().handle_client_event(
        {"type": "conversation.item.retrieve", "item_id": "item_nope", "event_id": "evt_r"}
    )

    error = only(events, "error")["error"]
    assert (error["param"], error["event_id"]) == ("item_id", "evt_r")


def test_speech_before_a_finished_reply_starts_playing_cuts_it_at_zero() -> None:
    conv = conversation()
    conv.user_spoke("hello")
    done = only(conv.finish_response(), "response.done")["response"]

    events = conv.speech_started(9000, played_ms=700)

    truncated = only(events, "conversation.item.truncated")
    assert (truncated["item_id"], truncated["audio_end_ms"]) == (done["output"][0]["id"], 0)
    assert conv.audio_started(done["id"]) == []


def test_a_conversation_that_plays_no_audio_has_no_output_audio_buffer() -> None:
    conv = conversation(plays_audio=False)
    conv.user_spoke("hello")
    response_id = only(conv.finish_response(), "response.done")["response"]["id"]

    assert conv.audio_started(response_id) == []
    assert types(conv.handle_client_event({"type": "output_audio_buffer.clear"})) == ["error"]
    assert types(conv.speech_started(9000)) == ["input_audio_buffer.speech_started"]


def test_the_client_events_kept_are_bounded_and_carry_no_audio() -> None:
    conv = conversation()
    append = {"type": "input_audio_buffer.append", "audio": "AAAA" * 100}
    for _ in range(MAX_CLIENT_EVENTS + 5):
        conv.handle_client_event(append)

    kept = conv.client_events

    assert len(kept) == MAX_CLIENT_EVENTS
    assert kept[0] == {"type": "input_audio_buffer.append"}
