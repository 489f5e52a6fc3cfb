"""Handoff queues (in-memory, Redis Streams), the worker, and handler loading."""

from service.handoffs.handlers import Answer, Handler, HandlerError, Progress, load_handler
from service.handoffs.memory import MemoryQueue
from service.handoffs.queue import HandoffEvent, HandoffJob, HandoffQueue, QueueUnavailable
from service.handoffs.worker import Worker


def open_queue(url: str) -> HandoffQueue:
    """The queue named by the `queue` setting."""
    if url == "memory":
        return MemoryQueue()
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
