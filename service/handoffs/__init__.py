"""Handoff queues (in-memory here; Redis Streams in `redis_streams`, loaded only when a Redis
queue is opened), the worker, and handler loading."""

from service.handoffs.handlers import Answer, Handler, HandlerError, Progress, load_handler
from service.handoffs.memory import MemoryQueue
from service.handoffs.queue import (
    HandoffEvent,
    HandoffJob,
    HandoffQueue,
    QueueUnavailable,
    claim_idle_s,
)
from service.handoffs.worker import Worker
from service.redis_urls import is_redis_url


def open_queue(
    url: str,
    *,
    handler_timeout_s: float = 60.0,
    claim_idle: float | None = None,
    handoff_deadline_s: float | None = None,
) -> HandoffQueue:
    """The queue named by the `queue` setting: `memory`, or a Redis or Redis Cluster URL
    (`service.redis_client`). `handoff_deadline_s` is how long an owner waits for a handoff's
    result (`Settings.handoff_deadline`), which an instance's queue must be told; a worker's
    never appends a handoff."""
    if url == "memory":
        return MemoryQueue()
    if is_redis_url(url):
        # Here only: an instance without Redis never loads redis-py.
        from service.handoffs.redis_streams import RedisStreamQueue

        idle_s = claim_idle_s(handler_timeout_s, claim_idle)
        if handoff_deadline_s is None:
            return RedisStreamQueue(url, claim_idle_ms=int(idle_s * 1000))
        return RedisStreamQueue(
            url,
            claim_idle_ms=int(idle_s * 1000),
            handoff_deadline_ms=max(1, int(handoff_deadline_s * 1000)),
        )
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
    "Worker",
    "load_handler",
    "open_queue",
]
