"""Call-start rate limits per client, shared by every instance through Redis.

The counting is the `limits` library's moving window (https://limits.readthedocs.io/), kept in
Redis when the service has one (`async+redis://`, the redis-py implementation), else in memory.
`rate_per_minute` with bursts up to `burst` becomes one window: at most `burst` starts in any
`60 * burst / rate_per_minute` seconds, so the long-run rate is `rate_per_minute` and no
instance can add its own allowance on top.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.exceptions import RedisError

log = logging.getLogger("callbridge.ratelimit")


class RateLimiter:
    """`rate_per_minute` call starts per client, in bursts of up to `burst`.

    `redis_url`: share the counts through that Redis (None: this process only).
    """

    def __init__(self, rate_per_minute: float, burst: int, *, redis_url: str | None = None) -> None:
        if rate_per_minute <= 0 or burst < 1:
            raise ValueError("the rate must be positive and the burst at least 1")
        window_s = max(1, math.ceil(60.0 * burst / rate_per_minute))
        self._item = RateLimitItemPerSecond(burst, window_s, namespace="callbridge-starts")
        storage: Storage = (
            RedisStorage(f"async+{redis_url}", implementation="redispy")
            if redis_url is not None
            else MemoryStorage()
        )
        self._limiter = MovingWindowRateLimiter(storage)

    async def take(self, client: str) -> float:
        """Count one start: 0.0 when allowed, else the seconds until one is.

        While Redis cannot be reached, starts are allowed (and a warning logged): a broken
        counter must not stop every call.
        """
        try:
            if await self._limiter.hit(self._item, client):
                return 0.0
            stats = await self._limiter.get_window_stats(self._item, client)
        except (StorageError, RedisError, OSError) as exc:
            log.warning("rate limit not checked (storage: %s)", exc)
            return 0.0
        return max(0.001, stats.reset_time - time.time())
