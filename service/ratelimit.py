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

from limits import RateLimitItemPerSecond, storage, strategies
from limits.aio import storage as aio_storage
from limits.aio import strategies as aio_strategies
from limits.errors import StorageError

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
        # In memory, the synchronous storage: the asyncio one hands every expiry sweep to a
        # worker thread, a thread round trip per call start that costs more than the count.
        self._local: strategies.MovingWindowRateLimiter | None = None
        self._shared: aio_strategies.MovingWindowRateLimiter | None = None
        self._storage_errors: tuple[type[Exception], ...] = (StorageError, OSError)
        if redis_url is None:
            self._local = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
        else:
            # Imported only where a Redis is configured: the in-memory service never loads it.
            from redis.exceptions import RedisError

            self._storage_errors += (RedisError,)
            self._shared = aio_strategies.MovingWindowRateLimiter(
                aio_storage.RedisStorage(f"async+{redis_url}", implementation="redispy")
            )

    async def take(self, client: str) -> float:
        """Count one start: 0.0 when allowed, else the seconds until one is.

        While Redis cannot be reached, starts are allowed (and a warning logged): a broken
        counter must not stop every call.
        """
        if self._local is not None:
            if self._local.hit(self._item, client):
                return 0.0
            stats = self._local.get_window_stats(self._item, client)
            return max(0.001, stats.reset_time - time.time())
        assert self._shared is not None
        try:
            if await self._shared.hit(self._item, client):
                return 0.0
            stats = await self._shared.get_window_stats(self._item, client)
        except self._storage_errors as exc:
            log.warning("rate limit not checked (storage: %s)", exc)
            return 0.0
        return max(0.001, stats.reset_time - time.time())
