"""Why a call ended: a closed set of reasons, with the detail each one carries."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EndReason(StrEnum):
    """Why a call ended; the value is what the API and the `reason` metric label show."""

    HANGUP = "hangup"
    """Someone hung up through our API."""
    MAX_DURATION = "max_duration"
    """The call reached `CALLBRIDGE_MAX_CALL_DURATION_S`."""
    IDLE_TIMEOUT = "idle_timeout"
    """Nothing was said for `CALLBRIDGE_IDLE_TIMEOUT_S`."""
    REMOTE_HANGUP = "remote_hangup"
    """The other party hung up (a phone caller, or the WebRTC peer left): the provider closed
    the sideband normally (1000) and a rejoin was answered 404/410."""
    PROVIDER_ENDED = "provider_ended"
    """The provider ended the call (a terminal `error` event, or 404/410 on a rejoin after the
    sideband dropped abnormally)."""
    SIDEBAND_REFUSED = "sideband_refused"
    """The provider refused the sideband (401/403, or 404/410 before it was ever joined)."""
    SIDEBAND_UNAVAILABLE = "sideband_unavailable"
    """The sideband could not be joined within `CALLBRIDGE_SIDEBAND_MAX_ATTEMPTS`."""
    SIDEBAND_LOST = "sideband_lost"
    """The sideband dropped and could not be rejoined within the attempts."""
    DRAIN = "drain"
    """The instance was draining (SIGTERM) and the drain timeout passed."""
    SHUTDOWN = "shutdown"
    """The service shut down."""
    INTERNAL_ERROR = "internal_error"
    """A bug in callbridge; the call is hung up rather than leaked."""
    CLIENT_GONE = "client_gone"
    """The client that started the call left before its SDP answer could be sent."""


@dataclass(frozen=True, slots=True)
class CallEnd:
    """How a call ended: `reason`, whether the call `failed` (never got going) or just ended,
    and the provider's `code` and `message` when the provider caused it (redacted)."""

    reason: EndReason
    failed: bool = False
    code: str | None = None
    message: str | None = None
