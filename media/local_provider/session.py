"""Session configuration of the offline model: defaults, validation, updates, and the echo."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SESSION_TYPES = ("realtime", "transcription")
OUTPUT_MODALITIES = (["audio"], ["text"])

_PCM_24K = {"type": "audio/pcm", "rate": 24000}

# What each session type shows in `session.created` / `session.updated`; a transcription
# session has no instructions, output or tools on the wire.
_VIEW_KEYS = {
    "realtime": (
        "type",
        "id",
        "model",
        "instructions",
        "output_modalities",
        "audio",
        "tools",
        "tool_choice",
    ),
    "transcription": ("type", "id", "audio"),
}
_OBJECT_NAMES = {"realtime": "realtime.session", "transcription": "realtime.transcription_session"}
_TRANSCRIPTION_TURN_DETECTION = ("type", "threshold", "prefix_padding_ms", "silence_duration_ms")
# The server owns these; an update naming them must not overwrite them.
_SERVER_OWNED = ("id", "object")


@dataclass(frozen=True)
class SessionProblem:
    """Why a session object was rejected, as an OpenAI error code, message and param."""

    code: str
    message: str
    param: str


def find_session_problem(session: object) -> SessionProblem | None:
    """The first thing wrong with a GA session object, or None when it is acceptable."""
    if not isinstance(session, dict):
        return SessionProblem(
            "invalid_type", "Invalid type for 'session': expected an object.", "session"
        )
    kind = session.get("type")
    if kind is None:
        return SessionProblem(
            "missing_required_parameter",
            "Missing required parameter: 'session.type'.",
            "session.type",
        )
    if kind not in SESSION_TYPES:
        return SessionProblem(
            "invalid_value",
            f"Invalid value: {kind!r}. Supported values are: 'realtime' and 'transcription'.",
            "session.type",
        )
    modalities = session.get("output_modalities")
    if modalities is not None and modalities not in OUTPUT_MODALITIES:
        return SessionProblem(
            "invalid_value",
            "Invalid value for 'session.output_modalities': use ['audio'] or ['text'].",
            "session.output_modalities",
        )
    return None


def default_session(session_id: str) -> dict[str, Any]:
    """A conversational session as the provider starts it before any update."""
    return {
        "type": "realtime",
        "id": session_id,
        "model": "gpt-realtime",
        "instructions": "",
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": dict(_PCM_24K),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 200,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {"format": dict(_PCM_24K), "voice": "marin", "speed": 1.0},
        },
        "tools": [],
        "tool_choice": "auto",
    }


def updated_session(current: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """`current` with `update` applied: objects of the same `type` merge key by key, anything
    else replaces."""
    return _merged(current, {k: v for k, v in update.items() if k not in _SERVER_OWNED})


def _merged(current: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(current))
    for key, value in update.items():
        old = merged.get(key)
        # An object of another `type` (server to semantic VAD, say) has other fields: replace it.
        if (
            isinstance(old, Mapping)
            and isinstance(value, Mapping)
            and value.get("type", old.get("type")) == old.get("type")
        ):
            merged[key] = _merged(old, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def session_view(session: Mapping[str, Any]) -> dict[str, Any]:
    """The session object as the server echoes it, with only the fields of its type."""
    kind = session["type"]
    view = {key: copy.deepcopy(session[key]) for key in _VIEW_KEYS[kind] if key in session}
    view["object"] = _OBJECT_NAMES[kind]
    if kind == "transcription":
        audio_input = view.get("audio", {}).get("input", {})
        turn_detection = audio_input.get("turn_detection")
        if isinstance(turn_detection, dict):
            # A transcription session creates no responses, so these switches do not exist.
            audio_input["turn_detection"] = {
                k: v for k, v in turn_detection.items() if k in _TRANSCRIPTION_TURN_DETECTION
            }
        view["audio"] = {"input": audio_input}
    return view


def creates_response_on_speech(session: Mapping[str, Any]) -> bool:
    """Whether the end of user speech starts a response (server or semantic VAD)."""
    if session["type"] != "realtime":
        return False
    turn_detection = session.get("audio", {}).get("input", {}).get("turn_detection")
    if not isinstance(turn_detection, Mapping):
        return False
    return bool(turn_detection.get("create_response", True))


def interrupts_response(session: Mapping[str, Any]) -> bool:
    """Whether speech onset interrupts the reply (server or semantic VAD, the default)."""
    turn_detection = session.get("audio", {}).get("input", {}).get("turn_detection")
    if not isinstance(turn_detection, Mapping):
        return False
    return bool(turn_detection.get("interrupt_response", True))
