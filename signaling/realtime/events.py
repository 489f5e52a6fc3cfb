"""Typed server events of the realtime sideband, parsed from raw WebSocket messages.

One event set covers the GA event names and the older beta names (PROTOCOL §4); aliases map
to the same class. `parse_server_event` never raises: anything it cannot make sense of becomes
an `UnknownEvent` or a `MalformedEvent` so that one bad frame cannot end a call.

Only the fields the call state acts on are required (ids it keys on, text it accumulates, tool
call arguments); correlation fields it merely carries (`response_id`, `content_index`, ...) are
optional and read as `None` or a default when absent or ill-typed, because the provider adding,
dropping or retyping those must not cost us a transcript line or a handoff.

Ids are bounded (`limits.MAX_ID_CHARS`): a longer optional id reads as absent, a longer
required one makes the event malformed, so that no id the core keeps is megabytes long.
Tool call ids are the exception: the core reports and refuses a call with a long one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, assert_never

import orjson

from signaling.realtime.limits import MAX_ID_CHARS

JsonObject: TypeAlias = dict[str, Any]
"""A decoded JSON object, as carried in events and client payloads."""

OutputSource = Literal["audio", "text"]
"""Whether assistant text is the transcript of spoken audio or text output."""


@dataclass(frozen=True, slots=True)
class Item:
    """A conversation item, reduced to what the call state reads.

    `text` joins, with newlines, the non-empty text of `input_text`/`output_text` parts and the
    transcripts of `input_audio`/`output_audio` parts (plus the beta `text`/`audio` names); it
    is `None` when there is none. `content_types` lists every content part's type, in order.
    """

    id: str | None
    type: str
    role: str | None
    name: str | None
    call_id: str | None
    arguments: str | None
    text: str | None
    status: str | None
    content_types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One entry of `rate_limits.updated`."""

    name: str | None
    limit: int | None
    remaining: int | None
    reset_seconds: float | None


@dataclass(frozen=True, slots=True)
class SessionCreated:
    """`session.created`: the session's initial configuration."""

    session: JsonObject


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """`session.updated`: the provider's echo of a `session.update`; `session_id` is `sess_…`."""

    session_id: str | None
    session: JsonObject


@dataclass(frozen=True, slots=True)
class InputTranscriptDelta:
    """A piece of the user's speech transcription for one input audio item."""

    item_id: str
    content_index: int
    delta: str


@dataclass(frozen=True, slots=True)
class InputTranscriptCompleted:
    """The final transcription of one input audio item."""

    item_id: str
    content_index: int
    transcript: str


@dataclass(frozen=True, slots=True)
class InputTranscriptFailed:
    """Transcription of one input audio item failed."""

    item_id: str
    message: str


@dataclass(frozen=True, slots=True)
class OutputTranscriptDelta:
    """A piece of assistant output: audio transcript or text, per `source`."""

    response_id: str | None
    item_id: str
    delta: str
    source: OutputSource


@dataclass(frozen=True, slots=True)
class OutputTranscriptDone:
    """The full assistant output text of one item: audio transcript or text, per `source`."""

    response_id: str | None
    item_id: str
    text: str
    source: OutputSource


@dataclass(frozen=True, slots=True)
class OutputAudioDelta:
    """A chunk of assistant audio; only its decoded size is kept, never the audio."""

    response_id: str | None
    item_id: str | None
    byte_count: int


@dataclass(frozen=True, slots=True)
class ConversationItemAdded:
    """`conversation.item.added` (GA) or `conversation.item.created`: an item entered the
    conversation right after `previous_item_id` (`None`: at its start, or not said)."""

    item: Item
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class ConversationItemDone:
    """`conversation.item.done`: an item is complete (function call arguments included)."""

    item: Item
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class OutputItemDone:
    """`response.output_item.done`: a response finished producing one item."""

    response_id: str | None
    item: Item


