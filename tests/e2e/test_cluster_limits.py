"""Call-start rate limits shared by instances through a private redis-server (and, where a
test says so, a Redis Cluster)."""

from __future__ import annotations

import asyncio

import pytest

from service.ratelimit import RateLimiter
from tests.e2e.redis_cluster import RedisClusterServers, SharedRedis
from tests.e2e.redis_server import RedisServer


@pytest.mark.parametrize("shared_redis", ["single", "cluster"], indirect=True)
async def test_starts_counted_on_one_instance_count_on_every_other(
    shared_redis: SharedRedis,
) -> None:
    one, other = (
        RateLimiter(1.0, 2, redis_url=shared_redis.url),
        RateLimiter(1.0, 2, redis_url=shared_redis.url),
    )
    waits = [await one.take("10.0.0.1"), await other.take("10.0.0.1"), await one.take("10.0.0.1")]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2] > 0


async def test_each_client_has_its_own_allowance(redis_server: RedisServer) -> None:
    limiter = RateLimiter(1.0, 1, redis_url=redis_server.url)
    waits = [await limiter.take("10.0.0.1"), await limiter.take("10.0.0.2")]
    assert waits == [0.0, 0.0]


async def test_starts_are_allowed_while_redis_is_unreachable(redis_server: RedisServer) -> None:
    limiter = RateLimiter(1.0, 1, redis_url=redis_server.url)
    redis_server.stop()
    waits = [await limiter.take("10.0.0.1") for _ in range(3)]
    assert waits == [0.0, 0.0, 0.0]


async def test_a_burst_of_starts_on_a_fresh_instance_is_counted_for_every_client_on_a_cluster(
    redis_cluster: RedisClusterServers,
) -> None:
    limiter = RateLimiter(1.0, 2, redis_url=redis_cluster.url)
    clients = [f"10.0.0.{n}" for n in range(10)]
    waits = await asyncio.gather(*(limiter.take(c) for c in clients for _ in range(3)))
    allowed = [sum(w == 0.0 for w in waits[3 * n : 3 * n + 3]) for n in range(len(clients))]
    assert allowed == [2] * len(clients)
