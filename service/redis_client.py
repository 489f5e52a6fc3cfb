"""How callbridge talks to Redis: one client policy for the queue and the call directory."""

from __future__ import annotations

from typing import Final

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

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
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=longest_block_ms / 1000 + REPLY_MARGIN_S,
        retry=Retry(NoBackoff(), 0),
    )
