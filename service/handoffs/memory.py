"""The in-process queue: the embedded default for one instance with in-process workers."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence

from service.handoffs.queue import MAX_DELIVERIES, HandoffEvent, HandoffJob
from signaling.realtime import Delegation


class MemoryQueue:
    """Handoffs and results in asyncio queues; nothing survives the process."""

    name = "memory"

    def __init__(self, *, max_deliveries: int = MAX_DELIVERIES) -> None:
        self._jobs: asyncio.Queue[HandoffJob] = asyncio.Queue()
        self._events: defaultdict[str, asyncio.Queue[HandoffEvent]] = defaultdict(asyncio.Queue)
        self._in_flight: dict[str, HandoffJob] = {}
        self._tokens = itertools.count(1)
        self._max_deliveries = max_deliveries
        self.dead: list[tuple[HandoffJob, str]] = []

    async def put(self, delegation: Delegation, reply_to: str) -> None:
        """Queue a handoff."""
        self._jobs.put_nowait(HandoffJob(delegation, reply_to, 1, str(next(self._tokens))))

    async def jobs(
        self, consumer: str, *, capacity: Callable[[], int] | None = None
    ) -> AsyncIterator[HandoffJob]:
        """Hand jobs to one worker, one at a time (`capacity` is not needed in memory)."""
        while True:
            job = await self._jobs.get()
            self._in_flight[job.token] = job
            yield job

    async def ack(self, job: HandoffJob) -> None:
        """Forget a finished job."""
        self._in_flight.pop(job.token, None)

    async def fail(self, job: HandoffJob, message: str) -> bool:
        """Redeliver until `max_deliveries`, then report the job as dead."""
        self._in_flight.pop(job.token, None)
        if job.delivery >= self._max_deliveries:
            self.dead.append((job, message))
            return True
        retry = HandoffJob(job.delegation, job.reply_to, job.delivery + 1, job.token)
        self._jobs.put_nowait(retry)
        return False

    async def release(self, job: HandoffJob) -> None:
        """Put an unprocessed job back at the front of the line."""
        self._in_flight.pop(job.token, None)
        self._jobs.put_nowait(job)

    async def leave(self, consumer: str) -> None:
        """Nothing is kept per worker."""

    async def publish(self, reply_to: str, event: HandoffEvent) -> None:
        """Deliver a worker event to the owner."""
        self._events[reply_to].put_nowait(event)

    async def complete(self, job: HandoffJob, result: HandoffEvent) -> None:
        """Deliver the job's result, then forget the job."""
        await self.publish(job.reply_to, result)
        await self.ack(job)

    async def events(self, reply_to: str) -> AsyncIterator[HandoffEvent]:
        """Events for the owner."""
        queue = self._events[reply_to]
        while True:
            yield await queue.get()

    async def forward(self, event: HandoffEvent, *, not_to: str) -> None:
        """One instance only: there is nowhere else to send it."""

    async def reroute(self, call_id: str, previous_owners: Sequence[str]) -> int:
        """One instance only: calls never change owner."""
        return 0

    async def depth(self) -> int:
        """Waiting plus in-flight handoffs."""
        return self._jobs.qsize() + len(self._in_flight)

    async def unavailable(self) -> str | None:
        """None: always available."""
        return None

    async def aclose(self) -> None:
        """Nothing to release."""
