"""How the Redis Streams queue hands out and acknowledges several handoffs at a time."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

from redis.asyncio import Redis

from tests.e2e.redis_server import OpenQueue
from tests.e2e.test_redis_queue import KEYS, OWNER, delegation, within


async def pending_for(redis: Redis, consumer: str) -> int:
    rows = await redis.xpending_range(KEYS.handoffs, "workers", "-", "+", 100, consumer)
    return len(rows)


async def test_a_consumer_reads_as_many_new_handoffs_as_it_has_room_for(
    open_queue: OpenQueue, redis: Redis
) -> None:
    queue = open_queue()
    for n in range(5):
        await queue.put(delegation(n), OWNER)
    async with aclosing(queue.jobs("worker-1", capacity=lambda: 3)) as jobs:
        first = await within(anext(jobs))
        assert await pending_for(redis, "worker-1") == 3
        taken = [first, await within(anext(jobs)), await within(anext(jobs))]
    assert [job.delegation for job in taken] == [delegation(n) for n in range(3)]


async def test_without_a_capacity_a_consumer_reads_one_handoff_at_a_time(
    open_queue: OpenQueue, redis: Redis
) -> None:
    queue = open_queue()
    for n in range(3):
        await queue.put(delegation(n), OWNER)
    async with aclosing(queue.jobs("worker-1")) as jobs:
        await within(anext(jobs))
        assert await pending_for(redis, "worker-1") == 1


async def test_acknowledgements_made_together_all_leave_the_stream(
    open_queue: OpenQueue, redis: Redis
) -> None:
    queue = open_queue()
    for n in range(4):
        await queue.put(delegation(n), OWNER)
    async with aclosing(queue.jobs("worker-1", capacity=lambda: 4)) as jobs:
        taken = [await within(anext(jobs)) for _ in range(4)]
    await asyncio.gather(*(queue.ack(job) for job in taken))
    assert await redis.xlen(KEYS.handoffs) == 0
    assert await pending_for(redis, "worker-1") == 0
