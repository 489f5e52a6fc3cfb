"""A call's event stream (`service.calls.stream.follow`) on a Redis Cluster whose slots move.

A MOVED or ASK reply is the cluster saying where a key now lives, not a refusal of the read:
the stream goes on at the key's new node rather than ending. The service's client makes no
client-side retries, so a transaction (`CallStore.read_after`) that meets one raises it.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable

from service.calls.store import CallStore, LoggedEvent
from service.calls.stream import follow
from service.redis_client import redis_client
from service.redis_keys import RedisKeys
from tests.e2e.redis_cluster import RedisClusterServers

CALL_ID = "rtc_slot_moves"
KEYS = RedisKeys()


def _cli(cluster: RedisClusterServers, port: int, *args: str | int) -> str:
    done = subprocess.run(
        [cluster.cli, "-p", str(port), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


def _move_slot(cluster: RedisClusterServers, key: str, *, finish: bool) -> Callable[[], None]:
    """Migrate `key`'s slot (and `key`) to another master; with `finish`, tell every node the
    slot's new owner (MOVED from then on), else leave the slot migrating (ASK) and return what
    finishes the migration."""
    ports = [node.port for node in cluster.nodes]
    slot = int(_cli(cluster, ports[0], "cluster", "keyslot", key))
    source = next(p for p in ports if _cli(cluster, p, "exists", key) == "1")
    target = next(p for p in ports if p != source)
    source_id = _cli(cluster, source, "cluster", "myid")
    target_id = _cli(cluster, target, "cluster", "myid")
    _cli(cluster, target, "cluster", "setslot", slot, "importing", source_id)
    _cli(cluster, source, "cluster", "setslot", slot, "migrating", target_id)
    assert _cli(cluster, source, "migrate", "127.0.0.1", target, key, 0, 5000) == "OK"

    def finished() -> None:
        for port in ports:
            _cli(cluster, port, "cluster", "setslot", slot, "node", target_id)

    if finish:
        finished()
    return finished


async def _followed(store: CallStore, count: int) -> list[LoggedEvent]:
    got: list[LoggedEvent] = []
    async with asyncio.timeout(10):
        async for event in follow(store, CALL_ID, "0", keepalive_s=0.2, retry_s=0.05):
            if event is not None:
                got.append(event)
                if len(got) == count:
                    break
    return got


async def _stream_across_a_slot_move(
    redis_cluster: RedisClusterServers, *, finish: bool
) -> list[LoggedEvent]:
    key = KEYS.events(CALL_ID)
    admin = redis_cluster.client()
    client = redis_client(redis_cluster.url, longest_block_ms=1000)
    store = CallStore(client, keys=KEYS, events_maxlen=100, retention_s=60)
    try:
        await admin.xadd(key, {"name": "transcript.delta", "data": '{"delta":"one"}'})
        # The service's client knows the layout, as it does once it has served a while.
        await store.read_after(CALL_ID, "0")
        finished = await asyncio.to_thread(_move_slot, redis_cluster, key, finish=finish)
        following = asyncio.ensure_future(_followed(store, 1))
        if not finish:
            # Mid-migration, a transaction meets ASK at the old node and MOVED at the new one
            # (redis-py sends no ASKING for one): the stream waits until the slot has moved.
            await asyncio.sleep(1)
            await asyncio.to_thread(finished)
        return await following
    finally:
        await client.aclose()
        await admin.aclose()


async def test_a_stream_goes_on_when_its_calls_slot_has_moved_to_another_node(
    redis_cluster: RedisClusterServers,
) -> None:
    got = await _stream_across_a_slot_move(redis_cluster, finish=True)
    assert [event.data for event in got] == [{"delta": "one"}]


async def test_a_stream_waits_out_a_migration_of_its_calls_slot(
    redis_cluster: RedisClusterServers,
) -> None:
    got = await _stream_across_a_slot_move(redis_cluster, finish=False)
    assert [event.data for event in got] == [{"delta": "one"}]
