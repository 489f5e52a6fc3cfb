"""The sideband link as the call sees it: joining, open or lost, with attempt counting and
bounded exponential backoff. Pure: every input carries the time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

NORMAL_CLOSURE: Final = 1000
"""The WebSocket close code of a deliberate, normal close (RFC 6455 §7.4.1,
https://www.rfc-editor.org/rfc/rfc6455#section-7.4.1)."""

LinkStatus = Literal["joining", "open", "lost"]
"""`joining`: no connection, one is due at `Link.join_at`; `open`: connected; `lost`: given up."""


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Bounded exponential backoff with jitter: `max_attempts` joins in a row may fail."""

    max_attempts: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0

    def delay(self, attempt: int, unit: float) -> float:
        """Delay in seconds before retry number `attempt` (1-based), with `unit` a random
        number in [0, 1): between half and all of `min(max, base * 2**(attempt-1))`."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + unit / 2)


class Link:
    """Counts failed joins; a connection counts as a success only once it delivered an event,
    so a provider that upgrades and closes at once (1011, 1009) backs off like a refused
    handshake (PROTOCOL §10.3)."""

    def __init__(self, policy: ReconnectPolicy) -> None:
        self.policy = policy
        self.status: LinkStatus = "joining"
        self.join_at = 0.0
        self.failures = 0
        self.joins = 0
        self.closed_normally = False
        self._delivered = False
        self._connecting = False

    def connect_due(self, now: float) -> bool:
        """Whether a connection attempt should start now (at most one at a time)."""
        if self.status != "joining" or self._connecting or now < self.join_at:
            return False
        self._connecting = True
        return True

    def opened(self) -> bool:
        """A connection opened; return whether it is a rejoin."""
        self._connecting = False
        self.status = "open"
        self._delivered = False
        self.joins += 1
        return self.joins > 1

    def delivered(self) -> None:
        """An event arrived: the connection holds, the failure count starts over."""
        if self.status == "open" and not self._delivered:
            self._delivered = True
            self.failures = 0

    def closed(self, code: int | None) -> None:
        """The open connection closed with `code` (None: no close frame); `closed_normally`
        says whether the last one closed normally (1000). The provider closes a call's
        sideband as soon as the other party hangs up (reported for phone calls:
        https://community.openai.com/t/sip-caller-hangup-closes-session-websocket-immediately-preventing-event-draining-early-hangup-calls-still-accepted/1368239),
        so a normal close followed by a rejoin refused as unknown is how a call ends, not a
        fault."""
        self.closed_normally = code == NORMAL_CLOSURE

    def failed(self, now: float, unit: float) -> bool:
        """A join failed or a connection closed; schedule the next attempt and return True,
        or return False once the attempts are used up (the link is then `lost`)."""
        self._connecting = False
        if self.status == "open" and self._delivered:
            # A connection that held: rejoin at once.
            self.status = "joining"
            self.join_at = now
            return True
        self.failures += 1
        if self.failures >= self.policy.max_attempts:
            self.status = "lost"
            return False
        self.status = "joining"
        self.join_at = now + self.policy.delay(self.failures, unit)
        return True

    def give_up(self) -> None:
        """The call is over: no more joins."""
        self._connecting = False
        self.status = "lost"
