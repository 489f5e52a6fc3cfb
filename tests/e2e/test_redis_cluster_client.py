"""The client `service.redis_client` makes for a `redis+cluster://` URL, against the session's
Redis Cluster (`tests.e2e.redis_cluster`)."""

from __future__ import annotations

import asyncio

from service.redis_batch import Command, CommandBatcher
from service.redis_client import redis_client
from tests.e2e.redis_cluster import RedisClusterServers

# Enough keys that every master holds some.
KEYS = [f"counter-{n}" for n in range(30)]


def add_two_to(key: str) -> Command:
    return lambda client: client.incrby(key, 2)


async def test_commands_given_together_to_a_fresh_client_each_get_their_reply(
    redis_cluster: RedisClusterServers,
) -> None:
    client = redis_client(redis_cluster.url, longest_block_ms=1000)
    try:
        replies = await asyncio.gather(*(client.incr(key) for key in KEYS))
    finally:
        await client.aclose()
    assert replies == [1] * len(KEYS)


async def test_a_batch_over_keys_of_every_node_gives_each_command_its_reply(
    redis_cluster: RedisClusterServers,
) -> None:
    client = redis_client(redis_cluster.url, longest_block_ms=1000)
    batch = CommandBatcher(client)
    try:
        replies = await asyncio.gather(*(batch.run(add_two_to(key)) for key in KEYS))
    finally:
        await client.aclose()
    assert replies == [2] * len(KEYS)
