"""The Redis Streams handoff queue against a private redis-server that each test spawns.

The `redis_server` fixture comes from `tests.e2e.redis_server` through the e2e conftest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

from service.handoffs.handlers import Answer, HandlerError, HandlerStep, Progress
from service.handoffs.queue import HandoffEvent, HandoffJob, QueueUnavailable
from service.handoffs.redis_streams import MARK_MARGIN_MS
from service.handoffs.worker import Worker
from service.redis_keys import RedisKeys
from signaling.realtime import Delegation
from signaling.realtime.transcript import TranscriptEntry
from tests.e2e.redis_server import OpenQueue, RedisServer

T = TypeVar("T")
OWNER = "results:instance-a"
KEYS = RedisKeys()
WAIT_S = 5.0


def delegation(n: int) -> Delegation:
    """The n-th handoff of one call."""
    request = f"request {n}"
    return Delegation(
        call_id="call-1",
        tool_call_id=f"tool-{n}",
        handoff_id=f"call-1:tool-{n}",
        item_id=f"item-{n}",
        request=request,
        transcript_delta=(TranscriptEntry(f"item-{n}", "user", request, final=True),),
        envelope=f"<realtime_delegation>\n  <input>{request}</input>\n</realtime_delegation>",
        steering=False,
    )


def result_for(job: HandoffJob, text: str) -> HandoffEvent:
    return HandoffEvent.for_job(job, "result", text)


async def within(awaitable: Awaitable[T], seconds: float = WAIT_S) -> T:
    return await asyncio.wait_for(awaitable, seconds)


async def eventually(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def eventually_async(probe: Callable[[], Awaitable[T]], expected: T) -> None:
    deadline = time.monotonic() + WAIT_S
    while await probe() != expected:
        assert time.monotonic() < deadline, f"never became {expected!r}"
        await asyncio.sleep(0.01)


async def dead_letters(redis: Redis) -> list[dict[Any, Any]]:
    """The fields of each dead-lettered handoff, oldest first."""
    return [fields or {} for _, fields in await redis.xrange(KEYS.dead) or []]


@pytest.fixture
def outage(redis_server: RedisServer) -> RedisServer:
    """The test's server, stopped; the test restarts it when the outage should end."""
    redis_server.stop()
    return redis_server


# Handing out and answering


async def test_a_handoff_goes_to_a_worker_and_its_result_back_to_the_owner(
    open_queue: OpenQueue,
) -> None:
    queue = open_queue()
    await queue.put(delegation(1), OWNER)
    async with aclosing(queue.jobs("worker-1")) as jobs:
        job = await within(anext(jobs))
        await queue.publish(job.reply_to, result_for(job, "done"))
        await queue.ack(job)
    async with aclosing(queue.events(OWNER)) as events:
        event = await within(anext(events))
    assert (job.delegation, job.reply_to, job.delivery) == (delegation(1), OWNER, 1)
    assert event == result_for(job, "done")


async def test_an_acknowledged_handoff_leaves_the_stream(
    open_queue: OpenQueue, redis: Redis
) -> None:
    queue = open_queue()
    await queue.put(delegation(1), OWNER)
    async with aclosing(queue.jobs("worker-1")) as jobs:
        await queue.ack(await within(anext(jobs)))
    assert await redis.xlen(KEYS.handoffs) == 0


async def test_a_completed_handoff_sends_its_result_and_leaves_the_stream(
    open_queue: OpenQueue, redis: Redis
) -> None:
    queue = open_queue()
    await queue.put(delegation(1), OWNER)
    async with aclosing(queue.jobs("worker-1")) as jobs:
        job = await within(anext(jobs))
        await queue.complete(job, result_for(job, "done"))
    async with aclosing(queue.events(OWNER)) as events:
        event = await within(anext(events))
    assert event == result_for(job, "done")
    assert await redis.xlen(KEYS.handoffs) == 0


