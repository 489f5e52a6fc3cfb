"""The Redis Cluster client `service.redis_client` builds for a `redis+cluster://` URL.

Loaded only when a cluster is configured (it imports redis-py).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.typing import EncodableT


class InitializedRedisCluster(RedisCluster):
    """redis-py's `RedisCluster` that reads the cluster's layout before it routes a command.

    redis-py's own `execute_command` picks a command's node before it reads the layout (the
    first command, or the first after a connection error), so commands issued together at
    such a time go to one default node; enough of them answered MOVED make redis-py close
    every node's connections, those other commands are using included, which then fail
    (`ConnectionError`, or worse). Reading the layout first (once, under redis-py's own lock)
    routes every command by its slot.
    """

    async def execute_command(self, *args: EncodableT, **kwargs: Any) -> Any:
        """As `RedisCluster.execute_command`, once the cluster's layout is known."""
        if self._initialize:
            await self.initialize()
        return await super().execute_command(*args, **kwargs)
