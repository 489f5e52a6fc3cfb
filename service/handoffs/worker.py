"""The worker: takes handoffs from the queue, runs the handler, reports back, acknowledges.

What it reports survives a broker that drops a connection or restarts meanwhile: the result
(or the failure) is sent again with backoff (tenacity) for up to the handler timeout, so a
handler's work is not thrown away for a moment's outage; `started` and progress are only
informative, so a failure to send them is logged and the handler goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from tenacity import AsyncRetrying, stop_after_delay, wait_random_exponential

from service.dotted_names import cancelled_from_outside, described
from service.handoffs.handlers import Answer, Handler, HandlerError, Progress
from service.handoffs.queue import HandoffEvent, HandoffJob, HandoffQueue
from service.metrics import HANDOFF_HANDLER_SECONDS, HANDOFFS
from service.outbound_http import HoldsConnections

log = logging.getLogger("callbridge.worker")

_T = TypeVar("_T")
_FIRST_RETRY_S: Final = 0.05
_LONGEST_RETRY_S: Final = 2.0


class Worker:
    """Runs up to `concurrency` handoffs at once; `stop()` finishes or releases them, leaves
    the queue (`HandoffQueue.leave`), then closes the handler's connections (a handler given as
    a URL keeps some open)."""

    def __init__(
        self,
        queue: HandoffQueue,
        handler: Handler,
        *,
        name: str,
        concurrency: int = 4,
        timeout_s: float = 60.0,
    ) -> None:
        self.queue = queue
        self.handler = handler
        self.name = name
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        # Handoffs holding a slot; a task leaves `_tasks` only a turn of the loop after it
        # gives its slot back.
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._consumer: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        """Begin consuming in the background."""
        self._consumer = asyncio.create_task(self._consume(), name=f"worker-{self.name}")

    async def _consume(self) -> None:
        while not self._stopping:
            jobs = self.queue.jobs(self.name, capacity=self._capacity).__aiter__()
            try:
                while not self._stopping:
                    # A slot first, then a job: a job fetched without a slot would age
                    # towards being reclaimed by another worker while it waits here.
                    await self._slots.acquire()
                    try:
                        job = await jobs.__anext__()
                    except BaseException:
                        self._slots.release()
                        raise
                    self._running += 1
                    task = asyncio.create_task(self._run(job))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                    # The handler starts before the next read is sent: that read (encoding
                    # and writing XREADGROUP) would otherwise delay every handler by its cost.
                    await asyncio.sleep(0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A broker outage must not kill the worker: wait and consume again.
                log.warning("queue consume failed, retrying: %s", exc)
                await asyncio.sleep(1.0)

    def _capacity(self) -> int:
        """Jobs that could start at once: the slot the consumer holds and the free ones."""
        return self.concurrency - self._running

    async def _run(self, job: HandoffJob) -> None:
        try:
            await self._handle(job)
        except asyncio.CancelledError:
            await asyncio.shield(self.queue.release(job))
            raise
        except Exception as exc:
            # Publishing failed: the job stays unacknowledged and is delivered again.
            log.warning(
                "could not report handoff outcome: %s",
                exc,
                extra={"call_id": job.delegation.call_id, "handoff_id": job.delegation.handoff_id},
            )
        finally:
            self._running -= 1
            self._slots.release()

    async def _handle(self, job: HandoffJob) -> None:
        d = job.delegation
        extra = {"call_id": d.call_id, "handoff_id": d.handoff_id}
        started = time.monotonic()
        # The handler starts while `started` is on its way; every later event waits for it,
        # so the owner still sees `started` first.
        announced = asyncio.create_task(self._inform(job, HandoffEvent.for_job(job, "started")))
        try:
            # A timeout scope rather than wait_for: the handler runs in this task, not a new one.
            async with asyncio.timeout(self.timeout_s):
                answer = await self._drive(job, announced)
            await announced
        except BaseException as exc:
            if cancelled_from_outside(exc):
                announced.cancel()
                raise
            # Whatever the handler raised (`SystemExit` and its own `CancelledError` too) is
            # this handoff's failure: it must stop neither the worker nor the service around it.
            # `started` goes before `failed`; if it could not be sent, neither can `failed`.
            with contextlib.suppress(Exception):
                await announced
            reason = _describe_failure(exc, self.timeout_s)
            log.warning("handoff failed (delivery %d): %s", job.delivery, reason, extra=extra)
            if await self._persist(lambda: self.queue.fail(job, reason)):
                HANDOFFS.labels(outcome="failed").inc()
                failed = HandoffEvent.for_job(job, "failed", reason, dead=True)
                await self._persist(lambda: self.queue.publish(job.reply_to, failed))
            return
        HANDOFF_HANDLER_SECONDS.observe(time.monotonic() - started)
        result = HandoffEvent.for_job(job, "result", answer)
        await self._persist(lambda: self.queue.complete(job, result))
        HANDOFFS.labels(outcome="completed").inc()
        # Not at INFO: a busy worker answers thousands a second.
        log.debug("handoff answered", extra=extra)

    async def _drive(self, job: HandoffJob, announced: asyncio.Task[None]) -> str:
        answer: str | None = None
        async for step in self.handler(job.delegation):
            match step:
                case Progress(text):
                    await announced
                    await self._inform(job, HandoffEvent.for_job(job, "progress", text))
                case Answer(text):
                    answer = text
        if answer is None:
            raise HandlerError("handler finished without an answer")
        return answer

    async def _persist(self, send: Callable[[], Awaitable[_T]]) -> _T:
        """`send()`, tried again while it fails, for up to the handler timeout; then its error
        is raised (the job stays unacknowledged, and the queue delivers it again)."""
        retrying = AsyncRetrying(
            wait=wait_random_exponential(multiplier=_FIRST_RETRY_S, max=_LONGEST_RETRY_S),
            stop=stop_after_delay(self.timeout_s),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await send()
        raise AssertionError("tenacity ends with a result or an error")

    async def _inform(self, job: HandoffJob, event: HandoffEvent) -> None:
        """Send an informative event (`started`, progress); a failure is logged, not raised."""
        try:
            await self.queue.publish(job.reply_to, event)
        except Exception as exc:
            extra = {"call_id": event.call_id, "handoff_id": event.handoff_id}
            log.warning("handoff %s event not sent: %s", event.kind, exc, extra=extra)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop taking work; let running handoffs finish for `grace_s`, then release them."""
        self._stopping = True
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        # Not before: a consumer is forgotten only while it holds no job.
        await self.queue.leave(self.name)
        if isinstance(self.handler, HoldsConnections):
            await self.handler.aclose()


def _describe_failure(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"the handler did not answer within {timeout_s:g} s"
    if isinstance(exc, HandlerError):
        return str(exc)
    return f"the handler raised {described(exc)}"[:500]
