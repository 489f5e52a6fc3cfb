"""Call ownership leases and answer routing, against a private redis-server and a Redis
Cluster (the `shared_redis` fixture of `tests.e2e.redis_cluster`, through the e2e conftest).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import pytest

from service.calls.lease import CallLeases
from service.handoffs import HandoffEvent
from service.handoffs.redis_streams import RedisStreamQueue
from service.redis_keys import RESULTS_GROUP, RedisKeys
from signaling.realtime import Delegation
from tests.e2e.redis_cluster import SharedRedis
from tests.e2e.waiting import until

pytestmark = pytest.mark.parametrize("shared_redis", ["single", "cluster"], indirect=True)

KEYS = RedisKeys()
CALL = "rtc_call1"

MakeLeases = Callable[..., CallLeases]


@pytest.fixture
def leases(shared_redis: SharedRedis) -> MakeLeases:
    def make(instance_id: str, lease_s: float = 5.0) -> CallLeases:
        return CallLeases(shared_redis.client, instance_id, lease_s=lease_s, keys=KEYS)

    return make


@pytest.fixture
async def queue(shared_redis: SharedRedis) -> AsyncIterator[RedisStreamQueue]:
    q = RedisStreamQueue(shared_redis.url, block_ms=100)
    yield q
    await q.aclose()


def delegation() -> Delegation:
    return Delegation(
        call_id=CALL,
        tool_call_id="tool1",
        handoff_id=f"{CALL}:tool1",
        item_id="item1",
        request="what is 6 times 7",
        transcript_delta=(),
        envelope="<realtime_delegation/>",
        steering=False,
    )


def answer(text: str = "42") -> HandoffEvent:
    return HandoffEvent("result", f"{CALL}:tool1", CALL, "tool1", text)


async def next_event(queue: RedisStreamQueue, instance: str) -> HandoffEvent:
    async with aclosing(queue.events(instance)) as events:
        return await asyncio.wait_for(anext(events), 5.0)


# Leases


async def test_of_many_instances_claiming_a_lapsed_call_exactly_one_gets_it(
    leases: MakeLeases,
) -> None:
    claims = await asyncio.gather(*(leases(f"i{n}").claim(CALL) for n in range(10)))
    assert sorted(claims) == [False] * 9 + [True]


async def test_a_call_cannot_be_claimed_while_its_owner_holds_the_lease(
    leases: MakeLeases,
) -> None:
    await leases("a").claim(CALL)
    assert not await leases("b").claim(CALL)


async def test_a_lease_that_lapses_can_be_claimed(leases: MakeLeases) -> None:
    await leases("a", lease_s=0.2).claim(CALL)
    await asyncio.sleep(0.3)
    b = leases("b")
    assert await b.claim(CALL)
    assert await b.owner_of(CALL) == "b"


async def test_renewing_never_takes_a_call_back_from_its_new_owner(leases: MakeLeases) -> None:
    a, b = leases("a", lease_s=0.2), leases("b")
    await a.claim(CALL)
    await asyncio.sleep(0.3)
    await b.claim(CALL)
    lost, rewritten = await a.renew([CALL])
    assert (lost, rewritten) == ({CALL}, set())
    assert await a.owner_of(CALL) == "b"


async def test_renewing_writes_back_a_lease_redis_lost(
    leases: MakeLeases, shared_redis: SharedRedis
) -> None:
    a = leases("a")
    await a.claim(CALL)
    await shared_redis.client.flushall()
    lost, rewritten = await a.renew([CALL])
    assert (lost, rewritten) == (set(), {CALL})
    assert await a.owner_of(CALL) == "a"


async def test_a_call_is_listed_as_live_by_the_renewal_that_writes_its_lease(
    leases: MakeLeases,
) -> None:
    a = leases("a")
    await a.renew([CALL])
    assert (await a.owner_of(CALL), await a.listed()) == ("a", [CALL])


async def test_renewing_lists_again_a_call_redis_lost(
    leases: MakeLeases, shared_redis: SharedRedis
) -> None:
    a = leases("a")
    await a.renew([CALL])
    await shared_redis.client.flushall()
    await a.renew([CALL])
    assert await a.listed() == [CALL]


async def test_letting_a_lease_go_takes_the_call_off_the_live_calls(leases: MakeLeases) -> None:
    a = leases("a")
    await a.renew([CALL])
    await a.release(CALL)
    assert (await a.owner_of(CALL), await a.listed()) == (None, [])


async def test_a_call_another_instance_holds_stays_listed_when_its_old_owner_lets_go(
    leases: MakeLeases,
) -> None:
    a, b = leases("a"), leases("b")
    await a.renew([CALL])
    await b.hand_over(CALL, "a")
    await a.release(CALL)
    assert (await b.owner_of(CALL), await b.listed()) == ("b", [CALL])


async def test_a_handover_is_taken_only_from_the_instance_named(leases: MakeLeases) -> None:
    a, b, c = leases("a"), leases("b"), leases("c")
    await a.claim(CALL)
    refused = await c.hand_over(CALL, "b")
    taken = await b.hand_over(CALL, "a")
    assert (refused, taken) == (False, True)
    assert await c.owner_of(CALL) == "b"


async def test_an_instance_that_left_is_nobodys_peer(leases: MakeLeases) -> None:
    a, b = leases("a"), leases("b")
    await a.heartbeat()
    await b.heartbeat()
    await a.leave()
    await a.heartbeat()
    assert await b.peers() == []


async def test_an_instance_that_left_stays_known_until_it_departs(leases: MakeLeases) -> None:
    a, b = leases("a"), leases("b")
    await a.heartbeat()
    await a.leave()
    known_while_draining = await b.known_instances()
    await a.depart()
    assert (known_while_draining, await b.known_instances()) == (["a"], [])


async def test_losing_redis_data_is_noticed_once(
    leases: MakeLeases, shared_redis: SharedRedis
) -> None:
    a = leases("a")
    first = await a.check_epoch()
    await shared_redis.client.flushall()
    assert (first, await a.check_epoch(), await a.check_epoch()) == (False, True, False)


# Answers find the call


async def test_an_answer_goes_to_the_calls_current_owner_not_to_the_one_that_asked(
    leases: MakeLeases, queue: RedisStreamQueue
) -> None:
    await leases("b").claim(CALL)
    await queue.publish("a", answer())
    assert await next_event(queue, "b") == answer()


async def test_an_answer_left_at_a_dead_owner_is_moved_to_its_successor(
    leases: MakeLeases, queue: RedisStreamQueue
) -> None:
    await queue.publish("a", answer())
    await leases("b").claim(CALL)
    moved = await queue.reroute(CALL, ["a"])
    assert moved == 1
    assert await next_event(queue, "b") == answer()


async def test_an_answer_for_a_call_its_instance_let_go_is_parked_for_the_successor(
    leases: MakeLeases, queue: RedisStreamQueue, shared_redis: SharedRedis
) -> None:
    await queue.forward(answer(), not_to="a")
    parked = await shared_redis.client.xlen(KEYS.parked(CALL))
    await leases("b").claim(CALL)
    await queue.reroute(CALL, ["a"])
    assert parked == 1
    assert await next_event(queue, "b") == answer()


async def test_other_calls_answers_stay_where_they_are_on_a_reroute(
    leases: MakeLeases, queue: RedisStreamQueue, shared_redis: SharedRedis
) -> None:
    other = HandoffEvent("result", "rtc_other:tool", "rtc_other", "tool", "x")
    await leases("a").claim("rtc_other")
    await queue.publish("a", other)
    await leases("b").claim(CALL)
    assert await queue.reroute(CALL, ["a"]) == 0
    assert await shared_redis.client.xlen(KEYS.results("a")) == 1


async def test_a_result_for_a_call_that_changed_owner_is_acknowledged_as_it_reaches_the_new_one(
    leases: MakeLeases, queue: RedisStreamQueue, shared_redis: SharedRedis
) -> None:
    await queue.put(delegation(), "a")
    async with aclosing(queue.jobs("worker-1")) as jobs:
        job = await asyncio.wait_for(anext(jobs), 5.0)
    await leases("b").claim(CALL)
    result = HandoffEvent.for_job(job, "result", "42")
    await queue.complete(job, result)
    assert await next_event(queue, "b") == result
    assert await shared_redis.client.xlen(KEYS.handoffs) == 0


async def test_a_handoff_given_up_on_tells_the_calls_current_owner(
    leases: MakeLeases, shared_redis: SharedRedis
) -> None:
    queue = RedisStreamQueue(shared_redis.url, block_ms=100, claim_idle_ms=100, max_deliveries=1)
    try:
        await queue.put(delegation(), "a")
        async with aclosing(queue.jobs("dies")) as doomed:
            await asyncio.wait_for(anext(doomed), 5.0)
        await leases("b").claim(CALL)
        async with aclosing(queue.jobs("survivor")) as jobs:
            never_yielded = asyncio.create_task(anext(jobs))
            told = await next_event(queue, "b")
            never_yielded.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await never_yielded
    finally:
        await queue.aclose()
    assert (told.kind, told.call_id, told.meta) == ("failed", CALL, {"dead": True})
    assert await shared_redis.client.xlen(KEYS.dead) == 1


# Instances gone, and their results


def long_gone(shared_redis: SharedRedis, instance: str) -> Awaitable[Any]:
    """Make `instance` look lapsed long ago (its entry's score is when its heartbeat lapsed)."""
    return shared_redis.client.zadd(KEYS.instances, {instance: 0})


async def test_a_departing_instance_takes_its_empty_results_stream_with_it(
    leases: MakeLeases, shared_redis: SharedRedis
) -> None:
    a = leases("a")
    await a.heartbeat()
    # As its reader makes it.
    await shared_redis.client.xgroup_create(KEYS.results("a"), RESULTS_GROUP, mkstream=True)
    forgotten = await a.depart()
    assert forgotten
    assert await shared_redis.client.exists(KEYS.results("a")) == 0
    assert await a.known_instances() == []


async def test_a_departing_instance_keeps_results_holding_an_answer_for_a_live_call(
    leases: MakeLeases, queue: RedisStreamQueue, shared_redis: SharedRedis
) -> None:
    a = leases("a")
    await a.renew([CALL])
    await queue.publish("a", answer())
    forgotten = await a.depart()
    assert not forgotten
    assert await shared_redis.client.xlen(KEYS.results("a")) == 1
    assert await a.known_instances() == ["a"]
    assert await leases("b").peers() == []


async def test_the_successor_of_a_call_gets_the_answer_its_departed_owner_kept(
    leases: MakeLeases, queue: RedisStreamQueue
) -> None:
    a = leases("a", lease_s=0.2)
    await a.renew([CALL])
    await queue.publish("a", answer())
    await a.depart()
    await asyncio.sleep(0.3)
    b = leases("b")
    await b.claim(CALL)
    moved = await queue.reroute(CALL, await b.known_instances())
    assert moved == 1
    assert await next_event(queue, "b") == answer()


async def test_a_long_gone_instance_is_forgotten_with_its_empty_results_stream(
    leases: MakeLeases, shared_redis: SharedRedis
) -> None:
    await leases("a").heartbeat()
    await shared_redis.client.xgroup_create(KEYS.results("a"), RESULTS_GROUP, mkstream=True)
    await long_gone(shared_redis, "a")
    forgotten = await leases("b").forget_lapsed()
    assert forgotten == ["a"]
    assert await shared_redis.client.exists(KEYS.results("a")) == 0


async def test_a_long_gone_instance_is_forgotten_with_answers_for_calls_no_longer_live(
    leases: MakeLeases, queue: RedisStreamQueue, shared_redis: SharedRedis
) -> None:
    await queue.publish("a", answer())
    await long_gone(shared_redis, "a")
    forgotten = await leases("b").forget_lapsed()
    assert forgotten == ["a"]
    assert await shared_redis.client.exists(KEYS.results("a")) == 0


async def test_a_long_gone_instance_with_a_long_stream_is_forgotten_over_several_clean_ups(
    leases: MakeLeases, queue: RedisStreamQueue, shared_redis: SharedRedis
) -> None:
    for _ in range(3):
        await asyncio.gather(*(queue.publish("a", answer()) for _ in range(500)))
    await long_gone(shared_redis, "a")
    assert await leases("b").forget_lapsed() == []
    assert await shared_redis.client.xlen(KEYS.results("a")) == 500
    await long_gone(shared_redis, "a")
    assert await leases("b").forget_lapsed() == ["a"]
    assert await shared_redis.client.exists(KEYS.results("a")) == 0


async def test_a_long_gone_instance_holding_an_answer_for_a_live_call_is_not_forgotten(
    leases: MakeLeases, queue: RedisStreamQueue, shared_redis: SharedRedis
) -> None:
    await leases("a").renew([CALL])
    await queue.publish("a", answer())
    await long_gone(shared_redis, "a")
    forgotten = await leases("b").forget_lapsed()
    assert forgotten == []
    assert await shared_redis.client.xlen(KEYS.results("a")) == 1
    assert await leases("b").known_instances() == ["a"]


async def test_only_the_answers_for_calls_no_longer_live_go_from_a_long_gone_instance(
    leases: MakeLeases, queue: RedisStreamQueue, shared_redis: SharedRedis
) -> None:
    ended = HandoffEvent("result", "rtc_ended:tool", "rtc_ended", "tool", "x")
    await leases("a").renew([CALL])
    await queue.publish("a", ended)
    await queue.publish("a", answer())
    await long_gone(shared_redis, "a")
    await leases("b").forget_lapsed()
    left = await shared_redis.client.xrange(KEYS.results("a")) or []
    assert [(fields or {}).get("call_id") for _, fields in left] == [CALL]


async def test_an_instance_that_has_just_left_is_not_forgotten_by_the_others(
    leases: MakeLeases,
) -> None:
    a, b = leases("a"), leases("b")
    await a.heartbeat()
    await a.leave()
    forgotten = await b.forget_lapsed()
    assert forgotten == []
    assert await b.known_instances() == ["a"]


async def test_an_answer_for_a_departed_instance_makes_it_known_again(
    leases: MakeLeases, queue: RedisStreamQueue
) -> None:
    a = leases("a")
    await a.heartbeat()
    await a.depart()
    await queue.publish("a", answer())
    b = leases("b")
    assert await b.known_instances() == ["a"]
    assert await b.peers() == []


async def test_a_reader_making_its_results_again_after_its_instance_departed_makes_it_known(
    leases: MakeLeases, queue: RedisStreamQueue, shared_redis: SharedRedis
) -> None:
    a = leases("a")
    await a.heartbeat()
    await a.depart()

    async def results_made() -> bool:
        return bool(await shared_redis.client.exists(KEYS.results("a")))

    async with aclosing(queue.events("a")) as events:
        reading = asyncio.create_task(anext(events))
        await until(results_made)
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
    assert await leases("b").known_instances() == ["a"]


async def test_an_answer_that_reached_a_departed_owner_is_moved_to_the_calls_successor(
    leases: MakeLeases, queue: RedisStreamQueue
) -> None:
    a = leases("a", lease_s=0.2)
    await a.renew([CALL])
    await a.depart()
    await queue.publish("a", answer())
    await asyncio.sleep(0.3)
    b = leases("b")
    await b.claim(CALL)
    moved = await queue.reroute(CALL, await b.known_instances())
    assert moved == 1
    assert await next_event(queue, "b") == answer()
