"""The per-call state machine: sideband server events in, actions for the I/O shell out.

Sans-I/O: `CallState` never touches a socket, clock or queue. The shell feeds it what the
sideband receives and what workers report, and carries out the actions it returns, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, assert_never

from signaling.realtime.client_events import (
    BACKGROUND_AGENT_TOOL,
    REMAIN_SILENT_TOOL,
    SessionConfig,
    function_call_output,
    response_create,
    session_update,
    user_message,
)
from signaling.realtime.delegation import Delegation, build_envelope, extract_request
from signaling.realtime.events import (
    ConversationItemAdded,
    ConversationItemDone,
    ErrorEvent,
    FunctionCallArgumentsDone,
    InputAudioCommitted,
    InputTranscriptCompleted,
    InputTranscriptDelta,
    InputTranscriptFailed,
    Item,
    KnownIgnored,
    MalformedEvent,
    OutputAudioDelta,
    OutputItemDone,
    OutputTranscriptDelta,
    OutputTranscriptDone,
    RateLimitsUpdated,
    ResponseCancelled,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    UnknownEvent,
    event_type_name,
    parse_server_event,
)
from signaling.realtime.transcript import Role, Transcript

STEERING_ACK: Final = "This was sent to steer the previous background agent task."
"""The output that answers a `background_agent` call made while another one is running."""

EMPTY_REQUEST_OUTPUT: Final = "The background agent was not called: the request was empty."
"""The output that answers a `background_agent` call with nothing to delegate."""

BACKEND_PREFIX: Final = "[BACKEND] "
"""Marks messages we add to the conversation on a worker's behalf."""

TERMINAL_ERROR_CODES: Final = frozenset(
    {"session_expired", "call_ended", "call_not_found", "call_id_not_found"}
)
"""Error codes after which the call is over. `session_expired` ends a session at its time
limit; the call codes cover a call the provider no longer knows (PROTOCOL §1.4)."""


@dataclass(frozen=True, slots=True)
class SendEvent:
    """Send `payload` as one JSON text message on the sideband."""

    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PublishTranscript:
    """Publish transcript progress: `text` is the new piece for a delta, the whole text for
    done."""

    kind: Literal["delta", "done"]
    role: Role
    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class EnqueueHandoff:
    """Put `delegation` on the handoff queue for a worker."""

    delegation: Delegation


@dataclass(frozen=True, slots=True)
class SessionReady:
    """The provider applied our session configuration."""

    session_id: str | None


