"""The limits one call runs under, passed in from the service settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from signaling.realtime.link import ReconnectPolicy


@dataclass(frozen=True, slots=True)
class CallLimits:
    """Per-call limits: durations in seconds (same clock as the `now` given to `CallState`),
    sizes in items, UTF-8 bytes and error entries.

    `handoff_deadline_s` is how long a handoff may go without a result or failure before the
    core answers it with a failure itself.
    """

    max_duration_s: float = 3600.0
    idle_timeout_s: float = 300.0
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    max_transcript_items: int = 10_000
    max_transcript_bytes: int = 1_000_000
    max_errors: int = 100
    handoff_deadline_s: float = 330.0
