"""Redis commands issued while a round trip is under way travel together in the next one.

Many small commands (a worker's events and acknowledgements, an instance's handoffs) cost a
round trip and a socket write each; sent as one pipeline (https://redis.io/docs/latest/develop/
use/pipelining/) they cost one, and the more there are waiting, the larger the batch.

On a Redis Cluster, redis-py splits a pipeline by node and sends the parts at once, so the
commands of a batch keep their order only among keys on one node, and one node failing fails
the whole batch even where other nodes carried their part out. The queue's batched commands
all touch keys of one hash slot (`service.redis_keys`), so a batch goes to one node, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster

# Issues exactly one command on the client (returning its reply's awaitable) or the pipeline.
Command = Callable[[Redis | RedisCluster | Pipeline | ClusterPipeline], Any]


class CommandBatcher:
    """Sends commands on `redis` in batches, one batch in flight at a time, in the order given.

    Commands given in the same turn of the event loop, or while a batch is on its way, go
    together in the next one: as one pipeline, not a transaction, so each succeeds or fails on
    its own.
    """

    def __init__(self, redis: Redis | RedisCluster) -> None:
        self._redis = redis
        self._waiting: list[tuple[Command, asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def run(self, command: Command) -> Any:
        """`command`'s reply. Raises the error Redis answered it with (`ResponseError`), or the
        batch's when Redis could not be reached (`service.redis_client.redis_waited_out`);
        the command may then have been carried out or not.

        Cancelling the caller does not take the command back.
        """
        return await asyncio.shield(self.submit(command))

    def submit(self, command: Command) -> asyncio.Future[Any]:
        """Queue `command` and return at once; the future ends as `run` would. Its error, if
        any, counts as retrieved: nobody need wait for it."""
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((command, reply))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send(), name="redis-batch")
        return reply

    async def _send(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._send_batch(batch)
        finally:
            # Left over only when this task was cancelled (the loop is closing).
            for _, reply in self._waiting:
                reply.cancel()
            self._waiting = []
            self._sender = None

    async def _send_batch(self, batch: list[tuple[Command, asyncio.Future[Any]]]) -> None:
        if len(batch) == 1:
            # Alone, it goes as it is: a pipeline would only add work.
            await self._send_one(*batch[0])
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for command, _ in batch:
                    command(pipe)
                replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            for _, reply in batch:
                _settle(reply, exc)
            return
        except BaseException:
            for _, reply in batch:
                reply.cancel()
            raise
        for (_, reply), answer in zip(batch, replies, strict=True):
            _settle(reply, answer)

    async def _send_one(self, command: Command, reply: asyncio.Future[Any]) -> None:
        try:
            answer = await command(self._redis)
        except Exception as exc:
            _settle(reply, exc)
        except BaseException:
            reply.cancel()
            raise
        else:
            _settle(reply, answer)

    async def aclose(self) -> None:
        """Wait until the commands already given have been sent."""
        if self._sender is not None:
            await asyncio.wait([self._sender])


def _settle(reply: asyncio.Future[Any], answer: Any) -> None:
    if reply.done():
        return
    if isinstance(answer, Exception):
        reply.set_exception(answer)
        # Retrieved here too, as the caller may have been cancelled and gone.
        reply.exception()
    else:
        reply.set_result(answer)
