"""The per-call machine: it owns the whole call, the driver only does I/O.

Sans-I/O: `CallState` never touches a socket, clock or queue. Its inputs are sideband frames,
link reports (`link_opened`, `link_closed`, `join_failed`, `send_failed`), worker reports,
control commands and `tick(now)`; each returns the actions (`signaling.realtime.actions`) the
driver carries out, in order. Times are seconds on one clock the driver chooses (wall-clock
time, so a snapshot taken on one instance means the same on another).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Final, assert_never

from signaling.realtime.actions import (
    Action,
    Connect,
    EndCall,
    EnqueueHandoff,
    EventObserved,
    HandoffDelivered,
    HandoffExpired,
    HangUp,
    IgnoredEvent,
    Joined,
    LimitReached,
    PublishTranscript,
    ReportError,
    SendEvent,
    SessionReady,
    SessionSettings,
    SleepUntil,
    SpeechActivity,
)
from signaling.realtime.client_events import (
    BACKGROUND_AGENT_TOOL,
    REMAIN_SILENT_TOOL,
    SessionConfig,
    function_call_output,
    item_retrieve,
    response_create,
    session_diff,
    session_touch,
    session_update,
    user_message,
)
from signaling.realtime.delegation import Delegation, build_envelope
from signaling.realtime.end_reasons import CallEnd, EndReason
from signaling.realtime.events import (
    KNOWN_TYPE_LABELS,
    UNKNOWN_TYPE_LABEL,
    ConversationItemAdded,
    ConversationItemDone,
    ErrorEvent,
    FunctionCallArgumentsDone,
    InputAudioCommitted,
    InputTranscriptCompleted,
    InputTranscriptDelta,
    InputTranscriptFailed,
    Item,
    ItemRetrieved,
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
from signaling.realtime.limits import (
    ERROR_CAP,
    ERROR_CODE_CAP,
    MAX_ID_CHARS,
    REQUEST_CAP,
    TOOL_CALL_ID_CAP,
    TOOL_NAME_CAP,
    CallLimits,
    clip,
    utf8_size,
)
from signaling.realtime.link import Link, LinkStatus
from signaling.realtime.outbox import Outbox
from signaling.realtime.responses import ResponseArbiter
from signaling.realtime.tool_calls import (
    REQUEST_TOO_LONG_OUTPUT,
    RETRY_OUTPUT,
    UNKNOWN_TOOL_OUTPUT,
    ToolCall,
    parse_prompt,
)
from signaling.realtime.transcript import Role, Transcript, TranscriptMark
from signaling.redaction import redact

STEERING_ACK: Final = "This was sent to steer the previous background agent task."
"""The output that answers a `background_agent` call made while another one is running."""

NO_ANSWER_REASON: Final = "it did not answer within {deadline:g} s"
"""Why a handoff past its deadline failed; the model hears it as a failure."""

CALL_ENDED_REASON: Final = "the call ended before it answered"
"""Why a handoff still waiting when the call ended failed."""

EMPTY_REQUEST_OUTPUT: Final = "The background agent was not called: the request was empty."
"""The output that answers a `background_agent` call with nothing to delegate."""

BACKEND_PREFIX: Final = "[BACKEND] "
"""Marks messages we add to the conversation on a worker's behalf."""

TERMINAL_ERROR_CODES: Final = frozenset(
    {"session_expired", "call_ended", "call_not_found", "call_id_not_found"}
)
"""Error codes after which the call is over. `session_expired` ends a session at its time
limit; the call codes cover a call the provider no longer knows (PROTOCOL §1.4)."""

QUIET_CANCEL_REASONS: Final = frozenset({"turn_detected"})
"""Cancelled responses not reported as errors: the user talking over the model is normal."""

SNAPSHOT_VERSION: Final = 1
"""The `version` of `CallState.snapshot()` output."""

_OFFERED_TOOLS: Final = f"{BACKGROUND_AGENT_TOOL}, {REMAIN_SILENT_TOOL}"
# Actions that show the call is in use (for the idle timeout); a tuple, which `isinstance`
# checks faster than a union, once per event.
_ACTIVITY: Final = (PublishTranscript, SpeechActivity, EnqueueHandoff)

_ITEMS_CAP: Final = "transcript_items"
_BYTES_CAP: Final = "transcript_bytes"

# `EventObserved` is immutable: one per metric label, not one per event.
_OBSERVED: Final = {label: EventObserved(label) for label in KNOWN_TYPE_LABELS}
_OBSERVED_UNKNOWN: Final = EventObserved(UNKNOWN_TYPE_LABEL)


def _sequential_item_ids() -> Callable[[], str]:
    count = 0

    def next_id() -> str:
        nonlocal count
        count += 1
        return f"cb_ctl_{count}"

    return next_id


def _texts_size(delegation: Delegation) -> int:
    """The UTF-8 bytes of a delegation's request and transcript delta."""
    return utf8_size(delegation.request) + sum(
        utf8_size(e.text) for e in delegation.transcript_delta
    )


def _keep_jitter() -> float:
    return 0.5


