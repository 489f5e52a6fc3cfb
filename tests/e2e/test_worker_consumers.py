"""The handoff group's consumers stay bounded: a worker that stops deletes its own, and the
consumers of workers that died are deleted by the live ones, but never one that still holds a
handoff.

Workers are `callbridge worker` processes (consumer `worker-<host name>-<pid>`) running the
handlers of `tests.e2e.handlers`, around a private redis-server (or, where a test says so, the
session's Redis Cluster too); the test queues handoffs as the owner would, through a
`RedisStreamQueue`. The claim idle time is short, so that a dead worker's handoff is taken
over, and its consumer deleted, within seconds.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from service.handoffs.queue import HandoffEvent
from service.handoffs.redis_streams import RedisStreamQueue
from service.redis_keys import RedisKeys
from tests.e2e.processes import Process
from tests.e2e.redis_cluster import SharedRedis
from tests.e2e.test_redis_queue import delegation
from tests.e2e.waiting import until

KEYS = RedisKeys()
GROUP = "workers"
OWNER = "instance-a"
REPO_ROOT = Path(__file__).resolve().parents[2]
CLAIM_IDLE_MS = 500
WAIT_S = 30.0
LOG_TAIL_LINES = 40

StartWorker = Callable[..., Process]


@pytest.fixture
def start_worker(shared_redis: SharedRedis, tmp_path: Path) -> Iterator[StartWorker]:
    """Starts `callbridge worker` processes running `tests.e2e.handlers:<handler>`, one handoff
    at a time (so that one holding a handoff reads no other), with `CLAIM_IDLE_MS`."""
    started: list[Process] = []

    def start(handler: str) -> Process:
        process = Process(
            ["worker", "--grace", "1"],
            {
                "CALLBRIDGE_QUEUE": shared_redis.url,
                "CALLBRIDGE_HANDLER": f"tests.e2e.handlers:{handler}",
                "CALLBRIDGE_QUEUE_CLAIM_IDLE_S": str(CLAIM_IDLE_MS / 1000),
                "CALLBRIDGE_WORKER_CONCURRENCY": "1",
                # The tests package is not installed; this finds it wherever pytest started.
                "PYTHONPATH": str(REPO_ROOT),
            },
            tmp_path / f"worker-{len(started)}.log",
        ).start()
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop()
        # Shown by pytest only when the test failed.
        for process in started:
            tail = process.output().splitlines()[-LOG_TAIL_LINES:]
            print(f"--- {process.log_path.name}\n" + "\n".join(tail))


@pytest.fixture
async def owner(shared_redis: SharedRedis) -> AsyncIterator[RedisStreamQueue]:
    """The queue as the owning instance uses it, with the workers' claim idle time."""
    queue = RedisStreamQueue(shared_redis.url, claim_idle_ms=CLAIM_IDLE_MS)
    yield queue
    await queue.aclose()


@pytest.fixture
def redis(shared_redis: SharedRedis) -> Redis | RedisCluster:
    """A client for looking at the group and the streams."""
    return shared_redis.client


def consumer_of(worker: Process) -> str:
    assert worker.proc is not None
    return f"worker-{socket.gethostname()}-{worker.proc.pid}"


async def consumers(redis: Redis | RedisCluster) -> dict[str, dict[str, Any]]:
    """The handoff group's consumers by name (none before a worker made the group)."""
    if not await redis.exists(KEYS.handoffs):
        return {}
    if GROUP not in [g["name"] for g in await redis.xinfo_groups(KEYS.handoffs)]:
        return {}
    return {c["name"]: c for c in await redis.xinfo_consumers(KEYS.handoffs, GROUP)}


async def holds_a_handoff(redis: Redis | RedisCluster, consumer: str) -> bool:
    return int((await consumers(redis)).get(consumer, {}).get("pending", 0)) > 0


async def answers_to_owner(redis: Redis | RedisCluster) -> list[str]:
    """The text of every result the workers sent the owner (read without taking them)."""
    entries = await redis.xrange(KEYS.results(OWNER)) or []
    events = [HandoffEvent.from_json(orjson.loads((f or {})["event"])) for _, f in entries]
    return [e.text for e in events if e.kind == "result"]


async def handoffs_left(redis: Redis | RedisCluster) -> int:
    return int(await redis.xlen(KEYS.handoffs))


async def killed_holding_a_handoff(
    start_worker: StartWorker, owner: RedisStreamQueue, redis: Redis | RedisCluster
) -> str:
    """A worker that took a handoff and was killed (SIGKILL) before answering: its consumer."""
    victim = start_worker("slow")
    await owner.put(delegation(1), OWNER)
    await until(lambda: holds_a_handoff(redis, consumer_of(victim)), WAIT_S)
    assert victim.proc is not None
    victim.proc.kill()
    victim.proc.wait()
    return consumer_of(victim)


@pytest.mark.parametrize("shared_redis", ["single", "cluster"], indirect=True)
async def test_a_worker_stopped_cleanly_leaves_no_consumer(
    start_worker: StartWorker, owner: RedisStreamQueue, redis: Redis | RedisCluster
) -> None:
    worker = start_worker("echo")
    await owner.put(delegation(1), OWNER)

    async def answered_by_it() -> bool:
        return consumer_of(worker) in await consumers(redis) and await handoffs_left(redis) == 0

    await until(answered_by_it, WAIT_S)
    worker.stop()
    assert await consumers(redis) == {}


@pytest.mark.parametrize("shared_redis", ["single", "cluster"], indirect=True)
async def test_a_killed_workers_consumer_is_deleted_once_its_handoff_was_taken_and_it_idled(
    start_worker: StartWorker, owner: RedisStreamQueue, redis: Redis | RedisCluster
) -> None:
    victim = await killed_holding_a_handoff(start_worker, owner, redis)
    start_worker("echo")

    async def deleted() -> bool:
        return victim not in await consumers(redis)

    await until(deleted, WAIT_S)


async def test_a_consumer_idle_past_the_limit_but_holding_a_handoff_is_kept_for_its_answer(
    start_worker: StartWorker, owner: RedisStreamQueue, redis: Redis | RedisCluster
) -> None:
    victim = await killed_holding_a_handoff(start_worker, owner, redis)

    async def idle_past_the_limit() -> bool:
        return bool((await consumers(redis))[victim]["idle"] >= owner.forget_idle_ms)

    # Only then another worker starts: its first clean-up, before it claims anything, finds
    # the dead consumer idle long enough, but holding the handoff.
    await until(idle_past_the_limit, WAIT_S)
    start_worker("echo")

    async def answered() -> bool:
        return await handoffs_left(redis) == 0

    await until(answered, WAIT_S)
    assert await answers_to_owner(redis) == ["echo: request 1"]


async def test_a_handoff_given_back_by_a_stopping_worker_is_answered_once_by_another(
    start_worker: StartWorker, owner: RedisStreamQueue, redis: Redis | RedisCluster
) -> None:
    stopping = start_worker("slow")
    await owner.put(delegation(1), OWNER)
    await until(lambda: holds_a_handoff(redis, consumer_of(stopping)), WAIT_S)
    # Its handler outlasts the grace period: the handoff is given back, and the consumer that
    # holds it must stay for another worker to claim it.
    stopping.stop()
    start_worker("echo")

    async def answered() -> bool:
        return await handoffs_left(redis) == 0

    await until(answered, WAIT_S)
    assert await answers_to_owner(redis) == ["echo: request 1"]