async def test_a_handoff_queued_again_while_its_result_is_awaited_is_appended_once(
    open_queue: OpenQueue, redis: Redis
) -> None:
    await open_queue().put(delegation(1), OWNER)
    # Its owner's successor, not knowing whether the owner queued it before dying.
    await open_queue().put(delegation(1), "results:instance-b")
    assert await redis.xlen(KEYS.handoffs) == 1


async def test_a_handoffs_mark_outlasts_the_handoff_deadline_by_its_margin_at_most(
    open_queue: OpenQueue, redis: Redis
) -> None:
    await open_queue(handoff_deadline_ms=60_000).put(delegation(1), OWNER)
    ttl_ms = await redis.pttl(KEYS.handoff_mark(delegation(1).handoff_id))
    assert 60_000 < ttl_ms <= 60_000 + MARK_MARGIN_MS


async def test_a_handoff_queued_again_after_its_result_was_taken_is_not_appended(
    open_queue: OpenQueue, redis: Redis
) -> None:
    queue = open_queue()
    for n in (1, 2):
        await queue.put(delegation(n), OWNER)
    async with aclosing(queue.jobs("worker-1")) as jobs:
        for _ in (1, 2):
            job = await within(anext(jobs))
            await queue.complete(job, result_for(job, "done"))
    async with aclosing(queue.events(OWNER)) as events:
        await within(anext(events))
        # Taking the next event acknowledges the one before.
        await within(anext(events))
        await eventually_async(lambda: redis.xlen(KEYS.results(OWNER)), 1)
    await open_queue().put(delegation(1), "results:instance-b")
    assert await redis.xlen(KEYS.handoffs) == 0


async def test_depth_counts_waiting_and_in_flight_handoffs(open_queue: OpenQueue) -> None:
    queue = open_queue()
    for n in range(3):
        await queue.put(delegation(n), OWNER)
    async with aclosing(queue.jobs("worker-1")) as jobs:
        first = await within(anext(jobs))
        assert await queue.depth() == 3
        await queue.ack(first)
        assert await queue.depth() == 2


async def test_two_consumers_share_the_work_each_job_going_to_one(open_queue: OpenQueue) -> None:
    queue = open_queue()
    for n in range(6):
        await queue.put(delegation(n), OWNER)
    taken: dict[str, list[str]] = {"a": [], "b": []}
    async with aclosing(queue.jobs("a")) as a, aclosing(queue.jobs("b")) as b:
        for _ in range(3):
            for name, jobs in (("a", a), ("b", b)):
                taken[name].append((await within(anext(jobs))).delegation.handoff_id)
    everything = taken["a"] + taken["b"]
    assert sorted(everything) == sorted(delegation(n).handoff_id for n in range(6))
    assert len(taken["a"]) == len(taken["b"]) == 3


# Redelivery


async def test_a_job_held_by_a_dead_consumer_is_reclaimed_after_claim_idle_ms(
    open_queue: OpenQueue,
) -> None:
    queue = open_queue(claim_idle_ms=200)
    await queue.put(delegation(1), OWNER)
    async with aclosing(queue.jobs("dies")) as doomed:
        first = await within(anext(doomed))
    abandoned_at = time.monotonic()
    async with aclosing(queue.jobs("survivor")) as jobs:
        second = await within(anext(jobs))
    assert time.monotonic() - abandoned_at >= 0.2
    assert (second.token, second.delivery) == (first.token, 2)


async def test_a_failed_job_is_redelivered_at_once_with_the_next_delivery_count(
    open_queue: OpenQueue,
) -> None:
    queue = open_queue(claim_idle_ms=30000)
    await queue.put(delegation(1), OWNER)
    async with aclosing(queue.jobs("worker-1")) as jobs:
        first = await within(anext(jobs))
        assert await queue.fail(first, "handler broke") is False
        second = await within(anext(jobs), seconds=2.0)
    assert (second.token, second.delivery) == (first.token, 2)


