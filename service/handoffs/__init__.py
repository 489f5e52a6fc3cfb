"""Handoff queues (in-memory, Redis Streams), the worker, and handler loading."""

from service.handoffs.handlers import Answer, Handler, HandlerError, Progress, load_handler
from service.handoffs.memory import MemoryQueue
from service.handoffs.queue import HandoffEvent, HandoffJob, HandoffQueue, QueueUnavailable
from service.handoffs.redis_streams import RedisStreamQueue
from service.handoffs.worker import Worker


def open_queue(
    url: str, *, handler_timeout_s: float = 60.0, claim_idle_s: float | None = None
) -> HandoffQueue:
    """The queue named by the `queue` setting."""
    if url == "memory":
        return MemoryQueue()
    if url.startswith(("redis://", "rediss://", "unix://")):
        # A job is reclaimed from a worker only once it has been silent for longer than any
        # handler may run, so a slow answer is not computed twice.
        idle_s = claim_idle_s if claim_idle_s is not None else handler_timeout_s + 30.0
        return RedisStreamQueue(url, claim_idle_ms=int(idle_s * 1000))
    raise ValueError(f"unsupported queue {url!r}")


__all__ = [
    "Answer",
    "Handler",
    "HandlerError",
    "HandoffEvent",
    "HandoffJob",
    "HandoffQueue",
    "MemoryQueue",
    "Progress",
    "QueueUnavailable",
    "RedisStreamQueue",
    "Worker",
    "load_handler",
    "open_queue",
]
