"""Call-start rate limits shared by instances through a private redis-server (and, where a
test says so, a Redis Cluster)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from redis.asyncio import Redis

from service.ratelimit import RateLimiter
from service.settings import Settings
from tests.e2e.conftest import Serve, StartService
from tests.e2e.faulty_provider import FaultyProvider
from tests.e2e.redis_cluster import RedisClusterServers, SharedRedis
from tests.e2e.redis_server import RedisServer
from tests.unit.sdp_samples import AIORTC_OFFER


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


async def _three_starts(start_service: StartService, serve: Serve, queue: str) -> list[int]:
    """The statuses of three call starts from one client on a service allowing two, whose
    queue (and shared rate limits) is the Redis `queue` names."""
    service = await start_service(
        provider="openai",
        provider_url=await serve(FaultyProvider().app()),
        queue=queue,
        rate_limit_burst=2,
        rate_limit_per_minute=1.0,
    )
    async with httpx.AsyncClient(base_url=service.url) as client:
        return [
            (
                await client.post(
                    "/v1/calls",
                    content=AIORTC_OFFER,
                    headers={"content-type": "application/sdp"},
                )
            ).status_code
            for _ in range(3)
        ]


async def _counted_in(client: Redis) -> bool:
    async with client:
        return bool(await client.keys("LIMITS:*callbridge-starts*"))


async def test_starts_are_limited_through_a_redis_url_without_a_port(
    start_service: StartService, serve: Serve, redis_server_on_the_default_port: RedisServer
) -> None:
    server = redis_server_on_the_default_port
    statuses = await _three_starts(start_service, serve, f"redis://{server.host}/3")
    assert statuses == [201, 201, 429]
    assert await _counted_in(Redis(host=server.host, db=3))


async def test_starts_are_limited_through_a_redis_unix_socket(
    start_service: StartService, serve: Serve, redis_server_on_a_unix_socket: RedisServer
) -> None:
    path = redis_server_on_a_unix_socket.unix_socket
    statuses = await _three_starts(start_service, serve, f"unix://{path}?db=2")
    assert statuses == [201, 201, 429]
    assert await _counted_in(Redis(unix_socket_path=str(path), db=2))


@pytest.mark.parametrize(
    "url",
    [
        "redis://cache.invalid",
        "rediss://cache.invalid/4",
        "redis://user:secret-0123456789@cache.invalid:6380/5?socket_keepalive=true",
        "unix:///run/redis/redis.sock",
        "unix:///run/redis/redis.sock?db=3",
        "redis+cluster://a.invalid,b.invalid:7001",
    ],
)
def test_a_limiter_is_made_from_every_redis_url_the_queue_takes(url: str) -> None:
    assert Settings(queue=url).queue == url
    RateLimiter(1.0, 1, redis_url=url)