async def test_a_job_failed_max_deliveries_times_is_dead_lettered(
    open_queue: OpenQueue, redis: Redis
) -> None:
    queue = open_queue(max_deliveries=3)
    await queue.put(delegation(1), OWNER)
    outcomes: list[tuple[int, bool]] = []
    async with aclosing(queue.jobs("worker-1")) as jobs:
        for _ in range(3):
            job = await within(anext(jobs))
            outcomes.append((job.delivery, await queue.fail(job, f"broke on {job.delivery}")))
    dead = await dead_letters(redis)
    assert outcomes == [(1, False), (2, False), (3, True)]
    assert [(fields["reason"], fields["reply_to"]) for fields in dead] == [("broke on 3", OWNER)]
    assert await redis.xlen(KEYS.handoffs) == 0


async def test_giving_up_in_fail_leaves_the_failed_event_to_the_caller(
    open_queue: OpenQueue, redis: Redis
) -> None:
    queue = open_queue(max_deliveries=1)
    await queue.put(delegation(1), OWNER)
    async with aclosing(queue.jobs("worker-1")) as jobs:
        assert await queue.fail(await within(anext(jobs)), "broke") is True
    assert await redis.xlen(KEYS.results(OWNER)) == 0


async def test_a_job_abandoned_more_than_max_deliveries_times_is_dead_lettered_and_the_owner_told(
    open_queue: OpenQueue, redis: Redis
) -> None:
    queue = open_queue(claim_idle_ms=100, max_deliveries=1)
    await queue.put(delegation(1), OWNER)
    async with aclosing(queue.jobs("dies")) as doomed:
        await within(anext(doomed))
    async with aclosing(queue.jobs("survivor")) as jobs, aclosing(queue.events(OWNER)) as events:
        never_yielded = asyncio.create_task(anext(jobs))
        event = await within(anext(events))
        assert not never_yielded.done()
        never_yielded.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await never_yielded
    assert (event.kind, event.handoff_id, event.meta) == ("failed", "call-1:tool-1", {"dead": True})
    assert await redis.xlen(KEYS.dead) == 1


async def test_a_released_job_goes_to_another_consumer_at_once_with_the_same_delivery(
    open_queue: OpenQueue,
) -> None:
    queue = open_queue(claim_idle_ms=30000)
    await queue.put(delegation(1), OWNER)
    async with aclosing(queue.jobs("stopping")) as stopping:
        first = await within(anext(stopping))
        await queue.release(first)
    async with aclosing(queue.jobs("other")) as jobs:
        second = await within(anext(jobs), seconds=2.0)
    assert (second.token, second.delivery) == (first.token, 1)


# Events to the owner


async def test_events_published_while_the_owner_is_not_listening_are_delivered(
    open_queue: OpenQueue,
) -> None:
    queue = open_queue()
    received: list[HandoffEvent] = []

    async def listen() -> None:
        async for event in queue.events(OWNER):
            received.append(event)

    listener = asyncio.create_task(listen())
    first = HandoffEvent("progress", "call-1:tool-1", "call-1", "tool-1", "one")
    await queue.publish(OWNER, first)
    await eventually(lambda: len(received) == 1)
    listener.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await listener
    later = [HandoffEvent("progress", "call-1:tool-1", "call-1", "tool-1", t) for t in "23"]
    for event in later:
        await queue.publish(OWNER, event)
    async with aclosing(queue.events(OWNER)) as events:
        again = [await within(anext(events)) for _ in later]
    assert received == [first]
    assert again == later


async def test_an_event_handed_out_but_not_taken_up_is_delivered_again(
    open_queue: OpenQueue,
) -> None:
    queue = open_queue()
    event = HandoffEvent("result", "call-1:tool-1", "call-1", "tool-1", "answer")
    await queue.publish(OWNER, event)
    async with aclosing(queue.events(OWNER)) as interrupted:
        await within(anext(interrupted))
    async with aclosing(queue.events(OWNER)) as events:
        assert await within(anext(events)) == event


