"""What the call core reports, applied to the call's record, event stream, metrics and logs.

These are the actions that need no I/O towards the provider or the queue (`CallEffects`
carries out the others), and how the call's handoffs and its end are recorded and announced.
"""

from __future__ import annotations

import logging
import time
from typing import Final, TypeAlias, assert_never

from service.calls.record import Call, HandoffRecord
from service.calls.stream import CallEventStream
from service.handoffs.queue import HandoffEvent
from service.metrics import (
    CALL_SETUP_SECONDS,
    HANDOFF_SECONDS,
    HANDOFFS,
    SIDEBAND_RECONNECTS,
    provider_events,
)
from signaling.realtime import (
    CallEnd,
    Delegation,
    EventObserved,
    HandoffDelivered,
    HandoffExpired,
    IgnoredEvent,
    Joined,
    LimitReached,
    PublishTranscript,
    ReportError,
    SessionReady,
    SessionSettings,
    SleepUntil,
    SpeechActivity,
)

Report: TypeAlias = (
    EventObserved
    | PublishTranscript
    | SpeechActivity
    | Joined
    | HandoffDelivered
    | HandoffExpired
    | SessionReady
    | SessionSettings
    | ReportError
    | LimitReached
    | SleepUntil
    | IgnoredEvent
)
"""The actions `CallReporter` applies, the ones every provider event brings first."""

REPORTS: Final = (
    EventObserved,
    PublishTranscript,
    SpeechActivity,
    Joined,
    HandoffDelivered,
    HandoffExpired,
    SessionReady,
    SessionSettings,
    ReportError,
    LimitReached,
    SleepUntil,
    IgnoredEvent,
)
"""`Report`'s classes, spelled out so that `isinstance(action, REPORTS)` narrows for the type
checker (`tests/unit/test_reports.py` holds the two together)."""


_HANDOFF_EVENTS = {
    "progress": ("handoff.progress", "text"),
    "result": ("handoff.completed", "output"),
    "failed": ("handoff.failed", "error"),
}
"""A worker event's kind -> the stream event announcing it and the field carrying its text."""

_TRANSCRIPT_EVENTS: Final = {"delta": "transcript.delta", "done": "transcript.done"}
"""A `PublishTranscript`'s kind -> the stream event announcing it."""

_QUEUE_DOWN = "the handoff queue is unavailable; please try again later"
"""What the model is told when a handoff could not be queued."""


