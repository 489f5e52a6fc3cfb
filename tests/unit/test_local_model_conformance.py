"""Every event the stand-in's model can emit, validated strictly by the `openai` SDK's types.

The end-to-end conformance test (tests/e2e/test_conformance.py) covers what real calls produce;
this one drives the model offline through the paths a call rarely hits.
"""

from __future__ import annotations

from media.local_provider.model import Conversation
from media.local_provider.server_events import JsonObject
from tests.sdk_types import validate_server_event


def validated(events: list[JsonObject]) -> list[JsonObject]:
    for event in events:
        validate_server_event(event)
    return events


def test_a_response_cancelled_by_the_client_conforms() -> None:
    conv = Conversation()
    validated(conv.handle_client_event({"type": "response.create"}))

    assert validated(conv.handle_client_event({"type": "response.cancel"}))


def test_a_response_cancelled_by_barge_in_conforms() -> None:
    conv = Conversation()
    conv.handle_client_event({"type": "response.create"})

    assert validated(conv.speech_started(100))[-1]["type"] == "response.done"


def test_a_failed_transcription_conforms() -> None:
    conv = Conversation()
    validated(conv.speech_started(0))
    events, item_id = conv.speech_stopped(500)
    validated(events)

    assert validated(conv.speech_not_transcribed(item_id, "the decoder failed"))


def test_a_client_truncation_conforms() -> None:
    conv = Conversation()
    conv.user_spoke("hello")
    item_id = next(
        e["item"]["id"] for e in conv.finish_response() if e["type"] == "response.output_item.done"
    )

    assert validated(
        conv.handle_client_event(
            {"type": "conversation.item.truncate", "item_id": item_id, "audio_end_ms": 300}
        )
    )


def test_a_transcription_session_conforms() -> None:
    conv = Conversation(session={"type": "transcription"})

    assert validated([conv.session_created()])
    assert validated(conv.user_spoke("hello"))


def test_a_fully_configured_realtime_session_conforms() -> None:
    session = {
        "type": "realtime",
        "model": "gpt-realtime",
        "instructions": "Be brief.",
        "output_modalities": ["text"],
        "audio": {
            "input": {
                "transcription": {"model": "gpt-4o-mini-transcribe"},
                "turn_detection": {"type": "semantic_vad", "eagerness": "low"},
            },
            "output": {"voice": "ash", "speed": 1.1},
        },
        "tool_choice": "required",
    }

    assert validated(
        Conversation().handle_client_event({"type": "session.update", "session": session})
    )
