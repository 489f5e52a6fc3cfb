"""Call-start rate limits per client, shared by every instance through Redis.

`rate_per_minute` with bursts up to `burst` becomes one moving window: at most `burst` starts in
any `60 * burst / rate_per_minute` seconds, so the long-run rate is `rate_per_minute` and no
instance can add its own allowance on top. With Redis the counting is the `limits` library's
moving window (https://limits.readthedocs.io/, the redis-py implementation), over the queue's
client of the same URL (`service.redis_client`) or, for a Redis Cluster, over `limits`' own
(`async+redis+cluster://`).
In memory it is `MovingWindow` below: `limits`' in-memory storages sweep expired entries on
threads (a thread round trip per hit for the asyncio one, a new thread every 10 ms of activity
for the other), which cost a call start more than the count itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING

from service.redis_client import redis_failures, single_redis_client
from service.redis_reports import log_redis_failure
from service.redis_urls import cluster_nodes_text, parse_cluster_url

if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.aio.strategies import MovingWindowRateLimiter
    from redis.asyncio import Redis

log = logging.getLogger("callbridge.ratelimit")


class MovingWindow:
    """At most `limit` hits per key in any `window_s` seconds, counted in this process.

    Holds at most `limit` times per key, and only keys hit within the last `window_s` seconds.
    """

    def __init__(self, limit: int, window_s: float) -> None:
        self._limit = limit
        self._window_s = window_s
        # Keys in the order of their last hit, so the ones idle for a whole window are first.
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        """How many keys are held."""
        return len(self._hits)

    def hit(self, key: str, now: float) -> float:
        """Count one hit at `now` (monotonic seconds): 0.0 when allowed, else the seconds until
        one is (a refused hit is not counted)."""
        horizon = now - self._window_s
        while self._hits:
            idlest = next(iter(self._hits))
            if self._hits[idlest][-1] > horizon:
                break
            del self._hits[idlest]
        times = self._hits.setdefault(key, deque())
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) >= self._limit:
            return times[0] - horizon
        times.append(now)
        self._hits.move_to_end(key)
        return 0.0


class RateLimiter:
    """`rate_per_minute` call starts per client, in bursts of up to `burst`.

    `redis_url`: share the counts through that Redis (None: this process only).
    """

    def __init__(self, rate_per_minute: float, burst: int, *, redis_url: str | None = None) -> None:
        if rate_per_minute <= 0 or burst < 1:
            raise ValueError("the rate must be positive and the burst at least 1")
        window_s = max(1, math.ceil(60.0 * burst / rate_per_minute))
        self._local: MovingWindow | None = None
        self._shared: tuple[MovingWindowRateLimiter, RateLimitItem] | None = None
        self._storage_errors: tuple[type[Exception], ...] = (OSError,)
        self._layout_unread: asyncio.Lock | None = None
        self._client: Redis | None = None
        if redis_url is None:
            self._local = MovingWindow(burst, window_s)
            return
        # Imported only where a Redis is configured: the in-memory service never loads them.
        from limits import RateLimitItemPerSecond
        from limits.aio import storage, strategies
        from limits.errors import StorageError

        self._storage_errors += (StorageError, *redis_failures())
        cluster = parse_cluster_url(redis_url)
        shared: storage.RedisStorage
        if cluster is None:
            # `limits` reads a URL itself only as host:port (no default port, no unix://):
            # it is given the connections of the client the queue makes of the same URL.
            self._client = single_redis_client(redis_url, longest_block_ms=0)
            shared = storage.RedisStorage(
                "async+redis://",
                implementation="redispy",
                # Documented, though typed as taking scalar options only.
                connection_pool=self._client.connection_pool,  # type: ignore[arg-type]
            )
        else:
            # `limits` reads only the nodes from a cluster URL: the rest goes as options.
            shared = storage.RedisClusterStorage(
                f"async+redis+cluster://{cluster_nodes_text(cluster)}",
                implementation="redispy",
                **cluster.options,
            )
            # Its redis-py cluster client routes commands issued together before it has read
            # the cluster's layout badly, and may then fail them in other ways than with
            # Redis' errors (see `service.redis_cluster`): until the layout is read, starts
            # are counted one at a time, and any failure counts as the storage's.
            self._layout_unread = asyncio.Lock()
            self._storage_errors = (Exception,)
        self._shared = (
            strategies.MovingWindowRateLimiter(shared),
            RateLimitItemPerSecond(burst, window_s, namespace="callbridge-starts"),
        )

    async def take(self, client: str) -> float:
        """Count one start: 0.0 when allowed, else the seconds until one is.

        While Redis cannot be reached, starts are allowed (and a warning logged): a broken
        counter must not stop every call.
        """
        if self._local is not None:
            return self._local.hit(client, time.monotonic())
        assert self._shared is not None
        limiter, item = self._shared
        try:
            if self._layout_unread is not None:
                await self._read_layout(limiter)
            if await limiter.hit(item, client):
                return 0.0
            stats = await limiter.get_window_stats(item, client)
        except self._storage_errors as exc:
            log_redis_failure(log, exc, "rate limit not checked (storage: %s)")
            return 0.0
        return max(0.001, stats.reset_time - time.time())

    async def aclose(self) -> None:
        """Close the connections to Redis, if any (it reconnects if used again)."""
        if self._client is not None:
            await self._client.aclose()

    async def _read_layout(self, limiter: MovingWindowRateLimiter) -> None:
        """Have the cluster client read the cluster's layout, one start at a time until it
        has (then never again)."""
        assert self._layout_unread is not None
        async with self._layout_unread:
            if self._layout_unread is not None and await limiter.storage.check():
                self._layout_unread = None