class CallReporter:
    """Applies reports to one call's record, stream, metrics and log."""

    def __init__(
        self,
        call: Call,
        stream: CallEventStream,
        log: logging.LoggerAdapter[logging.Logger],
        offer_received_at: float,
    ) -> None:
        self.call, self.stream, self.log = call, stream, log
        self._offer_received_at = offer_received_at
        # Provider events seen since the last `flush_events`, by metric label.
        self._events: dict[str, int] = {}

    def handoff_queued(self, delegation: Delegation) -> HandoffRecord:
        """Record and announce a handoff on its way to the queue."""
        record = self.call.handoff_queued(delegation)
        data = {"handoff_id": record.handoff_id, "request": record.request}
        self.stream.publish("handoff.queued", {**data, "steering": record.steering})
        self.log.info("handoff queued: %s", record.handoff_id)
        return record

    def handoff_queued_again(self, delegation: Delegation) -> None:
        """Log a handoff a previous owner left without a result, queued once more."""
        self.log.info(
            "handoff %s handed to the queue again after a takeover (appended only if it was "
            "never appended before)",
            delegation.handoff_id,
        )

    def requeue_failed(self, delegation: Delegation, exc: Exception) -> None:
        """Log why `delegation` could not be queued again; it is left to its deadline."""
        self.log.warning(
            "handoff %s could not be queued again, left to its deadline: %s",
            delegation.handoff_id,
            exc,
        )

    def enqueue_failed(self, delegation: Delegation, exc: Exception) -> HandoffEvent:
        """Log why `delegation` could not be queued; the failure to give the core."""
        self.log.warning("handoff could not be queued: %s", exc)
        return HandoffEvent(
            "failed",
            delegation.handoff_id,
            delegation.call_id,
            delegation.tool_call_id,
            _QUEUE_DOWN,
        )

    def handoff_event(self, event: HandoffEvent) -> bool:
        """Record and announce a worker's event; False for one the call already had (a
        redelivered handoff's second result), which the core must not see."""
        record = self.call.handoffs.get(event.handoff_id)
        expired = record is not None and record.expired
        if not self.call.handoff_event(event):
            if event.kind in ("result", "failed"):
                HANDOFFS.labels(outcome="late" if expired else "duplicate").inc()
            return False
        name, field = _HANDOFF_EVENTS[event.kind]
        self.stream.publish(name, {"handoff_id": event.handoff_id, field: event.text})
        return True

    def ending(self, end: CallEnd) -> None:
        """Log why the call is ending: a warning for a failure or a provider's code."""
        level = logging.WARNING if end.failed or end.code else logging.INFO
        detail = " ".join(part for part in (end.code, end.message) if part)
        self.log.log(level, "call ending: %s%s", end.reason.value, f": {detail}" if detail else "")

    def ended(self, end: CallEnd) -> None:
        """Record the end, announce it as the stream's last event, and close the stream."""
        self.call.ended(end)
        detail = {"code": end.code} if end.code else {}
        data = {"state": self.call.state, "reason": end.reason.value, **detail}
        self.stream.publish("call.state", data)
        self.stream.close()

    def apply(self, report: Report) -> None:
        """Record `report`; never raises for a well-formed report."""
        call = self.call
        # Cases are tried in order: the ones provider events bring most often come first.
        # Keyword patterns: positional ones look `__match_args__` up at every match.
        match report:
            case EventObserved(label=label):
                events = self._events
                events[label] = events.get(label, 0) + 1
            case PublishTranscript(kind=kind, role=role, item_id=item_id, text=text):
                data = {"role": role, "item_id": item_id, "text": text}
                self.stream.publish(_TRANSCRIPT_EVENTS[kind], data)
            case Joined(rejoin=rejoin):
                self._joined(rejoin)
            case HandoffDelivered(handoff_id=handoff_id):
                record = call.handoffs.get(handoff_id)
                if record is not None:
                    record.delivered = True
                    HANDOFF_SECONDS.observe(time.time() - record.queued_at)
            case HandoffExpired(handoff_id=handoff_id, reason=reason):
                if call.handoff_expired(handoff_id, reason):
                    HANDOFFS.labels(outcome="expired").inc()
                    self.log.warning("handoff %s failed: %s", handoff_id, reason)
                    self.stream.publish(
                        "handoff.failed", {"handoff_id": handoff_id, "error": reason}
                    )
            case SessionReady(session_id=session_id):
                if call.session_id is None:
                    self._setup_stage("session_updated")
                call.session_id = session_id
                self.stream.publish("session.ready", {"provider_session_id": session_id})
            case SessionSettings(requested=requested, confirmed=confirmed):
                call.config, call.confirmed_config = requested, confirmed
            case ReportError(code=code, message=message):
                call.errors.append({"code": code, "message": message, "at": time.time()})
                self.log.warning("provider error: %s %s", code, message)
                self.stream.publish("call.error", {"code": code, "message": message})
            case LimitReached(kind=kind, limit=limit):
                call.limits_reached[kind] = limit
                self.log.warning("per-call cap reached: %s=%d; excess is dropped", kind, limit)
            case SleepUntil(at=at):
                self.log.info("sideband rejoin in %.2f s", max(at - time.time(), 0.0))
            case SpeechActivity():
                pass
            case IgnoredEvent(type_name=type_name, reason=reason):
                self.log.debug("ignored provider event %s: %s", type_name, reason)
            case _:
                assert_never(report)

    def flush_events(self) -> None:
        """Add the provider events reported since the last flush to their metric."""
        for label, count in self._events.items():
            provider_events(label).inc(count)
        self._events.clear()

    def _joined(self, rejoin: bool) -> None:
        if rejoin:
            SIDEBAND_RECONNECTS.inc()
            self.call.sideband_reconnects += 1
        else:
            self.call.joined_at = time.time()
            self._setup_stage("sideband_joined")
        if self.call.state == "starting":
            self.call.state = "active"
            self.stream.publish("call.state", {"state": "active"})

    def _setup_stage(self, stage: str) -> None:
        elapsed = time.monotonic() - self._offer_received_at
        CALL_SETUP_SECONDS.labels(stage=stage).observe(elapsed)
