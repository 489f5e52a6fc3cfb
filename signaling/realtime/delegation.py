"""A handoff to a worker and its `<realtime_delegation>` envelope (PROTOCOL §6.1, §6.5)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from signaling.realtime.transcript import TranscriptEntry

_REQUEST_KEYS: Final = ("input_transcript", "input", "text", "prompt", "query")


@dataclass(frozen=True, slots=True)
class Delegation:
    """One `background_agent` tool call, ready for a worker.

    `handoff_id` is `f"{call_id}:{tool_call_id}"`, unique across calls. `transcript_delta`
    holds the entries that gained text since the call's previous handoff. `steering` is set
    when another handoff of the call was still open: the model has already been told this
    request went to the running task as guidance. The core hands off no `request` longer
    than `CallLimits.max_request_bytes` UTF-8 bytes.
    """

    call_id: str
    tool_call_id: str
    handoff_id: str
    item_id: str
    request: str
    transcript_delta: tuple[TranscriptEntry, ...]
    envelope: str
    steering: bool

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict that `from_json` turns back into an equal `Delegation`."""
        return {
            "call_id": self.call_id,
            "tool_call_id": self.tool_call_id,
            "handoff_id": self.handoff_id,
            "item_id": self.item_id,
            "request": self.request,
            "transcript_delta": [
                {"item_id": e.item_id, "role": e.role, "text": e.text, "final": e.final}
                for e in self.transcript_delta
            ],
            "envelope": self.envelope,
            "steering": self.steering,
        }

    @classmethod
    def from_json(cls, data: object) -> Delegation:
        """Rebuild a `Delegation` from `to_json` output; raise `ValueError` on any bad shape.

        Unknown keys are ignored so that a newer producer can add fields.
        """
        obj = _expect_object(data, "delegation")
        call_id = _expect_str(obj, "call_id")
        tool_call_id = _expect_str(obj, "tool_call_id")
        handoff_id = _expect_str(obj, "handoff_id")
        if handoff_id != f"{call_id}:{tool_call_id}":
            raise ValueError("handoff_id does not match call_id and tool_call_id")
        entries = obj.get("transcript_delta")
        if not isinstance(entries, list):
            raise ValueError("transcript_delta must be a list")
        steering = obj.get("steering")
        if not isinstance(steering, bool):
            raise ValueError("steering must be a boolean")
        return cls(
            call_id=call_id,
            tool_call_id=tool_call_id,
            handoff_id=handoff_id,
            item_id=_expect_str(obj, "item_id"),
            request=_expect_str(obj, "request"),
            transcript_delta=tuple(_entry_from_json(entry) for entry in entries),
            envelope=_expect_str(obj, "envelope"),
            steering=steering,
        )


def _expect_object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object")
    return value


def _expect_str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _entry_from_json(data: object) -> TranscriptEntry:
    obj = _expect_object(data, "transcript entry")
    role = obj.get("role")
    final = obj.get("final")
    if not isinstance(final, bool):
        raise ValueError("transcript entry final must be a boolean")
    item_id = _expect_str(obj, "item_id")
    text = _expect_str(obj, "text")
    # Spelled out so that the type checker sees `role` narrowed to the Role literal.
    if role == "user":
        return TranscriptEntry(item_id=item_id, role="user", text=text, final=final)
    if role == "assistant":
        return TranscriptEntry(item_id=item_id, role="assistant", text=text, final=final)
    raise ValueError("transcript entry role must be 'user' or 'assistant'")


def extract_request(arguments: str) -> str:
    """The user request in a `background_agent` call's JSON `arguments` (PROTOCOL §6.1).

    The first non-blank string among the keys `input_transcript`, `input`, `text`, `prompt`,
    `query`, trimmed; failing that, the raw arguments, so that nothing the model sent is lost.
    """
    try:
        parsed = json.loads(arguments)
    except (ValueError, RecursionError):
        return arguments
    if isinstance(parsed, dict):
        for key in _REQUEST_KEYS:
            value = parsed.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return arguments


def escape(text: str) -> str:
    """Escape `&`, `<` and `>` for the envelope; quotes and newlines stay as they are."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_envelope(request: str, delta_entries: Sequence[TranscriptEntry]) -> str | None:
    """The `<realtime_delegation>` text a worker receives (PROTOCOL §6.5, exact whitespace).

    The input is `request`, or the transcript delta when `request` is blank; `None` when both
    are empty, as there is nothing to delegate.
    """
    delta = "\n".join(f"{entry.role}: {entry.text}" for entry in delta_entries)
    task = request if request.strip() else delta
    if not task:
        return None
    lines = ["<realtime_delegation>", f"  <input>{escape(task)}</input>"]
    if delta:
        lines.append(f"  <transcript_delta>{escape(delta)}</transcript_delta>")
    lines.append("</realtime_delegation>")
    return "\n".join(lines)
