"""Commands batched into shared round trips, against a private redis-server."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from service.redis_batch import Command, CommandBatcher
from tests.e2e.redis_server import RedisServer


def add_to_counter(n: int) -> Command:
    return lambda client: client.incrby("counter", n)


async def test_commands_given_together_each_get_their_own_reply(redis: Redis) -> None:
    batch = CommandBatcher(redis)
    replies = await asyncio.gather(*(batch.run(add_to_counter(n)) for n in (1, 2, 3)))
    assert replies == [1, 3, 6]


async def test_a_refused_command_fails_alone_in_its_batch(redis: Redis) -> None:
    await redis.set("text", "not a number")
    batch = CommandBatcher(redis)
    replies: list[object] = await asyncio.gather(
        batch.run(lambda client: client.incr("text")),
        batch.run(add_to_counter(1)),
        return_exceptions=True,
    )
    refused, accepted = replies
    assert isinstance(refused, ResponseError)
    assert accepted == 1


async def test_a_command_whose_caller_was_cancelled_is_still_sent(redis: Redis) -> None:
    batch = CommandBatcher(redis)
    caller = asyncio.create_task(batch.run(lambda client: client.set("key", "sent")))
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await batch.aclose()
    assert await redis.get("key") == "sent"


async def test_every_command_of_a_batch_fails_while_redis_is_down(
    redis: Redis, redis_server: RedisServer
) -> None:
    redis_server.stop()
    batch = CommandBatcher(redis)
    replies = await asyncio.gather(
        batch.run(lambda client: client.incr("a")),
        batch.run(lambda client: client.incr("b")),
        return_exceptions=True,
    )
    assert all(isinstance(reply, RedisConnectionError) for reply in replies), replies