@dataclass(frozen=True, slots=True)
class FunctionCallArgumentsDone:
    """`response.function_call_arguments.done`; `name` is absent in the beta shape."""

    response_id: str | None
    item_id: str | None
    call_id: str
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    """A model response started; only one may write to the conversation at a time."""

    response_id: str | None


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """A model response ended with `status` (completed, cancelled, failed, incomplete).

    From `response.status_details` (PROTOCOL §10.2): `reason` (`max_output_tokens`,
    `turn_detected`, ...) and, for a failed response, the error's `error_code` and
    `error_message`. `output` holds the response's items that parsed (function calls included).
    """

    response_id: str | None
    status: str | None
    reason: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    output: tuple[Item, ...] = ()


@dataclass(frozen=True, slots=True)
class ItemRetrieved:
    """`conversation.item.retrieved`: the full item we asked for with
    `conversation.item.retrieve` (PROTOCOL §10.4); `previous_item_id` when the provider says."""

    item: Item
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class ResponseCancelled:
    """A model response was cancelled (parsed as codex does; absent from the GA SDK union)."""

    response_id: str | None


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Server VAD heard the user start speaking."""

    item_id: str | None


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """Server VAD heard the user stop speaking."""

    item_id: str | None


@dataclass(frozen=True, slots=True)
class InputAudioCommitted:
    """The input audio buffer became item `item_id`, placed after `previous_item_id`."""

    item_id: str
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """A provider `error` event. `type` is the error's type (not the event's); `event_id` is
    the id of the client event that caused it, when the provider says."""

    type: str | None
    code: str | None
    message: str
    param: str | None
    event_id: str | None


@dataclass(frozen=True, slots=True)
class RateLimitsUpdated:
    """`rate_limits.updated`; entries that are not objects are skipped."""

    rate_limits: tuple[RateLimit, ...]


@dataclass(frozen=True, slots=True)
class KnownIgnored:
    """A recognised event type the call state has no use for."""

    type: str


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """A well-formed event of a type this module does not know."""

    type: str


@dataclass(frozen=True, slots=True)
class MalformedEvent:
    """A message that is not a usable event; `raw_excerpt` is its start, for logs."""

    reason: str
    raw_excerpt: str


ServerEvent: TypeAlias = (
    SessionCreated
    | SessionUpdated
    | InputTranscriptDelta
    | InputTranscriptCompleted
    | InputTranscriptFailed
    | OutputTranscriptDelta
    | OutputTranscriptDone
    | OutputAudioDelta
    | ConversationItemAdded
    | ConversationItemDone
    | OutputItemDone
    | ItemRetrieved
    | FunctionCallArgumentsDone
    | ResponseCreated
    | ResponseDone
    | ResponseCancelled
    | SpeechStarted
    | SpeechStopped
    | InputAudioCommitted
    | ErrorEvent
    | RateLimitsUpdated
    | KnownIgnored
    | UnknownEvent
    | MalformedEvent
)
"""Every event `parse_server_event` can return."""

MALFORMED_TYPE_NAME: Final = "malformed"
"""What `event_type_name` reports for a `MalformedEvent`, which has no trustworthy type."""

_EXCERPT_CHARS: Final = 200
# Unknown types end up in logs and metric labels, so only plausible event names are accepted.
_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_.]{0,99}")

_IGNORED_TYPES: Final = frozenset(
    {
        "conversation.created",
        "conversation.item.deleted",
        "conversation.item.truncated",
        "conversation.item.input_audio_transcription.segment",
        "input_audio_buffer.cleared",
        "input_audio_buffer.timeout_triggered",
        "input_audio_buffer.dtmf_event_received",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
        "response.output_item.added",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_audio.done",
        "response.audio.done",
        "response.function_call_arguments.delta",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
        "mcp_list_tools.in_progress",
        "mcp_list_tools.completed",
        "mcp_list_tools.failed",
        "transcription_session.updated",
    }
)

# Which field of a content part carries its text, by part type (GA and beta names).
_CONTENT_TEXT_FIELD: Final = {
    "input_text": "text",
    "output_text": "text",
    "text": "text",
    "input_audio": "transcript",
    "output_audio": "transcript",
    "audio": "transcript",
}


class _Invalid(Exception):
    """A required field is missing or ill-typed; becomes a `MalformedEvent`."""


def _req_str(obj: JsonObject, key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise _Invalid(f"field {key!r} must be a string")
    return value


def _opt_str(obj: JsonObject, key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else None


def _req_id(obj: JsonObject, key: str) -> str:
    value = _req_str(obj, key)
    if len(value) > MAX_ID_CHARS:
        raise _Invalid(f"field {key!r} is {len(value)} characters, more than {MAX_ID_CHARS}")
    return value


def _opt_id(obj: JsonObject, key: str) -> str | None:
    # An id too long to be the provider's is read as absent, like an ill-typed one.
    value = obj.get(key)
    return value if isinstance(value, str) and len(value) <= MAX_ID_CHARS else None


def _opt_int(obj: JsonObject, key: str) -> int | None:
    value = obj.get(key)
    # bool is an int subclass, but `true` is never a count.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _req_obj(obj: JsonObject, key: str) -> JsonObject:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise _Invalid(f"field {key!r} must be an object")
    return value


def _response_id(obj: JsonObject) -> str | None:
    response = obj.get("response")
    if isinstance(response, dict):
        nested = _opt_id(response, "id")
        if nested is not None:
            return nested
    return _opt_id(obj, "response_id")


def _item(obj: JsonObject) -> Item:
    raw = _req_obj(obj, "item")
    texts: list[str] = []
    types: list[str] = []
    content = raw.get("content")
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            part_type = part.get("type")
            if not isinstance(part_type, str):
                continue
            types.append(part_type)
            field = _CONTENT_TEXT_FIELD.get(part_type)
            if field is not None:
                text = part.get(field)
                if isinstance(text, str) and text:
                    texts.append(text)
    return Item(
        id=_opt_id(raw, "id"),
        type=_req_str(raw, "type"),
        role=_opt_str(raw, "role"),
        name=_opt_str(raw, "name"),
        call_id=_opt_str(raw, "call_id"),
        arguments=_opt_str(raw, "arguments"),
        text="\n".join(texts) if texts else None,
        status=_opt_str(raw, "status"),
        content_types=tuple(types),
    )


def _base64_size(encoded: str) -> int:
    padding = 2 if encoded.endswith("==") else 1 if encoded.endswith("=") else 0
    return max(len(encoded) * 3 // 4 - padding, 0)


def _session_created(obj: JsonObject) -> ServerEvent:
    return SessionCreated(session=_req_obj(obj, "session"))


def _session_updated(obj: JsonObject) -> ServerEvent:
    session = _req_obj(obj, "session")
    return SessionUpdated(session_id=_opt_id(session, "id"), session=session)


def _input_transcript_delta(obj: JsonObject) -> ServerEvent:
    # The GA SDK marks `delta` optional; a delta without text adds nothing.
    return InputTranscriptDelta(
        item_id=_req_id(obj, "item_id"),
        content_index=_opt_int(obj, "content_index") or 0,
        delta=_opt_str(obj, "delta") or "",
    )


def _input_transcript_completed(obj: JsonObject) -> ServerEvent:
    return InputTranscriptCompleted(
        item_id=_req_id(obj, "item_id"),
        content_index=_opt_int(obj, "content_index") or 0,
        transcript=_req_str(obj, "transcript"),
    )


def _input_transcript_failed(obj: JsonObject) -> ServerEvent:
    error = obj.get("error")
    message = _opt_str(error, "message") if isinstance(error, dict) else None
    return InputTranscriptFailed(
        item_id=_req_id(obj, "item_id"), message=message or "input transcription failed"
    )


def _output_delta(source: OutputSource) -> Callable[[JsonObject], ServerEvent]:
    def parse(obj: JsonObject) -> ServerEvent:
        # Positional: the most frequent event of a call is built here.
        return OutputTranscriptDelta(
            _opt_id(obj, "response_id"), _req_id(obj, "item_id"), _req_str(obj, "delta"), source
        )

    return parse


def _output_done(source: OutputSource, text_field: str) -> Callable[[JsonObject], ServerEvent]:
    def parse(obj: JsonObject) -> ServerEvent:
        return OutputTranscriptDone(
            response_id=_opt_id(obj, "response_id"),
            item_id=_req_id(obj, "item_id"),
            text=_req_str(obj, text_field),
            source=source,
        )

    return parse


def _output_audio_delta(obj: JsonObject) -> ServerEvent:
    return OutputAudioDelta(
        response_id=_opt_id(obj, "response_id"),
        item_id=_opt_id(obj, "item_id"),
        byte_count=_base64_size(_req_str(obj, "delta")),
    )


def _item_added(obj: JsonObject) -> ServerEvent:
    return ConversationItemAdded(item=_item(obj), previous_item_id=_opt_id(obj, "previous_item_id"))


def _item_done(obj: JsonObject) -> ServerEvent:
    return ConversationItemDone(item=_item(obj), previous_item_id=_opt_id(obj, "previous_item_id"))


def _output_item_done(obj: JsonObject) -> ServerEvent:
    return OutputItemDone(response_id=_opt_id(obj, "response_id"), item=_item(obj))


def _function_call_arguments_done(obj: JsonObject) -> ServerEvent:
    return FunctionCallArgumentsDone(
        response_id=_opt_id(obj, "response_id"),
        item_id=_opt_id(obj, "item_id"),
        call_id=_req_str(obj, "call_id"),
        name=_opt_str(obj, "name"),
        arguments=_req_str(obj, "arguments"),
    )


def _response_created(obj: JsonObject) -> ServerEvent:
    return ResponseCreated(response_id=_response_id(obj))


def _response_done(obj: JsonObject) -> ServerEvent:
    response = obj.get("response")
    body: JsonObject = response if isinstance(response, dict) else {}
    details = body.get("status_details")
    detail: JsonObject = details if isinstance(details, dict) else {}
    error = detail.get("error")
    failure: JsonObject = error if isinstance(error, dict) else {}
    output: list[Item] = []
    raw_output = body.get("output")
    if isinstance(raw_output, list):
        for entry in raw_output:
            try:
                output.append(_item({"item": entry}))
            except _Invalid:
                continue
    return ResponseDone(
        response_id=_response_id(obj),
        status=_opt_str(body, "status"),
        reason=_opt_str(detail, "reason"),
        error_code=_opt_str(failure, "code") or _opt_str(failure, "type"),
        error_message=_opt_str(failure, "message"),
        output=tuple(output),
    )


def _item_retrieved(obj: JsonObject) -> ServerEvent:
    return ItemRetrieved(item=_item(obj), previous_item_id=_opt_id(obj, "previous_item_id"))


def _response_cancelled(obj: JsonObject) -> ServerEvent:
    return ResponseCancelled(response_id=_response_id(obj))


def _speech_started(obj: JsonObject) -> ServerEvent:
    return SpeechStarted(item_id=_opt_id(obj, "item_id"))


def _speech_stopped(obj: JsonObject) -> ServerEvent:
    return SpeechStopped(item_id=_opt_id(obj, "item_id"))


def _input_audio_committed(obj: JsonObject) -> ServerEvent:
    return InputAudioCommitted(
        item_id=_req_id(obj, "item_id"), previous_item_id=_opt_id(obj, "previous_item_id")
    )


def _error(obj: JsonObject) -> ServerEvent:
    # Never malformed: an error we cannot fully read is still an error worth reporting.
    error = obj.get("error")
    detail: JsonObject = error if isinstance(error, dict) else {}
    message = _opt_str(obj, "message") or _opt_str(detail, "message") or _raw_json(error, obj)
    return ErrorEvent(
        type=_opt_str(detail, "type"),
        code=_opt_str(detail, "code"),
        message=message,
        param=_opt_str(detail, "param"),
        event_id=_opt_id(detail, "event_id"),
    )


def _raw_json(error: object, event: JsonObject) -> str:
    try:
        return json.dumps(error if error is not None else event, ensure_ascii=False)
    except RecursionError:
        # Nesting the parser accepted (up to 1,024 levels) can overflow the encoder's stack.
        return "unreadable error"


def _rate_limit(entry: JsonObject) -> RateLimit:
    reset = entry.get("reset_seconds")
    return RateLimit(
        name=_opt_id(entry, "name"),
        limit=_opt_int(entry, "limit"),
        remaining=_opt_int(entry, "remaining"),
        reset_seconds=(
            float(reset) if isinstance(reset, int | float) and not isinstance(reset, bool) else None
        ),
    )


def _rate_limits_updated(obj: JsonObject) -> ServerEvent:
    entries = obj.get("rate_limits")
    limits = (
        tuple(_rate_limit(entry) for entry in entries if isinstance(entry, dict))
        if isinstance(entries, list)
        else ()
    )
    return RateLimitsUpdated(rate_limits=limits)


_PARSERS: Final[dict[str, Callable[[JsonObject], ServerEvent]]] = {
    "session.created": _session_created,
    "session.updated": _session_updated,
    "conversation.item.input_audio_transcription.delta": _input_transcript_delta,
    "conversation.item.input_audio_transcription.completed": _input_transcript_completed,
    "conversation.item.input_audio_transcription.failed": _input_transcript_failed,
    "response.output_audio_transcript.delta": _output_delta("audio"),
    "response.audio_transcript.delta": _output_delta("audio"),
    "response.output_audio_transcript.done": _output_done("audio", "transcript"),
    "response.audio_transcript.done": _output_done("audio", "transcript"),
    "response.output_text.delta": _output_delta("text"),
    "response.text.delta": _output_delta("text"),
    "response.output_text.done": _output_done("text", "text"),
    "response.text.done": _output_done("text", "text"),
    "response.output_audio.delta": _output_audio_delta,
    "response.audio.delta": _output_audio_delta,
    "conversation.item.added": _item_added,
    "conversation.item.created": _item_added,
    "conversation.item.done": _item_done,
    "response.output_item.done": _output_item_done,
    "conversation.item.retrieved": _item_retrieved,
    "response.function_call_arguments.done": _function_call_arguments_done,
    "response.created": _response_created,
    "response.done": _response_done,
    "response.cancelled": _response_cancelled,
    "input_audio_buffer.speech_started": _speech_started,
    "input_audio_buffer.speech_stopped": _speech_stopped,
    "input_audio_buffer.committed": _input_audio_committed,
    "error": _error,
    "rate_limits.updated": _rate_limits_updated,
}


def _excerpt(raw: str | bytes) -> str:
    head = raw[:_EXCERPT_CHARS]
    return head if isinstance(head, str) else head.decode("utf-8", errors="replace")


def parse_server_event(raw: str | bytes) -> ServerEvent:
    """Parse one WebSocket message from the provider into a typed event; never raises.

    `bytes` must be UTF-8 (JSON's own encoding detection is deliberately not used).
    """
    try:
        text = raw if isinstance(raw, str) else raw.decode("utf-8")
        obj = orjson.loads(text)
    except UnicodeDecodeError:
        return MalformedEvent(reason="message is not valid UTF-8", raw_excerpt=_excerpt(raw))
    except ValueError:
        # orjson's JSONDecodeError, also raised past 1,024 levels of nesting and for lone
        # surrogates, which could not be stored or served as JSON later.
        return MalformedEvent(reason="message is not valid JSON", raw_excerpt=_excerpt(raw))
    if not isinstance(obj, dict):
        return MalformedEvent(reason="event is not a JSON object", raw_excerpt=_excerpt(raw))
    event_type = obj.get("type")
    if not isinstance(event_type, str):
        return MalformedEvent(reason="event has no string 'type'", raw_excerpt=_excerpt(raw))
    parser = _PARSERS.get(event_type)
    if parser is not None:
        try:
            return parser(obj)
        except _Invalid as invalid:
            return MalformedEvent(reason=f"{event_type}: {invalid}", raw_excerpt=_excerpt(raw))
    if event_type in _IGNORED_TYPES:
        return KnownIgnored(type=event_type)
    if _EVENT_TYPE.fullmatch(event_type) is None:
        return MalformedEvent(reason="event type is not an event name", raw_excerpt=_excerpt(raw))
    return UnknownEvent(type=event_type)


def event_type_name(event: ServerEvent) -> str:
    """The wire type of `event`, for metrics and logs.

    Events that several wire names map to report the GA name (a beta
    `response.audio_transcript.delta` reports `response.output_audio_transcript.delta`, a
    `conversation.item.created` reports `conversation.item.added`); a `MalformedEvent` reports
    `MALFORMED_TYPE_NAME`.
    """
    # Cases are tried in order: the events a call brings most often come first.
    match event:
        case OutputTranscriptDelta(source="audio"):
            return "response.output_audio_transcript.delta"
        case OutputTranscriptDelta():
            return "response.output_text.delta"
        case InputTranscriptDelta():
            return "conversation.item.input_audio_transcription.delta"
        case OutputAudioDelta():
            return "response.output_audio.delta"
        case SessionCreated():
            return "session.created"
        case SessionUpdated():
            return "session.updated"
        case InputTranscriptCompleted():
            return "conversation.item.input_audio_transcription.completed"
        case InputTranscriptFailed():
            return "conversation.item.input_audio_transcription.failed"
        case OutputTranscriptDone(source="audio"):
            return "response.output_audio_transcript.done"
        case OutputTranscriptDone():
            return "response.output_text.done"
        case ConversationItemAdded():
            return "conversation.item.added"
        case ConversationItemDone():
            return "conversation.item.done"
        case OutputItemDone():
            return "response.output_item.done"
        case ItemRetrieved():
            return "conversation.item.retrieved"
        case FunctionCallArgumentsDone():
            return "response.function_call_arguments.done"
        case ResponseCreated():
            return "response.created"
        case ResponseDone():
            return "response.done"
        case ResponseCancelled():
            return "response.cancelled"
        case SpeechStarted():
            return "input_audio_buffer.speech_started"
        case SpeechStopped():
            return "input_audio_buffer.speech_stopped"
        case InputAudioCommitted():
            return "input_audio_buffer.committed"
        case ErrorEvent():
            return "error"
        case RateLimitsUpdated():
            return "rate_limits.updated"
        case KnownIgnored(type=wire_type) | UnknownEvent(type=wire_type):
            return wire_type
        case MalformedEvent():
            return MALFORMED_TYPE_NAME
        case _:
            assert_never(event)


UNKNOWN_TYPE_LABEL: Final = "unknown"
"""The metric label of every event type this module does not know."""

KNOWN_TYPE_LABELS: Final = frozenset({*_PARSERS, *_IGNORED_TYPES, MALFORMED_TYPE_NAME})
"""Every value `metric_label` can return besides `UNKNOWN_TYPE_LABEL`: a fixed set, so a
provider inventing event types cannot grow the metric's series."""


def metric_label(type_name: str) -> str:
    """`type_name` (an `event_type_name`) when it is one of `KNOWN_TYPE_LABELS`, else
    `"unknown"`."""
    return type_name if type_name in KNOWN_TYPE_LABELS else UNKNOWN_TYPE_LABEL
