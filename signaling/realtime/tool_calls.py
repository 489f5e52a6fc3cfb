"""One record per tool call the model made: open, handed off, answered or refused."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

ToolCallStatus = Literal["open", "handed_off", "answered", "refused"]
"""`open`: seen, not yet answered; `handed_off`: a worker has it; `answered`: its one
`function_call_output` went out; `refused`: answered with an error output (see `reason`)."""

RETRY_OUTPUT: Final = (
    "The tool call was not run: {reason}. Call background_agent again with a JSON object "
    'argument like {{"prompt": "<the user\'s request>"}}.'
)
"""The error output for a truncated or malformed tool call: it asks the model to try again."""

REQUEST_TOO_LONG_OUTPUT: Final = (
    "The tool call was not run: {reason}. Call background_agent again with a shorter prompt "
    "(at most {limit} bytes) that says what the user asked for."
)
"""The error output for a `background_agent` call whose prompt is over the request cap."""

UNKNOWN_TOOL_OUTPUT: Final = "There is no tool named {name!r}. The tools are: {tools}."
"""The error output for a call to a tool we did not offer."""


@dataclass(slots=True)
class ToolCall:
    """One tool call; `handoff_id` is set once it went to a worker, `output_item_id` once
    its output was sent, `reason` says why it was refused. `name` is the name as shown: redacted,
    and cut to `CallLimits.max_name_bytes` (see `limits.clip`). `answer_by` is when a handoff
    without a result is given up (None until the core knows the time it was handed off)."""

    tool_call_id: str
    name: str
    item_id: str | None
    status: ToolCallStatus = "open"
    handoff_id: str | None = None
    output_item_id: str | None = None
    reason: str | None = None
    steering: bool = False
    result_in: bool = False
    delivered: bool = False
    answer_by: float | None = None

    @property
    def answered(self) -> bool:
        """Whether its `function_call_output` went out (or is queued to)."""
        return self.output_item_id is not None

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict; `from_json` reads it back."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ToolCall:
        """Rebuild from `to_json` output; raise `ValueError` on a bad shape."""
        try:
            call = cls(**data)
        except TypeError as exc:
            raise ValueError(f"bad tool call record: {exc}") from None
        if not isinstance(call.tool_call_id, str) or not isinstance(call.name, str):
            raise ValueError("bad tool call record")
        return call


def parse_prompt(arguments: str | None) -> str | None:
    """The `prompt` of `background_agent` arguments, or None when the arguments are not a
    JSON object with a string `prompt` (truncated, fragmentary or of another shape)."""
    if arguments is None:
        return None
    try:
        parsed = json.loads(arguments)
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    prompt = parsed.get("prompt")
    return prompt.strip() if isinstance(prompt, str) else None
