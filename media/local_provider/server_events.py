"""GA server events as the offline model emits them, including the streamed sequences.

Builders only: they hold no conversation state. Each event gets a fresh `event_id` from the
injected id factory and is deep-copied from its inputs, so callers may keep mutating their
items without changing events already built.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
from collections.abc import Callable
from typing import Any

from media.local_provider.errors import error_object

JsonObject = dict[str, Any]
IdFactory = Callable[[str], str]
"""Makes a fresh id from a prefix such as "event", "item", "call" or "resp"."""

BACKGROUND_AGENT_TOOL = "background_agent"
_INPUT_TRANSCRIPTION = "conversation.item.input_audio_transcription"


def random_id(prefix: str) -> str:
    """`<prefix>_<24 hex digits>`, unpredictable."""
    return f"{prefix}_{secrets.token_hex(12)}"


def chunks(text: str) -> list[str]:
    """`text` cut into word-sized deltas that join back to exactly `text`."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


class ServerEvents:
    """Builds server events with ids from `new_id`."""

    def __init__(self, new_id: IdFactory) -> None:
        self.new_id = new_id

    def event(self, kind: str, **fields: Any) -> JsonObject:
        """`{"type": kind, "event_id": <fresh>, **fields}`."""
        return {"type": kind, "event_id": self.new_id("event"), **copy.deepcopy(fields)}

    def error(
        self, code: str, message: str, param: str | None = None, client_event_id: str | None = None
    ) -> JsonObject:
        """An `error` event; `client_event_id` names the offending client event, if it had one."""
        error = error_object(message, code=code, param=param)
        return self.event("error", error={**error, "event_id": client_event_id})

    def speech_started(self, *, item_id: str, start_ms: int) -> JsonObject:
        """`input_audio_buffer.speech_started`: the VAD heard speech begin at `start_ms`."""
        return self.event(
            "input_audio_buffer.speech_started", audio_start_ms=start_ms, item_id=item_id
        )

    def speech_stopped(
        self, *, item_id: str, end_ms: int, previous_item_id: str | None
    ) -> tuple[list[JsonObject], JsonObject]:
        """The end of speech: VAD stop, the committed audio item (not yet transcribed); the item."""
        item: JsonObject = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        previous = {"previous_item_id": previous_item_id}
        events = [
            self.event("input_audio_buffer.speech_stopped", audio_end_ms=end_ms, item_id=item_id),
            self.event("input_audio_buffer.committed", **previous, item_id=item_id),
            # Transcription finishes after the item exists, as on the real service, so the item
            # events carry a null transcript.
            self.event("conversation.item.added", **previous, item=item),
            self.event("conversation.item.done", **previous, item=item),
        ]
        return events, item

    def transcription(self, *, item_id: str, text: str, audio_seconds: float) -> list[JsonObject]:
        """The streamed transcription of input audio item `item_id`."""
        part = {"item_id": item_id, "content_index": 0}
        events = [
            self.event(f"{_INPUT_TRANSCRIPTION}.delta", **part, delta=delta)
            for delta in chunks(text)
        ]
        usage = {"type": "duration", "seconds": audio_seconds}
        events.append(
            self.event(f"{_INPUT_TRANSCRIPTION}.completed", **part, transcript=text, usage=usage)
        )
        return events

    def tool_call(
        self, response_id: str, prompt: str, *, previous_item_id: str | None
    ) -> tuple[list[JsonObject], JsonObject]:
        """A `background_agent` call streamed as output 0 of a response; and the call item."""
        ids = {"response_id": response_id, "item_id": self.new_id("item"), "output_index": 0}
        call_id = self.new_id("call")
        arguments = json.dumps({"prompt": prompt})
        item: JsonObject = {
            "id": ids["item_id"],
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": BACKGROUND_AGENT_TOOL,
            "call_id": call_id,
            "arguments": "",
        }
        output = {"response_id": response_id, "output_index": 0}
        previous = {"previous_item_id": previous_item_id}
        events = [
            self.event("response.output_item.added", **output, item=item),
            self.event("conversation.item.added", **previous, item=item),
        ]
        events += [
            self.event("response.function_call_arguments.delta", **ids, call_id=call_id, delta=d)
            for d in _split(arguments, 3)
        ]
        item.update(status="completed", arguments=arguments)
        events += [
            self.event(
                "response.function_call_arguments.done",
                **ids,
                call_id=call_id,
                name=BACKGROUND_AGENT_TOOL,
                arguments=arguments,
            ),
            self.event("response.output_item.done", **output, item=item),
            self.event("conversation.item.done", **previous, item=item),
        ]
        return events, item

    def assistant_message(
        self, response_id: str, text: str, *, audio: bool, previous_item_id: str | None
    ) -> tuple[list[JsonObject], JsonObject]:
        """An assistant message streamed as output 0 of a response; and the message item.

        With `audio` the text streams as the audio transcript, otherwise as output text.
        """
        ids = {"response_id": response_id, "item_id": self.new_id("item"), "output_index": 0}
        item: JsonObject = {
            "id": ids["item_id"],
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        if audio:
            key, part_type, content_type = "transcript", "audio", "output_audio"
            stream = "response.output_audio_transcript"
        else:
            key, part_type, content_type = "text", "text", "output_text"
            stream = "response.output_text"
        output = {"response_id": response_id, "output_index": 0}
        previous = {"previous_item_id": previous_item_id}
        part_ids = {**ids, "content_index": 0}
        events = [
            self.event("response.output_item.added", **output, item=item),
            self.event("conversation.item.added", **previous, item=item),
            self.event(
                "response.content_part.added", **part_ids, part={"type": part_type, key: ""}
            ),
        ]
        events += [self.event(f"{stream}.delta", **part_ids, delta=delta) for delta in chunks(text)]
        item.update(status="completed", content=[{"type": content_type, key: text}])
        events += [
            self.event(f"{stream}.done", **part_ids, **{key: text}),
            self.event(
                "response.content_part.done", **part_ids, part={"type": part_type, key: text}
            ),
            self.event("response.output_item.done", **output, item=item),
            self.event("conversation.item.done", **previous, item=item),
        ]
        return events, item


def _split(text: str, parts: int) -> list[str]:
    size = max(1, -(-len(text) // parts))
    return [text[start : start + size] for start in range(0, len(text), size)]
