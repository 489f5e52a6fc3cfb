"""What `CallState` asks its driver to do, in order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from signaling.realtime.client_events import SessionConfig
from signaling.realtime.delegation import Delegation
from signaling.realtime.end_reasons import CallEnd
from signaling.realtime.transcript import Role


@dataclass(frozen=True, slots=True)
class SendEvent:
    """Send `payload` (it carries our `event_id`) as one JSON text message on the sideband;
    report a failure with `CallState.send_failed(payload, now)`."""

    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Connect:
    """Open a sideband connection now; report `link_opened` or `join_failed`."""


@dataclass(frozen=True, slots=True)
class SleepUntil:
    """Nothing to do before `at` (the clock `now` is read from): then call `tick`."""

    at: float


@dataclass(frozen=True, slots=True)
class Joined:
    """The sideband is open; `rejoin` when it had been open before."""

    rejoin: bool


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
    """Put `delegation` on the handoff queue for a worker. `again`: a call carried on from a
    snapshot queues its unanswered handoffs once more, as its previous owner may have died
    before they reached the queue; a queue shared by instances takes each handoff id once.
    Queued again, a handoff is put only while the core still awaits its result
    (`CallState.awaits_result`), and a refusal leaves it to its deadline."""

    delegation: Delegation
    again: bool = False


@dataclass(frozen=True, slots=True)
class HandoffDelivered:
    """The provider accepted handoff `handoff_id`'s answer and started the response to it."""

    handoff_id: str


@dataclass(frozen=True, slots=True)
class HandoffExpired:
    """Handoff `handoff_id` had no result by its deadline, or when the call ended: `reason`
    says which. During the call the model was given `reason` as a failure output; a result
    arriving later is late and the core ignores it."""

    handoff_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class SessionReady:
    """The provider applied a session configuration (`session.updated`)."""

    session_id: str | None


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """The session settings changed: those `requested` and those the provider `confirmed`
    (`None` before its first `session.updated`)."""

    requested: SessionConfig
    confirmed: SessionConfig | None


@dataclass(frozen=True, slots=True)
class ReportError:
    """Something went wrong that the call survives; `code` is the provider's when it gave one.
    Provider text in it is already redacted, then cut: `code` to `CallLimits.max_name_bytes`,
    `message` to `CallLimits.max_error_bytes` UTF-8 bytes."""

    code: str | None
    message: str


@dataclass(frozen=True, slots=True)
class LimitReached:
    """A per-call cap (`kind`: `transcript_items`, `transcript_bytes`, `errors`) was reached;
    later excess is counted, not reported. Emitted once per cap."""

    kind: str
    limit: int


@dataclass(frozen=True, slots=True)
class HangUp:
    """Hang the call up at the provider (best effort)."""


@dataclass(frozen=True, slots=True)
class EndCall:
    """The call is over: close the sideband, record `end`. Nothing follows."""

    end: CallEnd


@dataclass(frozen=True, slots=True)
class SpeechActivity:
    """Someone is speaking: the call is alive."""


@dataclass(frozen=True, slots=True)
class EventObserved:
    """An event arrived; `label` is its metric label (a known type name, else `unknown`)."""

    label: str


@dataclass(frozen=True, slots=True)
class IgnoredEvent:
    """An event was dropped for `reason` (for debug logs)."""

    type_name: str
    reason: str


Action: TypeAlias = (
    SendEvent
    | Connect
    | SleepUntil
    | Joined
    | PublishTranscript
    | EnqueueHandoff
    | HandoffDelivered
    | HandoffExpired
    | SessionReady
    | SessionSettings
    | ReportError
    | LimitReached
    | HangUp
    | EndCall
    | SpeechActivity
    | EventObserved
    | IgnoredEvent
)
"""Everything `CallState` asks its driver to do."""
