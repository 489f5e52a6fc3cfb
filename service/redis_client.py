"""How callbridge talks to Redis: one client policy for the queue and the call directory.

redis-py is imported only here, when a client is built (or when a failure of one is being
matched), so that an instance without Redis never loads it; the modules that use a client
import its types for annotations only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from redis.asyncio import Redis

CONNECT_TIMEOUT_S: Final = 2.0
# Added to the longest blocking read so that a silent network drop is noticed, not waited out.
REPLY_MARGIN_S: Final = 2.0
# Bounds of the reconnect backoff every Redis loop uses after a connection error.
BACKOFF_MIN_S: Final = 0.05
BACKOFF_MAX_S: Final = 2.0


def redis_client(url: str, *, longest_block_ms: int) -> Redis:
    """A client whose reads time out just after the longest blocking command we issue.

    Client-side retries are off: our loops back off and resume on their own, and a retry would
    only make callers slower to notice an outage (and fall back, or report it).
    """
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=longest_block_ms / 1000 + REPLY_MARGIN_S,
        retry=Retry(NoBackoff(), 0),
    )


def redis_failures() -> tuple[type[Exception], ...]:
    """What a command of a `redis_client` raises when it fails: `RedisError` (Redis
    unreachable, timed out, or refusing the command) or `OSError`, for `except`.

    Only code holding such a client meets these errors, so redis-py is loaded by then.
    """
    from redis.exceptions import RedisError

    return (RedisError, OSError)
