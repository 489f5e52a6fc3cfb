"""The offline "model" behind the local provider: client events in, GA server events out.

Pure and synchronous: no sockets, no clocks, and no randomness except through the injected id
factory. The I/O shell decides *when* things happen; in particular a response started by
`response.create` (or by user speech) stays in progress until the shell calls
`finish_response()`, which is what lets a second `response.create` meet an active response.
Likewise the shell reports what it hears (`speech_started`, `speech_stopped`, then
`speech_transcribed`) and what it plays (`audio_started`, `audio_stopped`) as it happens.
"""

from __future__ import annotations

import copy
import json
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from media.local_provider.errors import error_object
from media.local_provider.server_events import (
    IdFactory,
    JsonObject,
    ServerEvents,
    random_id,
)
from media.local_provider.session import (
    OUTPUT_MODALITIES,
    creates_response_on_speech,
    default_session,
    find_session_problem,
    interrupts_response,
    session_view,
    updated_session,
)

CLIENT_EVENT_TYPES = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "output_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
)

MAX_CLIENT_EVENTS = 1000
"""How many client events a conversation keeps for inspection (a call can run for an hour)."""
MAX_LISTED_ITEMS = 1000
"""How many of a conversation's latest items `item_outline` lists."""
_MESSAGE_ROLES = ("user", "assistant", "system", "developer")
_SPEECH_MS_PER_WORD = 300
_SPEECH_GAP_MS = 200


