"""What callbridge sends on the sideband: session payloads (PROTOCOL §3) and client events (§5)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from signaling.realtime.client_events import (
    VOICES,
    SessionConfig,
    function_call_output,
    response_cancel,
    response_create,
    session_diff,
    session_payload,
    session_update,
    user_message,
)

BACKGROUND_AGENT_DESCRIPTION = (
    "Send a user request to the background agent. Use this as the default action. Do not "
    "rephrase the user's ask or rewrite it in your own words; pass along the user's own words. "
    "If the background agent is idle, this starts a new task and returns the final result to "
    "the user. If the background agent is already working on a task, this sends the request as "
    "guidance to steer that previous task. If the user asks to do something next, later, after "
    "this, or once current work finishes, call this tool so the work is actually queued "
    "instead of merely promising to do it later."
)

CONVERSATIONAL = SessionConfig(instructions="You are a helpful voice assistant.")


def test_conversational_session_update_is_exactly_protocol_3_1() -> None:
    update = session_update(CONVERSATIONAL)
    remain_silent = update["session"]["tools"][1]
    expected = {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "instructions": "You are a helpful voice assistant.",
            "output_modalities": ["audio"],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "noise_reduction": {"type": "near_field"},
                    "transcription": {"model": "gpt-4o-mini-transcribe"},
                    "turn_detection": {
                        "type": "server_vad",
                        "interrupt_response": True,
                        "create_response": True,
                        "silence_duration_ms": 500,
                    },
                },
                "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
            },
            "tools": [
                {
                    "type": "function",
                    "name": "background_agent",
                    "description": BACKGROUND_AGENT_DESCRIPTION,
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "prompt": {
                                "type": "string",
                                "description": (
                                    "The user request to delegate to the background agent."
                                ),
                            }
                        },
                        "required": ["prompt"],
                        "additionalProperties": False,
                    },
                },
                {
                    "type": "function",
                    "name": "remain_silent",
                    "description": remain_silent["description"],
                    "parameters": {
                        "type": "object",
                        "properties": {},
                        "additionalProperties": False,
                    },
                },
            ],
            "tool_choice": "auto",
        },
    }
    # Compared as JSON text so that key order, which the wire shows, counts too.
    assert json.dumps(update) == json.dumps(expected)


def test_remain_silent_tells_the_model_when_to_stay_quiet() -> None:
    description = session_payload(CONVERSATIONAL, include_model=False)["tools"][1]["description"]
    assert "control message" in description
    assert "background agent" in description


def test_call_creation_payload_carries_the_model_after_the_type() -> None:
    payload = session_payload(CONVERSATIONAL, include_model=True)
    assert list(payload)[:2] == ["type", "model"]
    assert payload["model"] == "gpt-realtime-1.5"


def test_sideband_session_update_never_carries_a_model() -> None:
    assert "model" not in session_update(CONVERSATIONAL)["session"]


def test_text_output_keeps_the_audio_output_block() -> None:
    config = SessionConfig(instructions="x", output_modality="text", voice="cedar")
    session = session_payload(config, include_model=False)
    assert session["output_modalities"] == ["text"]
    assert session["audio"]["output"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "voice": "cedar",
    }


def test_empty_instructions_are_left_out() -> None:
    assert "instructions" not in session_payload(SessionConfig(), include_model=False)


def test_transcription_session_update_is_exactly_protocol_3_2() -> None:
    update = session_update(SessionConfig(mode="transcription", instructions="ignored"))
    expected = {
        "type": "session.update",
        "session": {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": {"model": "gpt-4o-mini-transcribe"},
                }
            },
        },
    }
    assert json.dumps(update) == json.dumps(expected)


def test_transcription_session_has_no_model_even_for_call_creation() -> None:
    config = SessionConfig(mode="transcription", transcription_model="gpt-live-transcribe")
    assert session_payload(config, include_model=True) == {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "gpt-live-transcribe"},
            }
        },
    }


def test_changing_one_payload_leaves_later_payloads_intact() -> None:
    first = session_payload(CONVERSATIONAL, include_model=False)
    first["audio"]["input"]["format"]["rate"] = 8000
    first["tools"][0]["parameters"]["required"].append("x")
    later = session_payload(CONVERSATIONAL, include_model=False)
    assert later["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert later["tools"][0]["parameters"]["required"] == ["prompt"]


def test_voices_are_the_ga_voices() -> None:
    assert VOICES == (
        "alloy",
        "ash",
        "ballad",
        "coral",
        "echo",
        "sage",
        "shimmer",
        "verse",
        "marin",
        "cedar",
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("voice", "cove"),
        ("mode", "quicksilver"),
        ("output_modality", "video"),
        ("model", ""),
        ("transcription_model", ""),
    ],
)
def test_config_rejects_values_the_provider_would_refuse(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field.split("_")[0]):
        SessionConfig(**{field: value})  # type: ignore[arg-type]


def test_config_defaults() -> None:
    config = SessionConfig()
    assert (config.mode, config.model, config.voice, config.output_modality) == (
        "conversational",
        "gpt-realtime-1.5",
        "marin",
        "audio",
    )
    assert config.transcription_model == "gpt-4o-mini-transcribe"


def test_user_message_is_an_input_text_item() -> None:
    assert user_message("hello") == {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "hello"}],
        },
    }


def test_user_message_can_name_its_item_and_role() -> None:
    event = user_message("[BACKEND] working", item_id="cb_ctl_1", role="system")
    assert event["item"]["id"] == "cb_ctl_1"
    assert event["item"]["role"] == "system"


def test_function_call_output_answers_one_call() -> None:
    assert function_call_output("call_1", "done") == {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "call_1", "output": "done"},
    }


def test_function_call_output_can_name_its_item() -> None:
    assert function_call_output("call_1", "done", item_id="cb_ctl_1")["item"] == {
        "id": "cb_ctl_1",
        "type": "function_call_output",
        "call_id": "call_1",
        "output": "done",
    }


def test_response_create_and_cancel() -> None:
    assert response_create() == {"type": "response.create"}
    assert response_cancel() == {"type": "response.cancel"}


def test_a_session_diff_carries_only_what_changed_with_its_type() -> None:
    changed = replace(CONVERSATIONAL, voice="ash")
    assert session_diff(CONVERSATIONAL, changed) == {
        "type": "session.update",
        "session": {"type": "realtime", "audio": {"output": {"voice": "ash"}}},
    }


def test_taking_the_instructions_away_sends_empty_instructions() -> None:
    cleared = replace(CONVERSATIONAL, instructions="")
    assert session_diff(CONVERSATIONAL, cleared) == {
        "type": "session.update",
        "session": {"type": "realtime", "instructions": ""},
    }


def test_an_unchanged_session_has_no_diff() -> None:
    assert session_diff(CONVERSATIONAL, replace(CONVERSATIONAL)) is None
