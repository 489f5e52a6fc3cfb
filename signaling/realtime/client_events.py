"""Builders for the client events callbridge sends on the sideband (PROTOCOL §3, §5, §6.2).

Every builder returns a plain JSON-able dict; the I/O layer serialises it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

SessionMode = Literal["conversational", "transcription"]
"""A full voice conversation with tools, or input transcription only."""

OutputModality = Literal["audio", "text"]
"""Whether the model answers in speech (with a transcript) or in text only."""

MessageRole = Literal["user", "system"]
"""Roles the GA API accepts for `input_text` messages we create."""

VOICES: Final = (
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
"""Voices a GA realtime session accepts."""

BACKGROUND_AGENT_TOOL: Final = "background_agent"
"""The tool through which the model hands a user request to a worker."""

REMAIN_SILENT_TOOL: Final = "remain_silent"
"""The tool the model calls when saying nothing is the best answer."""

_AUDIO_FORMAT: Final = {"type": "audio/pcm", "rate": 24000}

_BACKGROUND_AGENT_DESCRIPTION: Final = (
    "Send a user request to the background agent. Use this as the default action. Do not "
    "rephrase the user's ask or rewrite it in your own words; pass along the user's own words. "
    "If the background agent is idle, this starts a new task and returns the final result to "
    "the user. If the background agent is already working on a task, this sends the request as "
    "guidance to steer that previous task. If the user asks to do something next, later, after "
    "this, or once current work finishes, call this tool so the work is actually queued "
    "instead of merely promising to do it later."
)

_REMAIN_SILENT_DESCRIPTION: Final = (
    "Say nothing this turn. Call this when staying quiet is the best response: after a hidden "
    "control message, after a background agent update that needs no spoken reply, or when "
    "speaking aloud would interrupt or distract the user. Calling it has no visible effect."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    """The session we ask the provider for; validated on construction (`ValueError`).

    An empty `instructions` is left out of the payload rather than sent, because an empty
    string would replace the provider's default instructions with nothing.
    """

    mode: SessionMode = "conversational"
    model: str = "gpt-realtime-1.5"
    instructions: str = ""
    voice: str = "marin"
    output_modality: OutputModality = "audio"
    transcription_model: str = "gpt-4o-mini-transcribe"

    def __post_init__(self) -> None:
        # Settings arrive as strings from the environment, so the Literals are checked here too.
        if self.mode not in ("conversational", "transcription"):
            raise ValueError(f"unknown session mode: {self.mode!r}")
        if self.output_modality not in ("audio", "text"):
            raise ValueError(f"unknown output modality: {self.output_modality!r}")
        if self.voice not in VOICES:
            raise ValueError(f"unknown voice: {self.voice!r} (expected one of {VOICES})")
        if not self.model:
            raise ValueError("model must not be empty")
        if not self.transcription_model:
            raise ValueError("transcription_model must not be empty")


def _tools() -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "name": BACKGROUND_AGENT_TOOL,
            "description": _BACKGROUND_AGENT_DESCRIPTION,
            "parameters": {
                "type": "object",
                "properties": {
                    "prompt": {
                        "type": "string",
                        "description": "The user request to delegate to the background agent.",
                    }
                },
                "required": ["prompt"],
                "additionalProperties": False,
            },
        },
        {
            "type": "function",
            "name": REMAIN_SILENT_TOOL,
            "description": _REMAIN_SILENT_DESCRIPTION,
            "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
        },
    ]


def session_payload(config: SessionConfig, *, include_model: bool) -> dict[str, Any]:
    """The GA session object for `config` (PROTOCOL §3.1 conversational, §3.2 transcription).

    `include_model` is for call creation; the sideband `session.update` must not carry a model.
    A transcription session has no top-level model, so it ignores `include_model`.
    """
    transcription = {"model": config.transcription_model}
    if config.mode == "transcription":
        return {
            "type": "transcription",
            "audio": {"input": {"format": dict(_AUDIO_FORMAT), "transcription": transcription}},
        }
    payload: dict[str, Any] = {"type": "realtime"}
    if include_model:
        payload["model"] = config.model
    if config.instructions:
        payload["instructions"] = config.instructions
    payload["output_modalities"] = [config.output_modality]
    # audio.output stays even for text output: that is what codex sends and the API accepts.
    payload["audio"] = {
        "input": {
            "format": dict(_AUDIO_FORMAT),
            "noise_reduction": {"type": "near_field"},
            "transcription": transcription,
            "turn_detection": {
                "type": "server_vad",
                "interrupt_response": True,
                "create_response": True,
                "silence_duration_ms": 500,
            },
        },
        "output": {"format": dict(_AUDIO_FORMAT), "voice": config.voice},
    }
    payload["tools"] = _tools()
    payload["tool_choice"] = "auto"
    return payload


def session_update(config: SessionConfig) -> dict[str, Any]:
    """The sideband `session.update` for `config` (no model)."""
    return {"type": "session.update", "session": session_payload(config, include_model=False)}


def user_message(
    text: str, *, item_id: str | None = None, role: MessageRole = "user"
) -> dict[str, Any]:
    """A `conversation.item.create` adding one `input_text` message.

    Give `item_id` to recognise the item when the provider echoes it back.
    """
    item: dict[str, Any] = {}
    if item_id is not None:
        item["id"] = item_id
    item["type"] = "message"
    item["role"] = role
    item["content"] = [{"type": "input_text", "text": text}]
    return {"type": "conversation.item.create", "item": item}


def function_call_output(
    call_id: str, output: str, *, item_id: str | None = None
) -> dict[str, Any]:
    """A `conversation.item.create` answering tool call `call_id`; it does not start a reply."""
    item: dict[str, Any] = {} if item_id is None else {"id": item_id}
    item.update({"type": "function_call_output", "call_id": call_id, "output": output})
    return {"type": "conversation.item.create", "item": item}


def response_create() -> dict[str, Any]:
    """Ask the model to respond now."""
    return {"type": "response.create"}


def response_cancel() -> dict[str, Any]:
    """Cancel the model's response in progress."""
    return {"type": "response.cancel"}


def _changed(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    diff: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = _changed(before, value)
            if nested:
                diff[key] = nested
        elif value != before:
            diff[key] = value
    return diff


def session_diff(confirmed: SessionConfig, config: SessionConfig) -> dict[str, Any] | None:
    """A `session.update` carrying only what `config` changes from `confirmed`, or None when
    nothing changes. The session `type` is always included, as the GA API requires it; a
    change of mode sends the whole session."""
    before = session_payload(confirmed, include_model=False)
    after = session_payload(config, include_model=False)
    if before.get("type") != after.get("type"):
        return session_update(config)
    diff = _changed(before, after)
    if "instructions" in before and "instructions" not in after:
        # A session without instructions leaves them out; taking them away is sending none.
        diff["instructions"] = ""
    if not diff:
        return None
    return {"type": "session.update", "session": {"type": after["type"], **diff}}


def session_touch(config: SessionConfig) -> dict[str, Any]:
    """A `session.update` that changes nothing (only the session `type`); the provider still
    answers it with `session.updated`, confirming the settings in force."""
    return {
        "type": "session.update",
        "session": {"type": session_payload(config, include_model=False)["type"]},
    }


def item_retrieve(item_id: str) -> dict[str, Any]:
    """Ask for item `item_id` in full (`conversation.item.retrieve`, PROTOCOL §10.4)."""
    return {"type": "conversation.item.retrieve", "item_id": item_id}