class _ClientError(Exception):
    """A client event the provider refuses; becomes an `error` server event."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


@dataclass(frozen=True)
class _Reply:
    """What a response will produce, fixed when the response starts."""

    kind: Literal["tool_call", "message", "silence"]
    text: str = ""
    user_item_id: str | None = None


@dataclass(frozen=True)
class _Response:
    id: str
    modalities: list[str]
    reply: _Reply


def message_text(item: Mapping[str, Any]) -> str:
    """The words of a message item: typed text and transcribed or spoken audio."""
    parts: list[str] = []
    for part in item.get("content") or []:
        if not isinstance(part, Mapping):
            continue
        for key in ("text", "transcript"):
            value = part.get(key)
            if isinstance(value, str) and value:
                parts.append(value)
    return " ".join(parts)


class Conversation:
    """One call's session and conversation, driven by client events and user speech.

    Every returned server event has a fresh `event_id` and shares no mutable state with the
    conversation. The latest MAX_CLIENT_EVENTS client events handed in are kept, in order, in
    `client_events` (audio appends without their audio).
    """

    def __init__(
        self,
        *,
        trigger_phrase: str = "background agent",
        session: Mapping[str, Any] | None = None,
        new_id: IdFactory = random_id,
        plays_audio: bool = True,
    ) -> None:
        """Start a conversation, optionally configured by a call-creation `session` object.

        `plays_audio`: whether spoken replies are played to the caller (a WebRTC call), which is
        when `output_audio_buffer.*` events exist.
        Raises ValueError when `session` is not an acceptable GA session object.
        """
        self._events = ServerEvents(new_id)
        self._trigger = trigger_phrase.casefold()
        self._session = default_session(new_id("sess"))
        if session is not None:
            problem = find_session_problem(session)
            if problem is not None:
                raise ValueError(problem.message)
            self._session = updated_session(self._session, session)
        self._conversation_id = new_id("conv")
        self._items: list[JsonObject] = []
        self._client_events: deque[JsonObject] = deque(maxlen=MAX_CLIENT_EVENTS)
        self._function_call_outputs: Counter[str] = Counter()
        self._response: _Response | None = None
        self._tool_called_for: set[str] = set()
        self._audio_ms = 0
        # Speech heard but not yet over: its item id and where it started.
        self._speech: tuple[str, int] | None = None
        # Committed speech items waiting for their transcript, with their duration in ms.
        self._untranscribed: dict[str, int] = {}
        self._plays_audio = plays_audio
        # (response id, item id) of the spoken reply waiting to play, and of the one playing.
        self._spoken: tuple[str, str] | None = None
        self._playing: tuple[str, str] | None = None
        self._assistant_audio = False

    @property
    def session(self) -> JsonObject:
        """The current session as the server would echo it."""
        return session_view(self._session)

    @property
    def client_events(self) -> list[JsonObject]:
        """Every client event received so far (parsed), oldest first."""
        return copy.deepcopy(list(self._client_events))

    @property
    def playing_response_id(self) -> str | None:
        """The id of the response whose audio is playing, if any."""
        return self._playing[0] if self._playing is not None else None

    @property
    def active_response_id(self) -> str | None:
        """The id of the response in progress, if any."""
        return self._response.id if self._response is not None else None

    def item_outline(self) -> list[JsonObject]:
        """The latest MAX_LISTED_ITEMS conversation items in conversation order, each as its
        `id`, `type` and, where the item has them, `role` and `call_id`.

        Items are kept whether or not anyone was listening when they were made, as the API
        keeps a call's conversation while no sideband is attached.
        """
        keys = ("id", "type", "role", "call_id")
        return [{k: i[k] for k in keys if k in i} for i in self._items[-MAX_LISTED_ITEMS:]]

    def function_call_output_counts(self) -> dict[str, int]:
        """How many `function_call_output` items the client created, per `call_id`."""
        return dict(self._function_call_outputs)

    def session_created(self) -> JsonObject:
        """The `session.created` event a new connection receives first."""
        return self._events.event("session.created", session=session_view(self._session))

    def handle_client_text(self, text: str) -> list[JsonObject]:
        """Handle one raw WebSocket / data-channel message."""
        try:
            event = json.loads(text)
        except (ValueError, RecursionError):
            return [self._events.error("invalid_json", "The message is not valid JSON.")]
        if not isinstance(event, dict):
            return [self._events.error("invalid_json", "The message must be a JSON object.")]
        return self.handle_client_event(event)

    def handle_client_event(self, event: Mapping[str, Any]) -> list[JsonObject]:
        """The server events answering one client event (an `error` event when refused)."""
        kept = copy.deepcopy({k: v for k, v in event.items() if k != "audio"})
        self._client_events.append(kept)
        item = event.get("item")
        if (
            event.get("type") == "conversation.item.create"
            and isinstance(item, Mapping)
            and item.get("type") == "function_call_output"
        ):
            self._function_call_outputs[str(item.get("call_id"))] += 1
        client_event_id = event.get("event_id")
        try:
            return self._dispatch(event)
        except _ClientError as refusal:
            event_id = client_event_id if isinstance(client_event_id, str) else None
            return [self._events.error(refusal.code, refusal.message, refusal.param, event_id)]

    def user_spoke(self, text: str, *, audio_ms: tuple[int, int] | None = None) -> list[JsonObject]:
        """The events of the user saying `text`: VAD, the audio item, its transcription.

        `audio_ms` is where the speech started and ended in the input audio, as heard; without
        it the speech is placed after the previous one, lasting a guess from its word count.
        The same as `speech_started`, `speech_stopped` and `speech_transcribed` in a row.
        """
        if audio_ms is None:
            start_ms = self._audio_ms + _SPEECH_GAP_MS
            end_ms = start_ms + _SPEECH_MS_PER_WORD * max(1, len(text.split()))
        else:
            start_ms, end_ms = audio_ms
        events = self.speech_started(start_ms)
        stopped, item_id = self.speech_stopped(end_ms)
        return events + stopped + self.speech_transcribed(item_id, text)

    def speech_started(self, start_ms: int, *, played_ms: int = 0) -> list[JsonObject]:
        """The VAD heard speech begin at `start_ms` of the input audio.

        With server VAD and `interrupt_response` (the default) this is a barge-in: a response in
        progress is cancelled (`response.done`, status `cancelled`, reason `turn_detected`) and
        a reply that is playing is cut: `output_audio_buffer.cleared`, then
        `conversation.item.truncated` at `played_ms`, how much of it the caller heard. See
        https://platform.openai.com/docs/guides/realtime-vad
        """
        if self._speech is not None:
            return []
        item_id = self._events.new_id("item")
        self._speech = (item_id, start_ms)
        events = [self._events.speech_started(item_id=item_id, start_ms=start_ms)]
        if interrupts_response(self._session):
            if self._response is not None:
                events.append(self._cancel(self._response, reason="turn_detected"))
            cut = self._playing or self._spoken
            if cut is not None:
                # A reply still waiting to play was not heard at all.
                played_ms = played_ms if cut == self._playing else 0
                self._playing = self._spoken = None
                response_id, reply_id = cut
                events += [
                    self._events.event("output_audio_buffer.cleared", response_id=response_id),
                    self._events.event(
                        "conversation.item.truncated",
                        item_id=reply_id,
                        content_index=0,
                        audio_end_ms=played_ms,
                    ),
                ]
        return events

    def speech_stopped(self, end_ms: int) -> tuple[list[JsonObject], str]:
        """The VAD heard speech end at `end_ms`: the audio is committed as a user item.

        Returns the events and the item's id, which `speech_transcribed` takes. Speech that
        stops without having started (the shell missed the start) starts at `end_ms`.
        """
        item_id, start_ms = self._speech or (self._events.new_id("item"), end_ms)
        self._speech = None
        self._audio_ms = max(self._audio_ms, end_ms)
        events, item = self._events.speech_stopped(
            item_id=item_id, end_ms=end_ms, previous_item_id=self._last_item_id()
        )
        self._items.append(item)
        self._untranscribed[item_id] = max(0, end_ms - start_ms)
        return events, item_id

    def speech_transcribed(self, item_id: str, text: str) -> list[JsonObject]:
        """The transcription of committed speech item `item_id` ([] for an unknown item).

        In a conversational session whose turn detection creates responses, non-empty speech
        starts a response too (unless one is already in progress).
        """
        duration_ms = self._untranscribed.pop(item_id, None)
        if duration_ms is None:
            return []
        events = self._events.transcription(
            item_id=item_id, text=text, audio_seconds=duration_ms / 1000
        )
        index = self._index_of(item_id)
        if index is not None:
            self._items[index]["content"][0]["transcript"] = text
        if text and creates_response_on_speech(self._session) and self._response is None:
            events.append(self._start_response(self._session["output_modalities"]))
        return events

    def speech_not_transcribed(self, item_id: str, reason: str) -> list[JsonObject]:
        """Transcription of committed speech item `item_id` failed ([] for an unknown item)."""
        if self._untranscribed.pop(item_id, None) is None:
            return []
        error = error_object(reason, code="transcription_failed", type="server_error")
        return [
            self._events.event(
                "conversation.item.input_audio_transcription.failed",
                item_id=item_id,
                content_index=0,
                error=error,
            )
        ]

    def audio_started(self, response_id: str) -> list[JsonObject]:
        """The spoken reply of `response_id` begins to play: `output_audio_buffer.started`.

        [] unless `response_id` is the spoken reply waiting to play (not cut meanwhile).
        """
        if self._spoken is None or self._spoken[0] != response_id:
            return []
        self._playing, self._spoken = self._spoken, None
        return [self._events.event("output_audio_buffer.started", response_id=response_id)]

    def audio_stopped(self, response_id: str) -> list[JsonObject]:
        """The reply of `response_id` has played to its end: `output_audio_buffer.stopped`.

        [] when that reply is not playing (it was cleared, or never started).
        """
        if self._playing is None or self._playing[0] != response_id:
            return []
        self._playing = None
        return [self._events.event("output_audio_buffer.stopped", response_id=response_id)]

    def finish_response(self) -> list[JsonObject]:
        """The output and `response.done` of the response in progress ([] when none is)."""
        response = self._response
        if response is None:
            return []
        self._response = None
        reply = response.reply
        output: list[JsonObject] = []
        events: list[JsonObject] = []
        if reply.kind == "tool_call":
            if reply.user_item_id is not None:
                self._tool_called_for.add(reply.user_item_id)
            events, item = self._events.tool_call(
                response.id, reply.text, previous_item_id=self._last_item_id()
            )
            output.append(item)
        elif reply.kind == "message":
            events, item = self._events.assistant_message(
                response.id,
                reply.text,
                audio="audio" in response.modalities,
                previous_item_id=self._last_item_id(),
            )
            output.append(item)
            if "audio" in response.modalities:
                self._assistant_audio = True
                if self._plays_audio:
                    self._spoken = (response.id, item["id"])
        self._items.extend(output)
        events.append(
            self._events.event("response.done", response=self._response_object(response, output))
        )
        return events

    # -- client events ------------------------------------------------------------------------

    def _dispatch(self, event: Mapping[str, Any]) -> list[JsonObject]:
        kind = event.get("type")
        match kind:
            case "session.update":
                return self._update_session(event)
            case "conversation.item.create":
                return self._create_item(event)
            case "conversation.item.delete":
                return self._delete_item(event)
            case "conversation.item.retrieve":
                return [
                    self._events.event("conversation.item.retrieved", item=self._find_item(event))
                ]
            case "conversation.item.truncate":
                return self._truncate_item(event)
            case "response.create":
                return self._create_response(event)
            case "response.cancel":
                return self._cancel_response(event)
            case "input_audio_buffer.append":
                # The offline model hears through `user_spoke`, not through buffered audio.
                return []
            case "input_audio_buffer.commit":
                raise _ClientError(
                    "input_audio_buffer_commit_empty",
                    "Error committing input audio buffer: the buffer is empty.",
                )
            case "input_audio_buffer.clear":
                return [self._events.event("input_audio_buffer.cleared")]
            case "output_audio_buffer.clear":
                return self._clear_output_audio()
            case None:
                raise _ClientError(
                    "missing_required_parameter", "Missing required parameter: 'type'.", "type"
                )
            case _:
                supported = ", ".join(f"'{name}'" for name in CLIENT_EVENT_TYPES)
                raise _ClientError(
                    "invalid_value",
                    f"Invalid value: {kind!r}. Supported values are: {supported}.",
                    "type",
                )

    def _update_session(self, event: Mapping[str, Any]) -> list[JsonObject]:
        session = event.get("session")
        problem = find_session_problem(session)
        if problem is not None:
            raise _ClientError(problem.code, problem.message, problem.param)
        assert isinstance(session, Mapping)
        voice = _requested_voice(session)
        if voice is not None and self._assistant_audio and voice != _requested_voice(self._session):
            # https://platform.openai.com/docs/api-reference/realtime-client-events/session/update
            raise _ClientError(
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
                "session.audio.output.voice",
            )
        self._session = updated_session(self._session, session)
        return [self._events.event("session.updated", session=session_view(self._session))]

    def _create_item(self, event: Mapping[str, Any]) -> list[JsonObject]:
        item = _client_item(event.get("item"))
        item_id = item.get("id")
        if item_id is None:
            item["id"] = self._events.new_id("item")
        elif not isinstance(item_id, str) or self._index_of(item_id) is not None:
            raise _ClientError(
                "invalid_value", "The item id is invalid or already used.", "item.id"
            )
        position = self._insert_position(event.get("previous_item_id"))
        self._items.insert(position, item)
        previous_id = self._items[position - 1]["id"] if position > 0 else None
        return [
            self._events.event("conversation.item.added", previous_item_id=previous_id, item=item),
            self._events.event("conversation.item.done", previous_item_id=previous_id, item=item),
        ]

    def _insert_position(self, previous_item_id: object) -> int:
        if previous_item_id is None:
            return len(self._items)
        if previous_item_id == "root":
            return 0
        index = self._index_of(previous_item_id) if isinstance(previous_item_id, str) else None
        if index is None:
            raise _ClientError(
                "invalid_value", "previous_item_id does not name an item.", "previous_item_id"
            )
        return index + 1

    def _delete_item(self, event: Mapping[str, Any]) -> list[JsonObject]:
        item = self._find_item(event)
        self._items.remove(item)
        return [self._events.event("conversation.item.deleted", item_id=item["id"])]

    def _truncate_item(self, event: Mapping[str, Any]) -> list[JsonObject]:
        item_id = event.get("item_id")
        index = self._index_of(item_id) if isinstance(item_id, str) else None
        item = self._items[index] if index is not None else None
        if item is None or item.get("role") != "assistant":
            # The code clients report for this refusal from the real API.
            raise _ClientError(
                "item_truncate_invalid_item_id",
                "Only an assistant message in the conversation can be truncated.",
                "item_id",
            )
        return [
            self._events.event(
                "conversation.item.truncated",
                item_id=item["id"],
                content_index=event.get("content_index", 0),
                audio_end_ms=event.get("audio_end_ms", 0),
            )
        ]

    def _create_response(self, event: Mapping[str, Any]) -> list[JsonObject]:
        if self._session["type"] != "realtime":
            raise _ClientError(
                "invalid_value", "Transcription sessions do not create responses.", "type"
            )
        if self._response is not None:
            raise _ClientError(
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress: "
                f"{self._response.id}. Wait until the response is finished before creating a "
                "new one.",
            )
        options = event.get("response") or {}
        if not isinstance(options, Mapping):
            raise _ClientError("invalid_type", "Invalid type for 'response'.", "response")
        modalities = options.get("output_modalities", self._session["output_modalities"])
        if modalities not in OUTPUT_MODALITIES:
            raise _ClientError(
                "invalid_value",
                "Invalid value for 'response.output_modalities'.",
                "response.output_modalities",
            )
        return [self._start_response(modalities)]

    def _cancel_response(self, event: Mapping[str, Any]) -> list[JsonObject]:
        response = self._response
        if response is None:
            raise _ClientError("response_cancel_not_active", "There is no active response.")
        wanted = event.get("response_id")
        if wanted is not None and wanted != response.id:
            raise _ClientError(
                "invalid_value", "response_id is not the active response.", "response_id"
            )
        return [self._cancel(response, reason="client_cancelled")]

    def _cancel(self, response: _Response, *, reason: str) -> JsonObject:
        self._response = None
        cancelled = self._response_object(response, [], status="cancelled")
        cancelled["status_details"] = {"type": "cancelled", "reason": reason}
        return self._events.event("response.done", response=cancelled)

    def _clear_output_audio(self) -> list[JsonObject]:
        cut = self._playing or self._spoken
        if cut is None:
            raise _ClientError("invalid_value", "There is no output audio to clear.")
        self._playing = self._spoken = None
        return [self._events.event("output_audio_buffer.cleared", response_id=cut[0])]

    # -- responses ----------------------------------------------------------------------------

    def _start_response(self, modalities: list[str]) -> JsonObject:
        response = _Response(self._events.new_id("resp"), list(modalities), self._plan_reply())
        self._response = response
        return self._events.event(
            "response.created", response=self._response_object(response, [], "in_progress")
        )

    def _plan_reply(self) -> _Reply:
        if self._items and self._items[-1]["type"] == "function_call_output":
            output = self._items[-1]["output"]
            if not output:
                return _Reply("silence")
            return _Reply("message", f"Here is what the background agent found: {output}")
        user = next((i for i in reversed(self._items) if i.get("role") == "user"), None)
        if user is None:
            return _Reply("message", "How can I help?")
        text = message_text(user)
        if self._trigger in text.casefold() and user["id"] not in self._tool_called_for:
            return _Reply("tool_call", text, user["id"])
        return _Reply("message", f"You said: {text}")

    def _response_object(
        self, response: _Response, output: list[JsonObject], status: str = "completed"
    ) -> JsonObject:
        return {
            "object": "realtime.response",
            "id": response.id,
            "status": status,
            "status_details": None,
            "conversation_id": self._conversation_id,
            "output_modalities": response.modalities,
            "output": output,
            "usage": None,
            "metadata": None,
        }

    # -- helpers ------------------------------------------------------------------------------

    def _last_item_id(self) -> str | None:
        return self._items[-1]["id"] if self._items else None

    def _index_of(self, item_id: str) -> int | None:
        return next((i for i, item in enumerate(self._items) if item["id"] == item_id), None)

    def _find_item(self, event: Mapping[str, Any]) -> JsonObject:
        item_id = event.get("item_id")
        index = self._index_of(item_id) if isinstance(item_id, str) else None
        if index is None:
            raise _ClientError(
                "invalid_value", f"Item with item_id {item_id!r} not found.", "item_id"
            )
        return self._items[index]


def _requested_voice(session: Mapping[str, Any]) -> object:
    """The voice a session update asks for, if it names one."""
    audio = session.get("audio")
    output = audio.get("output") if isinstance(audio, Mapping) else None
    return output.get("voice") if isinstance(output, Mapping) else None


def _client_item(item: object) -> JsonObject:
    """A client-supplied item checked and normalised into a stored conversation item."""
    if not isinstance(item, Mapping):
        raise _ClientError(
            "missing_required_parameter", "Missing required parameter: 'item'.", "item"
        )
    stored: JsonObject = {"object": "realtime.item", "status": "completed"}
    if item.get("id") is not None:
        stored["id"] = item["id"]
    kind = item.get("type")
    if kind == "message":
        role, content = item.get("role"), item.get("content")
        if role not in _MESSAGE_ROLES:
            raise _ClientError("invalid_value", f"Invalid value: {role!r}.", "item.role")
        if not isinstance(content, list):
            raise _ClientError("invalid_type", "Invalid type for 'item.content'.", "item.content")
        stored.update(type="message", role=role, content=copy.deepcopy(content))
    elif kind == "function_call_output":
        for field in ("call_id", "output"):
            if not isinstance(item.get(field), str):
                raise _ClientError(
                    "missing_required_parameter",
                    f"Missing required parameter: 'item.{field}'.",
                    f"item.{field}",
                )
        stored.update(type="function_call_output", call_id=item["call_id"], output=item["output"])
    else:
        raise _ClientError("invalid_value", f"Invalid value: {kind!r}.", "item.type")
    return stored