@dataclass(frozen=True, slots=True)
class ReportError:
    """The provider reported an error; the call goes on unless `CallEnded` follows."""

    code: str | None
    message: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The provider ended the call; `reason` is its error code."""

    reason: str


@dataclass(frozen=True, slots=True)
class SpeechActivity:
    """Someone is speaking: the call is alive."""


@dataclass(frozen=True, slots=True)
class EventObserved:
    """An event of wire type `type_name` arrived (for metrics)."""

    type_name: str


@dataclass(frozen=True, slots=True)
class IgnoredEvent:
    """An event was dropped for `reason` (for debug logs)."""

    type_name: str
    reason: str


Action: TypeAlias = (
    SendEvent
    | PublishTranscript
    | EnqueueHandoff
    | SessionReady
    | ReportError
    | CallEnded
    | SpeechActivity
    | EventObserved
    | IgnoredEvent
)
"""Everything `CallState` asks its shell to do."""


@dataclass(slots=True)
class _Handoff:
    tool_call_id: str
    finished: bool = False


def _sequential_item_ids() -> Callable[[], str]:
    count = 0

    def next_id() -> str:
        nonlocal count
        count += 1
        return f"cb_ctl_{count}"

    return next_id


class CallState:
    """The state of one call's sideband: transcript, open tool calls, pending replies.

    It starts disconnected: whatever it has to send before `joined()` is queued. Item ids for
    the messages it adds come from `new_item_id`; the default counts from 1, so a shell that
    may rejoin a call after a restart should inject unique ids (at most 32 characters).
    """

    def __init__(
        self,
        call_id: str,
        config: SessionConfig,
        *,
        new_item_id: Callable[[], str] | None = None,
    ) -> None:
        self._call_id = call_id
        self._config = config
        self._new_item_id = new_item_id or _sequential_item_ids()
        self._transcript = Transcript()
        self._mark = self._transcript.mark()
        self._session_id: str | None = None
        self._connected = False
        self._outbox: list[dict[str, Any]] = []
        # Items sent but not yet echoed by the provider: a frame written just before the link
        # dropped can be lost without any error, so these are sent again on rejoin.
        self._unconfirmed: dict[str, dict[str, Any]] = {}
        # Unconfirmed items that asked for a reply: its response.create may have been lost too.
        self._respond_to: set[str] = set()
        self._response_active = False
        self._response_wanted = False
        self._control_items: set[str] = set()
        self._seen_tool_calls: set[str] = set()
        self._seen_tool_items: set[str] = set()
        self._handoffs: dict[str, _Handoff] = {}
        self._open: set[str] = set()
        self._answered: set[str] = set()

    @property
    def call_id(self) -> str:
        """The provider's call id."""
        return self._call_id

    @property
    def config(self) -> SessionConfig:
        """The session configuration last asked for."""
        return self._config

    @property
    def transcript(self) -> Transcript:
        """The call's transcript so far."""
        return self._transcript

    @property
    def session_id(self) -> str | None:
        """The provider's session id, once a `session.updated` carried it."""
        return self._session_id

    @property
    def open_handoffs(self) -> frozenset[str]:
        """Tool call ids of `background_agent` calls still waiting for their output."""
        return frozenset(self._open)

    @property
    def answered(self) -> frozenset[str]:
        """Tool call ids given their `function_call_output` (sent, or queued until rejoin)."""
        return frozenset(self._answered)

    def joined(self) -> list[Action]:
        """The sideband (re)connected: configure the session, then flush what was queued."""
        self._connected = True
        # A response running when the link dropped may have ended unseen; waiting for its
        # response.done could hold a reply back forever.
        self._response_active = False
        actions: list[Action] = [SendEvent(session_update(self._config))]
        queued = {id(payload) for payload in self._outbox}
        resent = {
            item_id: payload
            for item_id, payload in self._unconfirmed.items()
            if id(payload) not in queued
        }
        actions.extend(SendEvent(payload) for payload in resent.values())
        if self._respond_to.intersection(resent):
            self._response_wanted = True
        actions.extend(SendEvent(payload) for payload in self._outbox)
        self._outbox.clear()
        if self._response_wanted:
            self._response_wanted = False
            actions.append(SendEvent(response_create()))
        return actions

    def disconnected(self) -> None:
        """The sideband dropped: queue sends until the next `joined()`."""
        self._connected = False

    def feed_raw(self, raw: str | bytes) -> list[Action]:
        """Parse and handle one sideband message; never raises."""
        return self.feed(parse_server_event(raw))

    def feed(self, event: ServerEvent) -> list[Action]:
        """Handle one server event."""
        type_name = event_type_name(event)
        actions: list[Action] = [EventObserved(type_name)]
        match event:
            case SessionUpdated(session_id=session_id):
                if session_id is not None:
                    self._session_id = session_id
                actions.append(SessionReady(self._session_id))
            case InputTranscriptDelta(item_id=item_id, delta=delta):
                actions.extend(self._delta(item_id, "user", delta))
            case InputTranscriptCompleted(item_id=item_id, transcript=text):
                actions.extend(self._final(item_id, "user", text))
            case InputTranscriptFailed(item_id=item_id, message=message):
                actions.append(ReportError(None, f"transcription of {item_id} failed: {message}"))
            case OutputTranscriptDelta(item_id=item_id, delta=delta):
                actions.extend(self._delta(item_id, "assistant", delta))
            case OutputTranscriptDone(item_id=item_id, text=text):
                actions.extend(self._final(item_id, "assistant", text))
            case OutputAudioDelta() | SpeechStarted() | SpeechStopped():
                actions.append(SpeechActivity())
            case ConversationItemAdded(item=item, previous_item_id=previous):
                actions.extend(self._item(item, previous))
            case ConversationItemDone(item=item, previous_item_id=previous):
                actions.extend(self._item(item, previous))
                actions.extend(self._function_call_item(type_name, item))
            case OutputItemDone(item=item):
                actions.extend(self._function_call_item(type_name, item))
            case FunctionCallArgumentsDone(
                item_id=item_id, call_id=call_id, name=name, arguments=arguments
            ):
                actions.extend(self._tool_call(type_name, call_id, item_id, name, arguments))
            case InputAudioCommitted(item_id=item_id, previous_item_id=previous):
                self._transcript.place(item_id, previous)
            case ResponseCreated():
                self._response_active = True
            case ResponseDone() | ResponseCancelled():
                self._response_active = False
                if self._response_wanted and self._connected:
                    self._response_wanted = False
                    actions.append(SendEvent(response_create()))
            case ErrorEvent(code=code, message=message):
                actions.append(ReportError(code, message))
                if code in TERMINAL_ERROR_CODES:
                    actions.append(CallEnded(code))
            case SessionCreated() | RateLimitsUpdated() | KnownIgnored():
                pass
            case UnknownEvent():
                actions.append(IgnoredEvent(type_name, "unknown event type"))
            case MalformedEvent(reason=reason):
                actions.append(IgnoredEvent(type_name, reason))
            case _:
                assert_never(event)
        return actions

    def submit_result(self, handoff_id: str, output: str) -> list[Action]:
        """A worker finished `handoff_id` with `output`; only its first result counts.

        The open tool call gets `output` as its `function_call_output`; a steering handoff,
        whose tool call was acknowledged at once, reaches the model as a `[BACKEND]` message.
        Either way the model is asked to respond.
        """
        handoff = self._handoffs.get(handoff_id)
        if handoff is None or handoff.finished:
            return []
        handoff.finished = True
        if handoff.tool_call_id in self._answered:
            return self._backend_message(output, respond=True)
        return self._answer(handoff.tool_call_id, output, respond=True)

    def submit_failure(self, handoff_id: str, message: str) -> list[Action]:
        """A worker gave up on `handoff_id`; the model is told, so it never waits forever."""
        return self.submit_result(handoff_id, f"The background agent failed: {message}")

    def submit_progress(self, handoff_id: str, text: str) -> list[Action]:
        """Tell the model what the worker on `handoff_id` is doing, without asking for a reply.

        Dropped once the handoff has its result, or if it is unknown.
        """
        handoff = self._handoffs.get(handoff_id)
        if handoff is None or handoff.finished:
            return []
        return self._backend_message(text)

    def inject_user_text(self, text: str) -> list[Action]:
        """Add typed user text to the conversation and ask the model to respond."""
        return self._send(user_message(text, item_id=self._new_item_id()), respond=True)

    def update_session(self, config: SessionConfig) -> list[Action]:
        """Switch to `config`; while disconnected it is applied on the next `joined()`."""
        self._config = config
        return [SendEvent(session_update(config))] if self._connected else []

    def _send(self, payload: dict[str, Any], *, respond: bool = False) -> list[Action]:
        item_id = payload.get("item", {}).get("id")
        if isinstance(item_id, str):
            self._unconfirmed[item_id] = payload
            if respond:
                self._respond_to.add(item_id)
        if self._connected:
            actions: list[Action] = [SendEvent(payload)]
        else:
            self._outbox.append(payload)
            actions = []
        return actions + self._request_response() if respond else actions

    def _request_response(self) -> list[Action]:
        # One response at a time may write to the conversation; wishes made meanwhile
        # collapse into a single response.create once it ends.
        if self._response_active or not self._connected:
            self._response_wanted = True
            return []
        return [SendEvent(response_create())]

    def _backend_message(self, text: str, *, respond: bool = False) -> list[Action]:
        item_id = self._new_item_id()
        # Registered so that the provider's echo of it stays out of the transcript.
        self._control_items.add(item_id)
        return self._send(user_message(BACKEND_PREFIX + text, item_id=item_id), respond=respond)

    def _answer(self, tool_call_id: str, output: str, *, respond: bool) -> list[Action]:
        if tool_call_id in self._answered:
            return []
        self._answered.add(tool_call_id)
        self._open.discard(tool_call_id)
        return self._send(
            function_call_output(tool_call_id, output, item_id=self._new_item_id()),
            respond=respond,
        )

    def _delta(self, item_id: str, role: Role, delta: str) -> list[Action]:
        if self._transcript.apply_delta(item_id, role, delta):
            return [PublishTranscript("delta", role, item_id, delta)]
        return []

    def _final(self, item_id: str, role: Role, text: str) -> list[Action]:
        if self._transcript.apply_final(item_id, role, text):
            return [PublishTranscript("done", role, item_id, text)]
        return []

    def _item(self, item: Item, previous_item_id: str | None) -> list[Action]:
        if item.id is None:
            return []
        self._unconfirmed.pop(item.id, None)
        self._respond_to.discard(item.id)
        self._transcript.place(item.id, previous_item_id)
        typed_by_user = (
            item.type == "message" and item.role == "user" and "input_text" in item.content_types
        )
        if typed_by_user and item.text is not None and item.id not in self._control_items:
            return self._final(item.id, "user", item.text)
        return []

    def _function_call_item(self, type_name: str, item: Item) -> list[Action]:
        if item.type != "function_call":
            return []
        return self._tool_call(type_name, item.call_id, item.id, item.name, item.arguments)

    def _tool_call(
        self,
        type_name: str,
        call_id: str | None,
        item_id: str | None,
        name: str | None,
        arguments: str | None,
    ) -> list[Action]:
        tool_call_id = call_id or item_id
        # Without a name (the beta arguments event) the call cannot be classified yet; the
        # item's own done event will carry it.
        if tool_call_id is None or name is None:
            return []
        # Each completed call is announced by up to three events; only the first counts.
        if tool_call_id in self._seen_tool_calls or item_id in self._seen_tool_items:
            return []
        self._seen_tool_calls.add(tool_call_id)
        if item_id is not None:
            self._seen_tool_items.add(item_id)
        if self._config.mode == "transcription":
            return [IgnoredEvent(type_name, f"tool call {name!r} in transcription mode")]
        if name == REMAIN_SILENT_TOOL:
            return self._answer(tool_call_id, "", respond=False)
        if name == BACKGROUND_AGENT_TOOL:
            return self._handoff(tool_call_id, item_id or tool_call_id, arguments or "")
        return []

    def _handoff(self, tool_call_id: str, item_id: str, arguments: str) -> list[Action]:
        request = extract_request(arguments)
        delta = self._transcript.since(self._mark)
        self._mark = self._transcript.mark()
        envelope = build_envelope(request, delta)
        if envelope is None:
            return self._answer(tool_call_id, EMPTY_REQUEST_OUTPUT, respond=True)
        steering = bool(self._open)
        handoff_id = f"{self._call_id}:{tool_call_id}"
        self._handoffs[handoff_id] = _Handoff(tool_call_id)
        delegation = Delegation(
            call_id=self._call_id,
            tool_call_id=tool_call_id,
            handoff_id=handoff_id,
            item_id=item_id,
            request=request,
            transcript_delta=delta,
            envelope=envelope,
            steering=steering,
        )
        actions: list[Action] = [EnqueueHandoff(delegation)]
        if steering:
            return actions + self._answer(tool_call_id, STEERING_ACK, respond=True)
        self._open.add(tool_call_id)
        return actions
