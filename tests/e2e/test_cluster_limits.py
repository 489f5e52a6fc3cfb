"""Call-start rate limits shared by instances through a private redis-server."""

from __future__ import annotations

from service.ratelimit import RateLimiter
from tests.e2e.redis_server import RedisServer


async def test_starts_counted_on_one_instance_count_on_every_other(
    redis_server: RedisServer,
) -> None:
    one, other = (
        RateLimiter(1.0, 2, redis_url=redis_server.url),
        RateLimiter(1.0, 2, redis_url=redis_server.url),
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