# Redis outages


async def test_the_queue_is_available_while_redis_answers(open_queue: OpenQueue) -> None:
    assert await open_queue().unavailable() is None


async def test_the_queue_is_unavailable_while_redis_is_down(
    open_queue: OpenQueue, outage: RedisServer
) -> None:
    assert await open_queue().unavailable() == "redis does not answer"


async def test_the_queue_says_redis_refuses_a_command_to_its_user(
    open_queue: OpenQueue, redis: Redis
) -> None:
    await redis.acl_setuser("default", enabled=True, nopass=True, commands=["-ping"])
    problem = await open_queue().unavailable()
    assert problem is not None
    assert problem.startswith("Redis refuses a command to the user in CALLBRIDGE_QUEUE")
    assert "'ping'" in problem


async def test_a_consumer_waits_out_a_command_its_user_may_not_run(
    open_queue: OpenQueue, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    queue = open_queue()
    await queue.put(delegation(1), OWNER)
    await redis.acl_setuser("default", enabled=True, nopass=True, commands=["-xreadgroup"])
    caplog.set_level(logging.DEBUG, logger="callbridge.queue")
    async with aclosing(queue.jobs("w1")) as jobs:
        job = asyncio.ensure_future(anext(jobs))
        await eventually(lambda: job.done() or "no permissions" in caplog.text)
        await redis.acl_setuser("default", enabled=True, nopass=True, commands=["+xreadgroup"])
        assert (await within(job)).delegation == delegation(1)


async def test_put_while_redis_is_down_holds_the_handoff_locally(
    open_queue: OpenQueue, outage: RedisServer
) -> None:
    queue = open_queue()
    for n in range(3):
        await queue.put(delegation(n), OWNER)
    assert queue.buffered == 3


async def test_held_handoffs_are_delivered_in_order_once_redis_is_back(
    open_queue: OpenQueue, outage: RedisServer
) -> None:
    queue = open_queue()
    for n in range(3):
        await queue.put(delegation(n), OWNER)
    outage.start()
    await queue.put(delegation(3), OWNER)
    await eventually(lambda: queue.buffered == 0)
    async with aclosing(queue.jobs("worker-1")) as jobs:
        delivered = [(await within(anext(jobs))).delegation for _ in range(4)]
    assert delivered == [delegation(n) for n in range(4)]


async def test_put_raises_queue_unavailable_when_the_local_buffer_is_full(
    open_queue: OpenQueue, outage: RedisServer
) -> None:
    queue = open_queue(buffer_limit=2)
    await queue.put(delegation(1), OWNER)
    await queue.put(delegation(2), OWNER)
    with pytest.raises(QueueUnavailable):
        await queue.put(delegation(3), OWNER)


async def test_a_waiting_consumer_gets_jobs_put_after_a_redis_restart(
    open_queue: OpenQueue, redis_server: RedisServer
) -> None:
    queue = open_queue()
    async with aclosing(queue.jobs("worker-1")) as jobs:
        waiting = asyncio.create_task(anext(jobs))
        await asyncio.sleep(0.1)
        redis_server.restart()
        await queue.put(delegation(1), OWNER)
        job = await within(waiting)
    assert job.delegation == delegation(1)


async def test_a_listening_owner_gets_events_published_after_a_redis_restart(
    open_queue: OpenQueue, redis_server: RedisServer
) -> None:
    queue = open_queue()
    event = HandoffEvent("result", "call-1:tool-1", "call-1", "tool-1", "answer")
    async with aclosing(queue.events(OWNER)) as events:
        waiting = asyncio.create_task(anext(events))
        await asyncio.sleep(0.1)
        redis_server.restart()
        await queue.publish(OWNER, event)
        assert await within(waiting) == event


# Housekeeping


async def test_the_handoffs_stream_is_trimmed_to_about_maxlen(
    open_queue: OpenQueue, redis: Redis
) -> None:
    await redis.config_set("stream-node-max-entries", 10)
    queue = open_queue(maxlen=20)
    for n in range(200):
        await queue.put(delegation(n), OWNER)
    assert 20 <= await redis.xlen(KEYS.handoffs) <= 30


async def test_results_streams_are_trimmed_to_about_maxlen(
    open_queue: OpenQueue, redis: Redis
) -> None:
    await redis.config_set("stream-node-max-entries", 10)
    queue = open_queue(maxlen=20)
    event = HandoffEvent("progress", "call-1:tool-1", "call-1", "tool-1", "working")
    for _ in range(200):
        await queue.publish(OWNER, event)
    assert 20 <= await redis.xlen(KEYS.results(OWNER)) <= 30


async def test_closing_the_queue_ends_a_waiting_consumer(open_queue: OpenQueue) -> None:
    queue = open_queue(block_ms=5000)
    async with aclosing(queue.jobs("worker-1")) as jobs:
        waiting = asyncio.create_task(anext(jobs))
        await asyncio.sleep(0.1)
        await queue.aclose()
        with pytest.raises(StopAsyncIteration):
            await within(waiting, seconds=1.0)


# With the real worker


async def test_a_worker_answers_a_handoff_end_to_end(open_queue: OpenQueue) -> None:
    async def handler(d: Delegation) -> AsyncIterator[HandlerStep]:
        yield Progress(f"looking into {d.request}")
        yield Answer(f"answered {d.request}")

    queue = open_queue()
    worker = Worker(queue, handler, name="worker-1")
    worker.start()
    try:
        await queue.put(delegation(1), OWNER)
        async with aclosing(queue.events(OWNER)) as events:
            seen = [await within(anext(events)) for _ in range(3)]
        await eventually_async(queue.depth, 0)
    finally:
        await worker.stop()
    assert [(e.kind, e.text) for e in seen] == [
        ("started", ""),
        ("progress", "looking into request 1"),
        ("result", "answered request 1"),
    ]


async def test_a_worker_whose_handler_keeps_failing_reports_one_failed_event(
    open_queue: OpenQueue, redis: Redis
) -> None:
    def handler(d: Delegation) -> AsyncIterator[HandlerStep]:
        raise HandlerError("no luck")

    queue = open_queue(max_deliveries=2)
    worker = Worker(queue, handler, name="worker-1")
    worker.start()
    try:
        await queue.put(delegation(1), OWNER)
        async with aclosing(queue.events(OWNER)) as events:
            seen = [await within(anext(events)) for _ in range(3)]
    finally:
        await worker.stop()
    assert [(e.kind, e.text) for e in seen] == [
        ("started", ""),
        ("started", ""),
        ("failed", "no luck"),
    ]
    assert await redis.xlen(KEYS.dead) == 1


async def test_a_result_ready_while_redis_is_down_is_delivered_once_it_is_back(
    open_queue: OpenQueue, redis_server: RedisServer
) -> None:
    release = asyncio.Event()
    answered = asyncio.Event()

    async def handler(d: Delegation) -> AsyncIterator[HandlerStep]:
        await release.wait()
        answered.set()
        yield Answer("the answer is 42")

    # Redelivery comes far too late to be what delivers the result here.
    owner = open_queue(claim_idle_ms=600_000)
    worker = Worker(open_queue(claim_idle_ms=600_000), handler, name="worker-1")
    worker.start()
    try:
        await owner.put(delegation(1), OWNER)
        async with aclosing(owner.events(OWNER)) as events:
            started = await within(anext(events))
            redis_server.stop()
            release.set()
            await within(answered.wait())
            await asyncio.sleep(0.5)
            redis_server.start()
            result = await within(anext(events))
    finally:
        await worker.stop()
    assert (started.kind, result.kind, result.text) == ("started", "result", "the answer is 42")
