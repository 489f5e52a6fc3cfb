"""`Call`: our record of one call, as the API shows it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from service.calls.handoff_text import utf8_size
from service.handoffs.queue import HandoffEvent
from signaling.ids import CallId
from signaling.realtime import CallEnd, Delegation, SessionConfig, Transcript

CallStateName = Literal["starting", "active", "ended", "failed"]
HandoffStateName = Literal["queued", "running", "completed", "failed"]
CallKind = Literal["webrtc", "sip"]


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


ERRORS_SHOWN: Final = 50
"""How many of a call's latest recorded errors its full record shows (it records up to
`CALLBRIDGE_MAX_ERRORS_PER_CALL`)."""


@dataclass(slots=True)
class HandoffRecord:
    """One handoff as the call sees it. `expired`: the call gave up waiting (its deadline
    passed, or the call ended) and failed it; `late_output` is a result that came after that,
    which the model never saw. `progress_bytes` is the UTF-8 size of `progress`. `request` is at
    most `handoff_max_text_bytes` UTF-8 bytes: the call core refuses a longer prompt."""

    handoff_id: str
    tool_call_id: str
    request: str
    steering: bool
    state: HandoffStateName = "queued"
    output: str | None = None
    error: str | None = None
    progress: list[str] = field(default_factory=list)
    queued_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    delivered: bool = False
    expired: bool = False
    late_output: str | None = None
    progress_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        """The API shape."""
        return {
            "handoff_id": self.handoff_id,
            "tool_call_id": self.tool_call_id,
            "request": self.request,
            "steering": self.steering,
            "state": self.state,
            "output": self.output,
            "error": self.error,
            "progress": list(self.progress),
            "delivered_to_model": self.delivered,
            "expired": self.expired,
            "late_output": self.late_output,
            "queued_at": _iso(self.queued_at),
            "finished_at": _iso(self.finished_at),
        }


@dataclass(slots=True)
class Call:
    """Our record of one call at the provider."""

    call_id: CallId
    config: SessionConfig
    owner: str
    state: CallStateName = "starting"
    created_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    joined_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None
    session_id: str | None = None
    max_duration_s: float = 0.0
    idle_timeout_s: float = 0.0
    transcript: Transcript | None = None
    handoffs: dict[str, HandoffRecord] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    sideband_reconnects: int = 0
    started_by: str | None = None
    kind: CallKind = "webrtc"
    # From, To and Call-ID of a phone call, as the provider's incoming-call webhook gave them.
    sip_headers: dict[str, str] = field(default_factory=dict)
    transferred_to: str | None = None
    confirmed_config: SessionConfig | None = None
    end_code: str | None = None
    end_message: str | None = None
    limits_reached: dict[str, int] = field(default_factory=dict)
    # Deleted through the API: ended, and no longer served.
    deleted: bool = False

    @property
    def live(self) -> bool:
        """Whether the call has not ended."""
        return self.state in ("starting", "active")

    def ended(self, end: CallEnd) -> None:
        """Record how the call ended."""
        self.state = "failed" if end.failed else "ended"
        self.ended_at = time.time()
        self.end_reason = end.reason.value
        self.end_code, self.end_message = end.code, end.message

    def handoff_queued(self, delegation: Delegation) -> HandoffRecord:
        """Record a handoff going to the queue."""
        record = HandoffRecord(
            handoff_id=delegation.handoff_id,
            tool_call_id=delegation.tool_call_id,
            request=delegation.request,
            steering=delegation.steering,
        )
        self.handoffs[delegation.handoff_id] = record
        return record

    def handoff_event(self, event: HandoffEvent) -> bool:
        """Record a worker's event; return whether it is news for the model (progress, or a
        handoff's first result or failure: a redelivered handoff may report twice)."""
        record = self.handoffs.get(event.handoff_id)
        if record is None:
            record = HandoffRecord(event.handoff_id, event.tool_call_id, "", False)
            self.handoffs[event.handoff_id] = record
        if event.kind == "started":
            if record.state == "queued":
                record.state = "running"
            return False
        if event.kind == "progress":
            record.progress.append(event.text)
            record.progress_bytes += utf8_size(event.text)
            return True
        if record.state in ("completed", "failed"):
            if record.expired and event.kind == "result" and record.late_output is None:
                record.late_output = event.text
            return False
        record.finished_at = time.time()
        if event.kind == "result":
            record.state, record.output = "completed", event.text
        else:
            record.state, record.error = "failed", event.text
        return True

    def handoff_expired(self, handoff_id: str, reason: str) -> bool:
        """Record that the call gave up waiting for `handoff_id` (see `HandoffRecord.expired`);
        False when it had already finished or is unknown."""
        record = self.handoffs.get(handoff_id)
        if record is None or record.state in ("completed", "failed"):
            return False
        record.state, record.error, record.expired = "failed", reason, True
        record.finished_at = time.time()
        return True

    def to_json(self, *, full: bool = True) -> dict[str, Any]:
        """The API shape; `full` adds transcript, handoffs and errors.

        `session` shows the settings in force (confirmed by the provider's `session.updated`);
        `session_requested` those last asked for, which differ while an update is in flight.
        """
        shown = self.confirmed_config or self.config
        body: dict[str, Any] = {
            "id": self.call_id,
            "state": self.state,
            "owner": self.owner,
            "created_at": _iso(self.created_at),
            "answered_at": _iso(self.answered_at),
            "sideband_joined_at": _iso(self.joined_at),
            "ended_at": _iso(self.ended_at),
            "end_reason": self.end_reason,
            "end_detail": (
                {"code": self.end_code, "message": self.end_message}
                if self.end_code or self.end_message
                else None
            ),
            "provider_session_id": self.session_id,
            "session": _session_json(shown),
            "session_requested": _session_json(self.config),
            "limits": {
                "max_duration_s": self.max_duration_s,
                "idle_timeout_s": self.idle_timeout_s,
                "ends_by": _iso(self.created_at + self.max_duration_s),
            },
            "sideband_reconnects": self.sideband_reconnects,
            "kind": self.kind,
            "sip_headers": dict(self.sip_headers) if self.kind == "sip" else None,
            "transferred_to": self.transferred_to,
        }
        if full:
            entries = self.transcript.snapshot() if self.transcript else ()
            body["transcript"] = [
                {"item_id": e.item_id, "role": e.role, "text": e.text, "final": e.final}
                for e in entries
            ]
            body["handoffs"] = [h.to_json() for h in self.handoffs.values()]
            body["errors"] = list(self.errors[-ERRORS_SHOWN:])
            body["limits_reached"] = dict(self.limits_reached)
        return body


FULL_ONLY: Final = frozenset({"transcript", "handoffs", "errors", "limits_reached"})
"""What `Call.to_json(full=True)` adds: the parts whose size grows with the call."""


def summary(view: dict[str, Any]) -> dict[str, Any]:
    """A record as `Call.to_json(full=False)` shows it, from the full one."""
    return {k: v for k, v in view.items() if k not in FULL_ONLY}


def _session_json(config: SessionConfig) -> dict[str, Any]:
    return {
        "mode": config.mode,
        "instructions": config.instructions,
        "voice": config.voice,
        "output_modality": config.output_modality,
        "model": config.model,
    }