class CallState:
    """One call: link, outbox, tool calls, responses, session settings, transcript, end.

    `new_item_id` names the items we add (at most 32 characters; the default counts from 1,
    so a driver that may rejoin a call after a restart should inject unique ids). `jitter`
    returns a number in [0, 1) for backoff jitter. `secrets` are redacted, with anything
    key-shaped, from all provider text the core passes on.
    """

    # One per live call, thousands at once: no per-instance dict.
    __slots__ = (
        "_awaiting_reply",
        "_call_id",
        "_confirmed",
        "_control_items",
        "_delegations",
        "_ended",
        "_errors",
        "_events_stamped",
        "_handoffs",
        "_jitter",
        "_last_activity",
        "_limits",
        "_limits_hit",
        "_link",
        "_mark",
        "_new_item_id",
        "_open",
        "_outbox",
        "_pending",
        "_queue_again",
        "_repairing",
        "_reply_for",
        "_requested",
        "_responses",
        "_retrieving",
        "_secrets",
        "_session_id",
        "_session_updates",
        "_started_at",
        "_tool_calls",
        "_tool_items",
        "_transcript",
        "dropped_errors",
    )

    def __init__(
        self,
        call_id: str,
        config: SessionConfig,
        *,
        limits: CallLimits | None = None,
        new_item_id: Callable[[], str] | None = None,
        jitter: Callable[[], float] | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self._call_id = call_id
        self._limits = limits or CallLimits()
        self._new_item_id = new_item_id or _sequential_item_ids()
        self._jitter = jitter or _keep_jitter
        self._secrets = tuple(secrets)
        self._requested = config
        self._confirmed: SessionConfig | None = None
        self._session_updates: OrderedDict[str, SessionConfig] = OrderedDict()
        self._session_id: str | None = None
        self._events_stamped = 0
        self._outbox = Outbox(self._new_event_id)
        self._link = Link(self._limits.reconnect)
        self._responses = ResponseArbiter()
        self._transcript = Transcript(
            max_items=self._limits.max_transcript_items,
            max_bytes=self._limits.max_transcript_bytes,
        )
        self._mark = self._transcript.mark()
        self._tool_calls: dict[str, ToolCall] = {}
        self._tool_items: dict[str, str] = {}
        self._handoffs: dict[str, str] = {}
        # Handoffs waiting for their result, by handoff id: what the deadline watches.
        self._pending: dict[str, ToolCall] = {}
        # What each of them was handed off as, kept until its result, so that a successor can
        # queue it again (`restore`).
        self._delegations: dict[str, Delegation] = {}
        self._queue_again: list[Delegation] = []
        self._open: set[str] = set()
        # Ordered, so the oldest is forgotten first past the item cap.
        self._control_items: dict[str, None] = {}
        # Answered handoffs whose reply has not started yet; once a response.create goes
        # out they wait under its event id for `response.created`.
        self._awaiting_reply: list[str] = []
        self._reply_for: dict[str, list[str]] = {}
        self._repairing = False
        self._retrieving: set[str] = set()
        self._started_at: float | None = None
        self._last_activity = 0.0
        self._ended = False
        self._errors = 0
        self.dropped_errors = 0
        self._limits_hit: set[str] = set()

    # What the driver and the record read

    @property
    def call_id(self) -> str:
        """The provider's call id."""
        return self._call_id

    @property
    def config(self) -> SessionConfig:
        """The session settings requested (the confirmed ones when a request was refused)."""
        return self._requested

    @property
    def confirmed_config(self) -> SessionConfig | None:
        """The settings the provider confirmed with `session.updated`; None before that."""
        return self._confirmed

    @property
    def transcript(self) -> Transcript:
        """The call's transcript so far."""
        return self._transcript

    @property
    def session_id(self) -> str | None:
        """The provider's session id, once a `session.updated` carried it."""
        return self._session_id

    @property
    def link_status(self) -> LinkStatus:
        """`joining`, `open` or `lost`."""
        return self._link.status

    @property
    def ended(self) -> bool:
        """Whether `EndCall` was emitted."""
        return self._ended

    @property
    def open_handoffs(self) -> frozenset[str]:
        """Tool call ids of `background_agent` calls still waiting for their output."""
        return frozenset(self._open)

    @property
    def answered(self) -> frozenset[str]:
        """Tool call ids given their `function_call_output` (sent, or queued until rejoin)."""
        return frozenset(t for t, call in self._tool_calls.items() if call.answered)

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """Copies of every tool call record, in the order the calls were seen."""
        return tuple(dataclasses.replace(call) for call in self._tool_calls.values())

    @property
    def wake_at(self) -> float:
        """When `tick` next has something to do (a join, a handoff's deadline, the idle or
        maximum-duration end)."""
        if self._ended or self._started_at is None:
            return float("inf")
        at = min(
            self._started_at + self._limits.max_duration_s,
            self._last_activity + self._limits.idle_timeout_s,
        )
        for call in self._pending.values():
            if call.answer_by is not None:
                at = min(at, call.answer_by)
        if self._link.status == "joining":
            at = min(at, self._link.join_at)
        return at

    # Time and the link

    def start(self, now: float) -> list[Action]:
        """The driver starts running the call: join the sideband."""
        if self._started_at is None:
            self._started_at = now
            self._last_activity = now
        self._link.join_at = now
        actions = self.tick(now)
        # Queued again after `tick` failed those whose deadline passed meanwhile, but before
        # the join: an answer taken meanwhile must find them queued already.
        again, self._queue_again = self._queue_again, []
        return [
            *(EnqueueHandoff(d, again=True) for d in again if d.handoff_id in self._pending),
            *actions,
        ]

    def awaits_result(self, handoff_id: str) -> bool:
        """Whether handoff `handoff_id` is still waiting for its result or failure."""
        return handoff_id in self._pending

    def tick(self, now: float) -> list[Action]:
        """Time passed: end an idle or overlong call, fail the handoffs past their deadline
        (each as `submit_failure` would, plus `HandoffExpired`), or start a join that is due."""
        if self._ended or self._started_at is None:
            return []
        if now >= self._started_at + self._limits.max_duration_s:
            return self._finish(CallEnd(EndReason.MAX_DURATION), hang_up=True)
        if now >= self._last_activity + self._limits.idle_timeout_s:
            return self._finish(CallEnd(EndReason.IDLE_TIMEOUT), hang_up=True)
        actions = self._expire_handoffs(now)
        if self._link.connect_due(now):
            actions.append(Connect())
        return actions

    def _expire_handoffs(self, now: float) -> list[Action]:
        actions: list[Action] = []
        self._set_deadlines(now)
        due = [
            h
            for h, call in self._pending.items()
            if call.answer_by is not None and call.answer_by <= now
        ]
        reason = NO_ANSWER_REASON.format(deadline=self._limits.handoff_deadline_s)
        for handoff_id in due:
            actions.append(HandoffExpired(handoff_id, reason))
            actions.extend(self.submit_failure(handoff_id, reason, now))
        return actions

    def _set_deadlines(self, now: float) -> None:
        # A handoff made by an event given without a time, or restored from a snapshot that
        # had no deadlines, is timed from the first time the core is given.
        for call in self._pending.values():
            if call.answer_by is None:
                call.answer_by = now + self._limits.handoff_deadline_s

    def link_opened(self, now: float) -> list[Action]:
        """A sideband connection opened: exactly one `session.update`, then the items the
        provider may not have, then what waited, then a `response.create` if one is due."""
        if self._ended:
            return []
        rejoin = self._link.opened()
        if rejoin:
            self._repairing = True
        actions: list[Action] = [Joined(rejoin)]
        self._session_updates.clear()
        # The session outlives the link: a rejoin sends only what changed since the provider
        # last confirmed, so a setting it refuses once (a voice) is not sent again.
        base = self._confirmed
        if base is None:
            payload = session_update(self._requested)
        else:
            payload = session_diff(base, self._requested) or session_touch(self._requested)
        update = self._outbox.stamp(payload)
        self._session_updates[update["event_id"]] = self._requested
        actions.append(self._emit(update))
        actions.extend(self._emit(payload) for payload in self._outbox.for_new_connection())
        if self._responses.wanted:
            actions.extend(self._request_response())
        return actions

    def link_closed(self, code: int | None, reason: str, now: float) -> list[Action]:
        """The connection closed (`code`, `reason` from the close frame, if any)."""
        if self._ended:
            return []
        self._link_lost()
        self._link.closed(code)
        return self._retry_or_end(now, f"closed with code {code} {self._message(reason)!r}".strip())

    def join_failed(
        self, status: int | None, code: str | None, now: float, message: str = ""
    ) -> list[Action]:
        """A join failed: HTTP `status` of the refused handshake (None: no answer), the
        provider's error `code` and `message` from the refusal body, when it sent one.

        404/410 on a rejoin ends the call, with nothing to hang up: `remote_hangup` when the
        last connection closed normally (the other party hung up), `provider_ended` otherwise.
        401/403/404/410 before any join fail it `sideband_refused`; anything else is retried."""
        if self._ended:
            return []
        self._link_lost()
        detail = self._message(message) or (f"HTTP {status}" if status else "no answer")
        safe_code = self._code(code) if code else None
        if status in (404, 410) and self._link.joins > 0:
            # The call existed and is over: nothing left to hang up.
            if self._link.closed_normally:
                # Closed normally, then unknown: the other party hung up (a phone caller's BYE,
                # a WebRTC peer leaving), which is how calls end, not a fault.
                refusal = f"HTTP {status} {safe_code}" if safe_code else f"HTTP {status}"
                message = f"the sideband closed normally and the rejoin was refused ({refusal})"
                return self._finish(CallEnd(EndReason.REMOTE_HANGUP, message=message), False)
            end = CallEnd(EndReason.PROVIDER_ENDED, code=safe_code or str(status), message=detail)
            return self._finish(end, hang_up=False)
        if status in (401, 403, 404, 410):
            # Refused before we ever joined: its WebRTC leg may still be up and billed
            # (PROTOCOL §10.3), so it is hung up all the same.
            end = CallEnd(
                EndReason.SIDEBAND_REFUSED,
                failed=True,
                code=safe_code or str(status),
                message=f"the provider refused the sideband (HTTP {status}): {detail}",
            )
            return self._finish(end, hang_up=True)
        return self._retry_or_end(now, detail)

    def send_failed(self, payload: dict[str, Any], now: float) -> list[Action]:
        """The driver could not send `payload` (from a `SendEvent`): the core decides what
        goes out on the next connection. The link's close is reported separately."""
        event_id = payload.get("event_id")
        kind = payload.get("type")
        if kind == "response.create":
            if self._responses.in_flight == event_id:
                self._responses.link_lost(resend=True)
                self._awaiting_reply[:0] = self._reply_for.pop(str(event_id), [])
        elif kind == "session.update":
            # The next connection sends its own, from the settings requested then.
            self._session_updates.pop(str(event_id), None)
        else:
            self._outbox.send_failed(payload)
        return []

    def _link_lost(self) -> None:
        # What a lost response.create was for: items the provider may not have, or answers
        # not yet spoken.
        self._responses.link_lost(resend=self._outbox.unconfirmed or bool(self._reply_for))
        for handoff_ids in self._reply_for.values():
            self._awaiting_reply[:0] = handoff_ids
        self._reply_for.clear()
        self._session_updates.clear()

    def _retry_or_end(self, now: float, detail: str) -> list[Action]:
        if self._link.failed(now, self._jitter()):
            if self._link.join_at <= now:
                return self.tick(now)
            return [SleepUntil(self._link.join_at)]
        attempts = self._limits.reconnect.max_attempts
        if self._link.joins == 0:
            end = CallEnd(
                EndReason.SIDEBAND_UNAVAILABLE,
                failed=True,
                message=f"sideband join failed {attempts} times: {detail}",
            )
        else:
            end = CallEnd(
                EndReason.SIDEBAND_LOST,
                message=f"sideband rejoin failed {attempts} times: {detail}",
            )
        return self._finish(end, hang_up=True)

    def end(self, reason: EndReason) -> list[Action]:
        """End the call for `reason` from our side: hang up at the provider, then end."""
        if self._ended:
            return []
        failed = reason in (EndReason.INTERNAL_ERROR, EndReason.CLIENT_GONE)
        return self._finish(CallEnd(reason, failed=failed), True)

    def _finish(self, end: CallEnd, hang_up: bool) -> list[Action]:
        self._ended = True
        self._link.give_up()
        # Nothing can answer them any more: their records are closed, not left running.
        expired: list[Action] = [HandoffExpired(h, CALL_ENDED_REASON) for h in self._pending]
        for call in self._pending.values():
            call.result_in = True
        self._pending.clear()
        self._delegations.clear()
        return [HangUp(), *expired, EndCall(end)] if hang_up else [*expired, EndCall(end)]

    # Sideband frames

    def feed_raw(self, raw: str | bytes, now: float | None = None) -> list[Action]:
        """Parse and handle one sideband message; never raises."""
        return self.feed(parse_server_event(raw), now)

    def feed(self, event: ServerEvent, now: float | None = None) -> list[Action]:
        """Handle one server event received at `now` (None: do not count it as activity)."""
        if self._ended:
            return []
        self._link.delivered()
        type_name = event_type_name(event)
        actions: list[Action] = [_OBSERVED.get(type_name, _OBSERVED_UNKNOWN)]
        actions += self._handle(event, type_name)
        if now is not None:
            for action in actions:
                if isinstance(action, _ACTIVITY):
                    self._last_activity = now
                    self._set_deadlines(now)
                    break
        transcript, hit = self._transcript, self._limits_hit
        if (transcript.dropped_items and _ITEMS_CAP not in hit) or (
            transcript.dropped_bytes and _BYTES_CAP not in hit
        ):
            actions += self._limit_reports()
        return actions

    def _handle(self, event: ServerEvent, type_name: str) -> list[Action]:
        # Cases are tried in order: the events a call brings most often come first.
        match event:
            case OutputTranscriptDelta(item_id=item_id, delta=delta):
                return self._delta(item_id, "assistant", delta)
            case InputTranscriptDelta(item_id=item_id, delta=delta):
                return self._delta(item_id, "user", delta)
            case OutputAudioDelta() | SpeechStarted() | SpeechStopped():
                return [SpeechActivity()]
            case SessionUpdated(session_id=session_id):
                return self._session_updated(session_id)
            case InputTranscriptCompleted(item_id=item_id, transcript=text):
                return self._final(item_id, "user", text)
            case InputTranscriptFailed(item_id=item_id, message=message):
                return self._report(None, f"transcription of {item_id} failed: {message}")
            case OutputTranscriptDone(item_id=item_id, text=text):
                return self._final(item_id, "assistant", text)
            case ConversationItemAdded(item=item, previous_item_id=previous):
                return self._item(item, previous)
            case ConversationItemDone(item=item, previous_item_id=previous):
                return self._item(item, previous) + self._function_call_item(type_name, item)
            case ItemRetrieved(item=item, previous_item_id=previous):
                return self._retrieved(type_name, item, previous)
            case OutputItemDone(item=item):
                return self._function_call_item(type_name, item)
            case FunctionCallArgumentsDone(
                item_id=item_id, call_id=call_id, name=name, arguments=arguments
            ):
                return self._tool_call(type_name, call_id, item_id, name, arguments, False)
            case InputAudioCommitted(item_id=item_id, previous_item_id=previous):
                # The first event of a spoken turn: after a rejoin it is the one that reveals
                # a gap, before placing the turn makes its unseen predecessor known.
                actions = self._repair_gap(previous)
                self._transcript.place(item_id, previous)
                return actions
            case ResponseCreated():
                ours = self._responses.created()
                delivered = self._reply_for.pop(ours, []) if ours is not None else []
                return [HandoffDelivered(h) for h in delivered if self._delivered(h)]
            case ResponseDone() | ResponseCancelled():
                return self._response_ended(type_name, event)
            case ErrorEvent():
                return self._error(event)
            case SessionCreated() | RateLimitsUpdated() | KnownIgnored():
                return []
            case UnknownEvent():
                return [IgnoredEvent(type_name, "unknown event type")]
            case MalformedEvent(reason=reason):
                return [IgnoredEvent(type_name, reason)]
            case _:
                assert_never(event)

    # Session settings

    def update_session(self, config: SessionConfig) -> list[Action]:
        """Ask for `config`. On an open link only what differs from the confirmed settings
        goes out; otherwise the next connection's `session.update` carries it."""
        if self._ended:
            return []
        self._requested = config
        actions: list[Action] = [SessionSettings(config, self._confirmed)]
        if self._link.status != "open":
            return actions
        base = self._confirmed
        payload = session_update(config) if base is None else session_diff(base, config)
        if payload is None:
            return actions
        stamped = self._outbox.stamp(payload)
        self._session_updates[stamped["event_id"]] = config
        return [*actions, self._emit(stamped)]

    def _session_updated(self, session_id: str | None) -> list[Action]:
        if session_id is not None:
            self._session_id = session_id
        actions: list[Action] = [SessionReady(self._session_id)]
        if self._session_updates:
            # The provider answers updates in order: this confirms the oldest one in flight.
            _, self._confirmed = self._session_updates.popitem(last=False)
            actions.append(SessionSettings(self._requested, self._confirmed))
        return actions

    def _session_refused(self, event_id: str, code: str | None, message: str) -> list[Action]:
        self._session_updates.pop(event_id, None)
        if self._confirmed is not None:
            # The whole update is refused (PROTOCOL §10.1): the confirmed settings stay in
            # force, and later updates are computed against them.
            self._requested = self._confirmed
        return [
            *self._report(code, f"session.update refused: {message}"),
            SessionSettings(self._requested, self._confirmed),
        ]

    # Errors and responses

    def _error(self, event: ErrorEvent) -> list[Action]:
        refused = self._outbox.sent_type(event.event_id)
        if refused == "response.create" and event.event_id is not None:
            if self._responses.refused(event.event_id, event.code):
                self._awaiting_reply[:0] = self._reply_for.pop(event.event_id, [])
                return [IgnoredEvent("error", "response.create refused: a response is active")]
            self._awaiting_reply[:0] = self._reply_for.pop(event.event_id, [])
        if refused == "session.update" and event.event_id is not None:
            return self._session_refused(event.event_id, event.code, event.message)
        if refused == "conversation.item.retrieve":
            code = self._code(event.code) if event.code else None
            return [IgnoredEvent("error", f"item retrieval refused: {code}")]
        actions = self._report(event.code, event.message)
        if event.code in TERMINAL_ERROR_CODES:
            end = CallEnd(
                EndReason.PROVIDER_ENDED,
                code=self._code(event.code),
                message=self._message(event.message),
            )
            actions.extend(self._finish(end, hang_up=True))
        return actions

    def _response_ended(
        self, type_name: str, event: ResponseDone | ResponseCancelled
    ) -> list[Action]:
        actions: list[Action] = []
        if isinstance(event, ResponseDone):
            actions.extend(self._response_outcome(event))
            incomplete = event.status == "incomplete"
            for item in event.output:
                if item.type == "function_call":
                    actions.extend(self._function_call_item(type_name, item, incomplete))
        if self._responses.done(self._link.status == "open"):
            actions.extend(self._send_response_create())
        return actions

    def _response_outcome(self, event: ResponseDone) -> list[Action]:
        if event.status == "failed":
            code = event.error_code or event.reason or "response_failed"
            message = event.error_message or "the response failed"
            return self._report(code, f"response {event.response_id} failed: {message}")
        if event.status in ("cancelled", "incomplete") and event.reason is not None:
            if event.reason in QUIET_CANCEL_REASONS:
                return []
            return self._report(
                event.reason, f"response {event.response_id} {event.status}: {event.reason}"
            )
        return []

    def _request_response(self) -> list[Action]:
        if self._responses.request(self._link.status == "open"):
            return self._send_response_create()
        return []

    def _send_response_create(self) -> list[Action]:
        payload = self._outbox.stamp(response_create())
        self._responses.sending(payload["event_id"])
        if self._awaiting_reply:
            self._reply_for[payload["event_id"]] = self._awaiting_reply
            self._awaiting_reply = []
        return [self._emit(payload)]

    def _delivered(self, handoff_id: str) -> bool:
        call = self._tool_calls.get(self._handoffs.get(handoff_id, ""))
        if call is None or call.delivered:
            return False
        call.delivered = True
        return True

    def _report(self, code: str | None, message: str) -> list[Action]:
        if self._errors < self._limits.max_errors:
            self._errors += 1
            limits = self._limits
            safe_message, cuts = self._shown(message, limits.max_error_bytes, ERROR_CAP)
            safe_code = None
            if code:
                safe_code, code_cuts = self._shown(code, limits.max_name_bytes, ERROR_CODE_CAP)
                cuts += code_cuts
            return [ReportError(safe_code, safe_message), *cuts]
        self.dropped_errors += 1
        return self._limit_hit("errors", self._limits.max_errors)

    def _limit_reports(self) -> list[Action]:
        actions: list[Action] = []
        if self._transcript.dropped_items:
            actions.extend(self._limit_hit(_ITEMS_CAP, self._transcript.max_items))
        if self._transcript.dropped_bytes:
            actions.extend(self._limit_hit(_BYTES_CAP, self._transcript.max_bytes))
        return actions

    def _limit_hit(self, kind: str, limit: int) -> list[Action]:
        if kind in self._limits_hit:
            return []
        self._limits_hit.add(kind)
        return [LimitReached(kind, limit)]

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)

    # Provider text is cut only after it is redacted: a cut first could split a secret and
    # leave most of it unrecognised.

    def _shown(self, text: str, max_bytes: int, cap: str) -> tuple[str, list[Action]]:
        """`text` redacted, then cut to `max_bytes`; and the `cap` hit, when it was cut."""
        redacted = self._redact(text)
        shown = clip(redacted, max_bytes)
        return shown, [] if shown is redacted else self._limit_hit(cap, max_bytes)

    def _message(self, text: str) -> str:
        return clip(self._redact(text), self._limits.max_error_bytes)

    def _code(self, text: str) -> str:
        return clip(self._redact(text), self._limits.max_name_bytes)

    # Worker reports and control

    def submit_result(self, handoff_id: str, output: str, now: float | None = None) -> list[Action]:
        """A worker finished `handoff_id` with `output`; only its first result counts.

        The open tool call gets `output` as its `function_call_output`; a steering handoff,
        whose tool call was acknowledged at once, reaches the model as a `[BACKEND]` message.
        Either way a response is asked for (now, or once the running one is done).
        """
        call = self._tool_calls.get(self._handoffs.get(handoff_id, ""))
        if call is None or call.result_in or self._ended:
            return []
        call.result_in = True
        self._pending.pop(handoff_id, None)
        self._delegations.pop(handoff_id, None)
        if now is not None:
            self._last_activity = now
        self._awaiting_reply.append(handoff_id)
        if call.answered:
            return self._backend_message(output, respond=True)
        return self._answer(call, output, respond=True)

    def submit_failure(
        self, handoff_id: str, message: str, now: float | None = None
    ) -> list[Action]:
        """A worker gave up on `handoff_id`; the model is told, so it never waits forever.

        The core does the same itself (`tick`) for a handoff with no result or failure within
        `CallLimits.handoff_deadline_s` of being handed off; progress does not extend that.
        """
        return self.submit_result(handoff_id, f"The background agent failed: {message}", now)

    def submit_progress(self, handoff_id: str, text: str, now: float | None = None) -> list[Action]:
        """Tell the model what the worker on `handoff_id` is doing, without asking for a reply.

        Dropped once the handoff has its result, or if it is unknown.
        """
        call = self._tool_calls.get(self._handoffs.get(handoff_id, ""))
        if call is None or call.result_in or self._ended:
            return []
        if now is not None:
            self._last_activity = now
        return self._backend_message(text)

    def inject_user_text(self, text: str, now: float | None = None) -> list[Action]:
        """Add typed user text to the conversation and ask the model to respond."""
        if self._ended:
            return []
        if now is not None:
            self._last_activity = now
        return self._send(user_message(text, item_id=self._new_item_id()), respond=True)

    # Sending

    def _new_event_id(self) -> str:
        self._events_stamped += 1
        return f"cb_ev_{self._events_stamped}"

    def _emit(self, payload: dict[str, Any]) -> SendEvent:
        self._outbox.sent(payload)
        return SendEvent(payload)

    def _send(self, payload: dict[str, Any], *, respond: bool = False) -> list[Action]:
        stamped = self._outbox.stamp(payload)
        actions: list[Action] = []
        if self._link.status == "open":
            actions.append(self._emit(stamped))
        else:
            self._outbox.queue(stamped)
        return actions + self._request_response() if respond else actions

    def _backend_message(self, text: str, *, respond: bool = False) -> list[Action]:
        item_id = self._new_item_id()
        # Registered so that the provider's echo of it stays out of the transcript.
        self._control_items[item_id] = None
        if len(self._control_items) > self._limits.max_transcript_items:
            del self._control_items[next(iter(self._control_items))]
        return self._send(user_message(BACKEND_PREFIX + text, item_id=item_id), respond=respond)

    def _answer(self, call: ToolCall, output: str, *, respond: bool) -> list[Action]:
        if call.answered:
            return []
        call.output_item_id = self._new_item_id()
        if call.status != "refused":
            call.status = "answered"
        self._open.discard(call.tool_call_id)
        return self._send(
            function_call_output(call.tool_call_id, output, item_id=call.output_item_id),
            respond=respond,
        )

    # Transcript and items

    def _delta(self, item_id: str, role: Role, delta: str) -> list[Action]:
        if self._transcript.apply_delta(item_id, role, delta):
            return [PublishTranscript("delta", role, item_id, delta)]
        return []

    def _final(self, item_id: str, role: Role, text: str) -> list[Action]:
        if self._transcript.apply_final(item_id, role, text):
            return [PublishTranscript("done", role, item_id, text)]
        return []

    def _item(
        self, item: Item, previous_item_id: str | None, *, place: bool = True
    ) -> list[Action]:
        if item.id is None:
            return []
        self._outbox.confirmed(item.id)
        actions = self._repair_gap(previous_item_id)
        if place:
            self._transcript.place(item.id, previous_item_id)
        if item.type == "function_call_output" and item.call_id is not None:
            self._output_seen(item.call_id, item.id)
        typed_by_user = (
            item.type == "message" and item.role == "user" and "input_text" in item.content_types
        )
        if typed_by_user and item.text is not None and item.id not in self._control_items:
            actions.extend(self._final(item.id, "user", item.text))
        return actions

    def _repair_gap(self, previous_item_id: str | None) -> list[Action]:
        # After a rejoin, an item placed after one we never saw reveals a gap: fetch the
        # missing item (PROTOCOL §10.4). Its own predecessor is fetched in turn only if the
        # provider names it, which the API's retrieved event does not: of a longer gap only
        # its last item can be found.
        if (
            not self._repairing
            or previous_item_id is None
            or previous_item_id in self._transcript
            or previous_item_id in self._retrieving
            or len(self._retrieving) >= self._limits.max_transcript_items
        ):
            return []
        self._retrieving.add(previous_item_id)
        return self._send(item_retrieve(previous_item_id))

    def _retrieved(self, type_name: str, item: Item, previous: str | None) -> list[Action]:
        # The API's `conversation.item.retrieved` names no predecessor
        # (https://platform.openai.com/docs/api-reference/realtime-server-events/conversation/item/retrieved):
        # a retrieved item then stays where it first appeared, just before the item that
        # revealed it, rather than being placed at the start of the conversation.
        actions = self._item(item, previous, place=previous is not None)
        if item.id is None or item.id in self._control_items:
            return actions
        if item.type == "message" and item.text is not None:
            if item.role == "user":
                actions.extend(self._final(item.id, "user", item.text))
            elif item.role == "assistant":
                actions.extend(self._final(item.id, "assistant", item.text))
        return actions + self._function_call_item(type_name, item)

    def _output_seen(self, tool_call_id: str, item_id: str) -> None:
        # An output already in the conversation (sent before a takeover, or found by gap
        # repair) answers its call: a second one must never go out.
        call = self._tool_calls.get(tool_call_id)
        if call is not None and not call.answered:
            call.output_item_id = item_id
            call.status = "answered" if call.status != "refused" else call.status
            self._open.discard(tool_call_id)

    # Tool calls

    def _function_call_item(
        self, type_name: str, item: Item, incomplete: bool = False
    ) -> list[Action]:
        if item.type != "function_call":
            return []
        if item.status not in (None, "completed", "incomplete"):
            return []
        cut = incomplete or item.status == "incomplete"
        return self._tool_call(type_name, item.call_id, item.id, item.name, item.arguments, cut)

    def _tool_call(
        self,
        type_name: str,
        call_id: str | None,
        item_id: str | None,
        name: str | None,
        arguments: str | None,
        incomplete: bool,
    ) -> list[Action]:
        tool_call_id = call_id or item_id
        # Without a name (the beta arguments event) the call cannot be classified yet; the
        # item's own done event will carry it.
        if tool_call_id is None or name is None:
            return []
        if len(tool_call_id) > MAX_ID_CHARS:
            return self._long_call_id(tool_call_id)
        # Each completed call is announced by up to four events; only the first counts.
        if tool_call_id in self._tool_calls or (
            item_id is not None and item_id in self._tool_items
        ):
            return []
        if len(self._tool_calls) >= self._limits.max_transcript_items:
            return self._limit_hit("tool_calls", self._limits.max_transcript_items)
        # Only the name as shown is kept: the offered tools' names fit in it.
        shown, cut = self._shown(name, self._limits.max_name_bytes, TOOL_NAME_CAP)
        call = ToolCall(tool_call_id=tool_call_id, name=shown, item_id=item_id)
        self._tool_calls[tool_call_id] = call
        if item_id is not None:
            self._tool_items[item_id] = tool_call_id
        if self._requested.mode == "transcription":
            return [*cut, IgnoredEvent(type_name, f"tool call {shown!r} in transcription mode")]
        if name == REMAIN_SILENT_TOOL:
            return self._answer(call, "", respond=False)
        if name != BACKGROUND_AGENT_TOOL:
            return cut + self._refuse(
                call,
                "unknown_tool",
                f"the model called {shown!r}, a tool we did not offer",
                UNKNOWN_TOOL_OUTPUT.format(name=shown, tools=_OFFERED_TOOLS),
            )
        if incomplete:
            reason = "its arguments were cut off before they were complete"
            return self._refuse(
                call, "tool_call_incomplete", reason, RETRY_OUTPUT.format(reason=reason)
            )
        prompt = parse_prompt(arguments)
        if prompt is None:
            reason = "its arguments were not a JSON object with a string prompt"
            return self._refuse(
                call, "tool_call_malformed", reason, RETRY_OUTPUT.format(reason=reason)
            )
        limit = self._limits.max_request_bytes
        size = utf8_size(prompt)
        if size > limit:
            reason = f"its prompt was {size} bytes, more than the {limit} allowed"
            output = REQUEST_TOO_LONG_OUTPUT.format(reason=reason, limit=limit)
            return [
                *self._limit_hit(REQUEST_CAP, limit),
                *self._refuse(call, "tool_call_too_long", reason, output),
            ]
        return self._handoff(call, prompt)

    def _long_call_id(self, tool_call_id: str) -> list[Action]:
        # Answering the call would echo its whole id, and keeping it would hold that much per
        # call: it is reported with its id cut, and neither kept nor answered.
        shown = clip(self._redact(tool_call_id), MAX_ID_CHARS)
        message = (
            f"tool call {shown} not run: its call id is {len(tool_call_id)} characters, "
            f"more than {MAX_ID_CHARS}"
        )
        return [
            *self._limit_hit(TOOL_CALL_ID_CAP, MAX_ID_CHARS),
            *self._report("tool_call_id_too_long", message),
        ]

    def _refuse(self, call: ToolCall, code: str, reason: str, output: str) -> list[Action]:
        call.status = "refused"
        call.reason = reason
        return [
            *self._report(code, f"tool call {call.tool_call_id} refused: {reason}"),
            *self._answer(call, output, respond=True),
        ]

    def _handoff(self, call: ToolCall, request: str) -> list[Action]:
        delta = self._transcript.since(self._mark)
        self._mark = self._transcript.mark()
        envelope = build_envelope(request, delta)
        if envelope is None:
            return self._answer(call, EMPTY_REQUEST_OUTPUT, respond=True)
        steering = bool(self._open)
        handoff_id = f"{self._call_id}:{call.tool_call_id}"
        call.status, call.handoff_id, call.steering = "handed_off", handoff_id, steering
        self._handoffs[handoff_id] = call.tool_call_id
        self._pending[handoff_id] = call
        delegation = Delegation(
            call_id=self._call_id,
            tool_call_id=call.tool_call_id,
            handoff_id=handoff_id,
            item_id=call.item_id or call.tool_call_id,
            request=request,
            transcript_delta=delta,
            envelope=envelope,
            steering=steering,
        )
        self._keep_for_a_successor(delegation)
        actions: list[Action] = [EnqueueHandoff(delegation)]
        if steering:
            return actions + self._answer(call, STEERING_ACK, respond=True)
        self._open.add(call.tool_call_id)
        return actions

    def _keep_for_a_successor(self, delegation: Delegation) -> None:
        # Kept while the texts of those kept fit the transcript's byte cap: past it, a handoff
        # is not queued again after a takeover (it relies on its first put alone).
        kept = sum(_texts_size(d) for d in self._delegations.values())
        if kept + _texts_size(delegation) <= self._limits.max_transcript_bytes:
            self._delegations[delegation.handoff_id] = delegation

    def _keep_restored(self, raw: object) -> None:
        # Only a help to queue the handoff again: one that cannot be read (a damaged or newer
        # shape) leaves its handoff to its first put, rather than the call unrestorable.
        if not isinstance(raw, dict):
            return
        try:
            delegation = Delegation.from_json({**raw, "envelope": ""})
        except ValueError:
            return
        envelope = build_envelope(delegation.request, delegation.transcript_delta)
        if envelope is not None and delegation.handoff_id in self._pending:
            self._delegations[delegation.handoff_id] = dataclasses.replace(
                delegation, envelope=envelope
            )

    # Snapshots, for another instance to carry the call on

    def snapshot(self) -> dict[str, Any]:
        """The call's state as a JSON-serialisable dict, bounded by the per-call caps.

        Keys: `version`, `call_id`, `requested` and `confirmed` session settings (field dicts;
        `confirmed` may be None), `session_id`, `transcript` (every known item id with its
        text and place), `mark` (the transcript mark of the last handoff), `tool_calls`
        (records, answered or not, with each handoff's deadline), `pending_handoffs` (handoff
        ids without a result), `pending_delegations` (what those were handed off as, while
        their texts fit the transcript's byte cap: `Delegation.to_json()` without the envelope,
        which is made again from the rest),
        `control_items`, `outbox` (unsent and unconfirmed client events), `reply_wanted`,
        `awaiting_reply`, `retrieving`, `events_stamped`, `started_at`, `last_activity`,
        `errors`, `dropped_errors`.
        """
        awaiting = [*self._awaiting_reply, *(h for hs in self._reply_for.values() for h in hs)]
        return {
            "version": SNAPSHOT_VERSION,
            "call_id": self._call_id,
            "requested": dataclasses.asdict(self._requested),
            "confirmed": dataclasses.asdict(self._confirmed) if self._confirmed else None,
            "session_id": self._session_id,
            "transcript": self._transcript.to_json(),
            "mark": self._mark.included,
            "tool_calls": [call.to_json() for call in self._tool_calls.values()],
            "pending_handoffs": [
                call.handoff_id
                for call in self._tool_calls.values()
                if call.handoff_id is not None and not call.result_in
            ],
            "pending_delegations": [
                {k: v for k, v in d.to_json().items() if k != "envelope"}
                for d in self._delegations.values()
            ],
            "control_items": list(self._control_items),
            "outbox": self._outbox.to_json(),
            "reply_wanted": self._responses.wanted or self._responses.in_flight is not None,
            "awaiting_reply": awaiting,
            "retrieving": sorted(self._retrieving),
            "events_stamped": self._events_stamped,
            "started_at": self._started_at,
            "last_activity": self._last_activity,
            "errors": self._errors,
            "dropped_errors": self.dropped_errors,
        }

    @classmethod
    def restore(
        cls,
        snapshot: dict[str, Any],
        *,
        limits: CallLimits | None = None,
        new_item_id: Callable[[], str] | None = None,
        jitter: Callable[[], float] | None = None,
        secrets: Iterable[str] = (),
    ) -> CallState:
        """A `CallState` carrying on from `snapshot()` output, with the link not yet open
        (`start(now)` joins it, and queues the handoffs still without a result again). The
        first connection counts as a rejoin: gap repair is on, and a 404 on joining means the
        call is over. Raise `ValueError` on a bad snapshot."""
        try:
            if snapshot["version"] != SNAPSHOT_VERSION:
                raise ValueError(f"unknown snapshot version {snapshot['version']!r}")
            state = cls(
                str(snapshot["call_id"]),
                SessionConfig(**snapshot["requested"]),
                limits=limits,
                new_item_id=new_item_id,
                jitter=jitter,
                secrets=secrets,
            )
            confirmed = snapshot["confirmed"]
            state._confirmed = SessionConfig(**confirmed) if confirmed else None
            state._session_id = snapshot["session_id"]
            state._transcript = Transcript.from_json(
                snapshot["transcript"],
                max_items=state._limits.max_transcript_items,
                max_bytes=state._limits.max_transcript_bytes,
            )
            state._mark = TranscriptMark(int(snapshot["mark"]))
            for raw in snapshot["tool_calls"]:
                call = ToolCall.from_json(raw)
                state._tool_calls[call.tool_call_id] = call
                if call.item_id is not None:
                    state._tool_items[call.item_id] = call.tool_call_id
                if call.handoff_id is not None:
                    state._handoffs[call.handoff_id] = call.tool_call_id
                    if not call.result_in:
                        state._pending[call.handoff_id] = call
                if call.status == "handed_off" and not call.answered and not call.steering:
                    state._open.add(call.tool_call_id)
            # Absent from the snapshots of older versions, which queued nothing again.
            for raw in snapshot.get("pending_delegations", ()):
                state._keep_restored(raw)
            state._queue_again = list(state._delegations.values())
            state._control_items = dict.fromkeys(str(i) for i in snapshot["control_items"])
            state._outbox.restore(snapshot["outbox"])
            state._responses.wanted = bool(snapshot["reply_wanted"])
            state._awaiting_reply = [str(h) for h in snapshot["awaiting_reply"]]
            if state._awaiting_reply:
                state._responses.wanted = True
            state._retrieving = {str(i) for i in snapshot["retrieving"]}
            state._events_stamped = int(snapshot["events_stamped"])
            started = snapshot["started_at"]
            state._started_at = float(started) if started is not None else None
            state._last_activity = float(snapshot["last_activity"])
            state._errors = int(snapshot["errors"])
            state.dropped_errors = int(snapshot["dropped_errors"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"bad call snapshot: {exc}") from None
        state._link.joins = 1
        state._repairing = True
        return state
