"""The handoff queue interface every backend implements.

Delivery is at least once: a worker may see a handoff again after a crash. The call side makes
the effect once, because a tool call accepts a single output (`CallState.submit_result`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from signaling.realtime import Delegation

HandoffEventKind = Literal["started", "progress", "result", "failed"]

MAX_DELIVERIES: Final = 3
"""Deliveries of one handoff before it is given up: its handler failed (or timed out) each
time, or its workers died."""

CLAIM_IDLE_MARGIN_S: Final = 30.0
"""By default a job is reclaimed once silent for the handler timeout plus this."""


def claim_idle_s(handler_timeout_s: float, configured: float | None = None) -> float:
    """Seconds a job may be silent before another worker takes it: `configured`, else the
    handler timeout plus `CLAIM_IDLE_MARGIN_S`, so that a slow answer is not computed twice."""
    return configured if configured is not None else handler_timeout_s + CLAIM_IDLE_MARGIN_S


def worst_case_answer_s(handler_timeout_s: float, claim_idle: float) -> float:
    """Seconds after which a handoff's result or final failure can no longer come while the
    queue and workers work as designed (so the owner may stop waiting for it).

    Each of the `MAX_DELIVERIES` deliveries lasts at most the longer of the handler timeout (a
    live worker answers or fails within it) and the claim idle time (a dead worker's job is
    taken over once silent that long); one more handler timeout covers waiting for a free
    worker and the sweep that gives the last delivery up.
    """
    return MAX_DELIVERIES * max(handler_timeout_s, claim_idle) + handler_timeout_s


@dataclass(frozen=True, slots=True)
class HandoffJob:
    """One delivery of a handoff to a worker."""

    delegation: Delegation
    reply_to: str
    delivery: int
    token: str


@dataclass(frozen=True, slots=True)
class HandoffEvent:
    """What a worker reports back to the instance that owns the call."""

    kind: HandoffEventKind
    handoff_id: str
    call_id: str
    tool_call_id: str
    text: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form for brokers."""
        return {
            "kind": self.kind,
            "handoff_id": self.handoff_id,
            "call_id": self.call_id,
            "tool_call_id": self.tool_call_id,
            "text": self.text,
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HandoffEvent:
        """Parse `to_json` output; `ValueError` on a bad shape."""
        kind = data.get("kind")
        if kind not in ("started", "progress", "result", "failed"):
            raise ValueError(f"bad handoff event kind: {kind!r}")
        fields = {k: data.get(k) for k in ("handoff_id", "call_id", "tool_call_id", "text")}
        if not all(isinstance(v, str) for v in fields.values()):
            raise ValueError("handoff event fields must be strings")
        meta = data.get("meta") or {}
        if not isinstance(meta, dict):
            raise ValueError("handoff event meta must be an object")
        return cls(
            kind=kind,
            handoff_id=str(fields["handoff_id"]),
            call_id=str(fields["call_id"]),
            tool_call_id=str(fields["tool_call_id"]),
            text=str(fields["text"]),
            meta=meta,
        )

    @classmethod
    def for_job(
        cls, job: HandoffJob, kind: HandoffEventKind, text: str = "", **meta: Any
    ) -> HandoffEvent:
        """An event about `job`'s handoff."""
        d = job.delegation
        return cls(kind, d.handoff_id, d.call_id, d.tool_call_id, text, dict(meta))


class QueueUnavailable(Exception):
    """The broker cannot be reached right now."""


class HandoffQueue(Protocol):
    """Moves handoffs to workers and their events back to the owning instance."""

    name: str

    async def put(self, delegation: Delegation, reply_to: str) -> None:
        """Queue a handoff; `reply_to` is the owning instance's results address. A backend
        that lets another instance carry a call on queues a handoff id only once within the
        handoff deadline: the successor queues again what its predecessor left unanswered."""

    def jobs(
        self, consumer: str, *, capacity: Callable[[], int] | None = None
    ) -> AsyncIterator[HandoffJob]:
        """Handoffs for a worker, forever (until the queue is closed).

        `capacity()`, when given, is how many jobs the worker could start right now; a backend
        may fetch that many at once.
        """
        ...

    async def ack(self, job: HandoffJob) -> None:
        """The job is done and its result published: never deliver it again."""

    async def fail(self, job: HandoffJob, message: str) -> bool:
        """The handler failed: redeliver, or give up. True when it was given up (dead)."""
        ...

    async def release(self, job: HandoffJob) -> None:
        """Give the job back unprocessed (worker shutting down) for another worker."""

    async def leave(self, consumer: str) -> None:
        """The worker that read as `consumer` has stopped, its jobs finished or given back: forget
        the consumer, unless it still holds a job (one given back, until another worker takes
        it), whose record must outlive it. Never raises: a backend that cannot forget it now
        leaves it to its clean-up of idle consumers."""

    async def publish(self, reply_to: str, event: HandoffEvent) -> None:
        """Send a worker's event to the owning instance."""

    async def complete(self, job: HandoffJob, result: HandoffEvent) -> None:
        """`publish` the job's `result` to `job.reply_to`, then `ack` the job; never the
        acknowledgement without the result. Raises as `publish` does."""

    def events(self, reply_to: str) -> AsyncIterator[HandoffEvent]:
        """Events for the instance listening on `reply_to`, forever."""
        ...

    async def forward(self, event: HandoffEvent, *, not_to: str) -> None:
        """Send an event that reached an instance no longer running its call (`not_to`) on to
        the call's owner."""

    async def reroute(self, call_id: str, previous_owners: Sequence[str]) -> int:
        """After a takeover: move the call's events still addressed elsewhere to its new owner;
        returns how many moved."""
        ...

    async def depth(self) -> int:
        """Handoffs waiting or in flight."""
        ...

    async def unavailable(self) -> str | None:
        """None when the broker answers, else why it cannot serve now: a sentence for
        readiness, never naming a URL or a secret."""
        ...

    async def aclose(self) -> None:
        """Release connections and wake up waiting consumers."""
