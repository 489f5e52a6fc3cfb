"""Call ownership as a lease in Redis: who owns each call, for how long, and taking it over.

Keys (names and hash slots in `service.redis_keys`; all in the ownership slot, as the renewal
script takes many leases at once):

- the call's lease — the owning instance's id, expiring `lease_s` after its last renewal. The
  handoff queue reads the same key to route a worker's answer to the owner.
- the epoch — a random mark written once: when it is gone or new, Redis has lost its data (a
  restart without persistence, a `FLUSHALL`; on a cluster, the ownership slot's node lost it)
  and owners are writing their calls back.
- the instances — every instance whose results a successor may need: a sorted set of ids
  scored by when their heartbeat lapses (ms since the epoch, by the clock of the Redis node
  holding it). A live instance's score is ahead of that clock; one that left, died or stalled
  stays, lapsed, until it is forgotten together with its results.
- the live calls — the ids of the calls to be taken over should their lease lapse: where every
  instance looks for lapsed leases.
- an instance's results (`service.handoffs.redis_streams`) — deleted here, with the instance's
  entry among the instances.
- an instance's hold — which process runs as that instance: a mark made once per process
  (`_PROCESS`) and when that process last renewed the hold, which lapses `lease_s` after.

Control requests, worker answers and leases are addressed to an instance by its id, so two
processes running as one instance would take each other's: calls fail without a word. A process
given its id (`CALLBRIDGE_INSTANCE_ID`) takes the hold before it serves (`hold_id`), at once
when nobody holds it, or once the hold lapses unrenewed: a process that ran as the instance and
died (a restart with a fixed id) renews it no more, and waiting out what is left of its lease
period tells it apart from a live one, which renews it every third of a lease. Should two
processes take it anyway (a live one stalled past its lease while another started), each
heartbeat takes it back and says whether another process had renewed it: both are told, every
third of a lease, for as long as both run.

An instance is forgotten, its entry and its results stream in one script, when it departs (its
own last step) and, should it die instead, by the others once it has been lapsed for
`FORGET_AFTER_LEASES` lease periods; but only once its results hold no event for a live call.
Such an event waits for the call's successor, which finds the stream through the instances
(`known_instances`) and moves the call's events as it claims the call: until it has, the instance
stays known. Events for calls no longer live are deleted on the way, as nobody will ever take
them; so a stream outlives its instance only while a call it served is live and unclaimed, and
what it holds is bounded by the queue's maxlen. An event that reaches an instance after it was
forgotten (a worker's answer for a call without a lease goes to the instance that asked) makes
it known again, lapsed, in the script that appends it, so that its stream is found and forgotten
in turn.

Every change of owner is one atomic script, so two instances never both believe they own a
call: a claim succeeds only on a lapsed (absent) lease, a handover only from the named owner, a
renewal only while the lease names this instance or has vanished (Redis lost its data: the
owner is still alive and takes it back at once).

A call is listed as live by the very script that writes its lease (the first renewal, at the
call's start, and every one after), and taken off by the one that lets the lease go, after its
ended state is saved. So no instance ever sees a call leased and unlisted (its owner dying
then would leave it to nobody), nor listed without a lease while its owner lives (another
instance would take a new call from its owner). A listed call may have no saved state yet: its
owner died between its lease and its first save (see `CallManager._take_over`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from service.redis_client import NOW_MS_LUA, redis_now_ms
from service.redis_keys import RESULTS_GROUP, RedisKeys

if TYPE_CHECKING:
    from service.redis_client import RedisClient

log = logging.getLogger("callbridge.directory")

# This process's mark on the hold of the instance it runs as: a new one at every start, so that a
# process restarted under its id is told apart from the one before it.
_PROCESS: Final = uuid.uuid4().hex

# KEYS[1]: the live calls, KEYS[2..n+1]: the leases of n calls. ARGV[1]: this instance,
# ARGV[2]: lease in ms, ARGV[3..n+2]: the calls' ids.
# Returns the indices (1-based, among the n calls) of the leases another instance holds now, and
# of those that had vanished (Redis lost them, or this instance was too slow to renew) and are
# written again. Every lease written is listed as live with it.
_RENEW: Final = """
local lost = {}
local rewritten = {}
for i = 1, #KEYS - 1 do
    local lease = KEYS[i + 1]
    local owner = redis.call('GET', lease)
    if owner == false or owner == ARGV[1] then
        redis.call('SET', lease, ARGV[1], 'PX', ARGV[2])
        redis.call('SADD', KEYS[1], ARGV[i + 2])
        if owner == false then
            table.insert(rewritten, i)
        end
    else
        table.insert(lost, i)
    end
end
return {lost, rewritten}
"""

# KEYS[1]: lease. ARGV[1]: expected owner, ARGV[2]: new owner, ARGV[3]: lease in ms.
_HAND_OVER: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    return 1
end
return 0
"""

# KEYS[1]: lease, KEYS[2]: the live calls. ARGV[1]: its owner, ARGV[2]: the call's id.
# Unlists the call unless another instance holds it now (it is then that one's to unlist).
_RELEASE: Final = """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] or owner == false then
    redis.call('SREM', KEYS[2], ARGV[2])
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS[1]: the instance's hold. ARGV[1]: this process's mark, ARGV[2]: lease in ms.
# Takes the hold unless another process has it; then returns when that one last renewed it, and
# the ms left before it lapses unrenewed.
_HOLD: Final = (
    NOW_MS_LUA
    + """
local process = redis.call('HGET', KEYS[1], 'process')
if process == false or process == ARGV[1] then
    redis.call('HSET', KEYS[1], 'process', ARGV[1], 'renewed', now_ms())
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return false
end
return {redis.call('HGET', KEYS[1], 'renewed'), redis.call('PTTL', KEYS[1])}
"""
)

# KEYS[1]: the instances, KEYS[2]: the instance's hold. ARGV[1]: the instance, ARGV[2]: this
# process's mark, ARGV[3]: lease in ms, ARGV[4]: '1' once it has left.
# Scores the instance alive for a lease (or, once it has left, lapsed as of now) and renews this
# process's hold. Returns 1 when another process held it, having renewed it since this one did.
_HEARTBEAT: Final = (
    NOW_MS_LUA
    + """
local now = now_ms()
local process = redis.call('HGET', KEYS[2], 'process')
if ARGV[4] == '1' then
    redis.call('ZADD', KEYS[1], 'XX', now - 1, ARGV[1])
else
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
end
-- Once it has left, only a hold still its own: after `depart`, a heartbeat on its way must not
-- bring the instance back, nor keep the hold from a process started since.
if ARGV[4] ~= '1' or process == ARGV[2] then
    redis.call('HSET', KEYS[2], 'process', ARGV[2], 'renewed', now)
    redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
if process ~= false and process ~= ARGV[2] then
    return 1
end
return 0
"""
)

# KEYS[1]: the instance's hold. ARGV[1]: this process's mark. Lets go of it if it is this
# process's.
_LET_GO: Final = """
if redis.call('HGET', KEYS[1], 'process') == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


FORGET_AFTER_LEASES: Final = 4
"""Lease periods an instance has been lapsed before the others forget it. Its calls have been
claimed by then (a lapsed lease is claimed within a quarter lease by an instance with room), and
an instance whose results still hold an event for a live call is kept anyway: this only spares an
instance that stalls for a moment the loss of its results stream (which it would make again)."""

# Instances looked at in one clean-up, the oldest lapses first.
_FORGET_BATCH: Final = 16
# Entries of a results stream one clean-up looks at (at most 16,000 in one script, a few ms of
# Redis' time); a longer stream is cleaned over several.
_FORGET_SCAN: Final = 1_000

# KEYS[1]: the instances, KEYS[2]: the live calls, KEYS[3..n+2]: the results of the n instances
# ARGV[4..n+3]. ARGV[1]: the latest score of an instance to forget ('' for any score or none: an
# instance departing), ARGV[2]: entries looked at per instance, ARGV[3]: the results' consumer
# group. Forgets each instance with its results unless they hold an event for a live call or
# more than it looks at; deletes the events looked at for calls no longer live on the way. One
# kept is marked lapsed as of now, so that it is looked at again after the others. Returns the
# instances forgotten.
_FORGET: Final = (
    NOW_MS_LUA
    + """
local forgotten = {}
for k = 3, #KEYS do
    local instance = ARGV[k + 1]
    local score = redis.call('ZSCORE', KEYS[1], instance)
    if ARGV[1] == '' or (score and tonumber(score) <= tonumber(ARGV[1])) then
        local entries = redis.call('XRANGE', KEYS[k], '-', '+', 'COUNT', ARGV[2])
        -- A stream longer than one look is kept for the next clean-up, which goes on from
        -- what this one left: no script holds Redis for a whole stream.
        local wanted = #entries == tonumber(ARGV[2])
        local unwanted = {}
        for _, entry in ipairs(entries) do
            local fields = entry[2]
            local live = false
            for i = 1, #fields, 2 do
                if fields[i] == 'call_id' then
                    live = redis.call('SISMEMBER', KEYS[2], fields[i + 1]) == 1
                end
            end
            if live then
                wanted = true
            else
                table.insert(unwanted, entry[1])
            end
        end
        if #unwanted > 0 then
            redis.pcall('XACK', KEYS[k], ARGV[3], unpack(unwanted))
            redis.call('XDEL', KEYS[k], unpack(unwanted))
        end
        if wanted then
            redis.call('ZADD', KEYS[1], now_ms() - 1, instance)
        else
            redis.call('DEL', KEYS[k])
            redis.call('ZREM', KEYS[1], instance)
            table.insert(forgotten, instance)
        end
    end
end
return forgotten
"""
)


class CallLeases:
    """This instance's side of the ownership leases. Every method may raise what
    `service.redis_client.redis_failures` names when Redis cannot be reached; the caller decides
    what that means."""

    def __init__(
        self, redis: RedisClient, instance_id: str, *, lease_s: float, keys: RedisKeys
    ) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self.instance_id = instance_id
        self.lease_s = lease_s
        self._redis = redis
        self._keys = keys
        self._lease_ms = max(1, round(lease_s * 1000))
        self._renew = redis.register_script(_RENEW)
        self._hand_over = redis.register_script(_HAND_OVER)
        self._release = redis.register_script(_RELEASE)
        self._forget = redis.register_script(_FORGET)
        self._hold = redis.register_script(_HOLD)
        self._heartbeat = redis.register_script(_HEARTBEAT)
        self._let_go = redis.register_script(_LET_GO)
        self._hold_key = keys.instance_hold(instance_id)
        self._left = False
        self._epoch: str | None = None
        self._data_lost_at = -float("inf")

    async def claim(self, call_id: str) -> bool:
        """Take `call_id` if nobody holds its lease (a new call, or its owner's lapsed)."""
        return bool(
            await self._redis.set(
                self._keys.lease(call_id), self.instance_id, px=self._lease_ms, nx=True
            )
        )

    async def hand_over(self, call_id: str, from_instance: str) -> bool:
        """Take `call_id` from `from_instance`, which is handing it over; False if it no
        longer holds the lease."""
        taken = await self._hand_over(
            keys=[self._keys.lease(call_id)],
            args=[from_instance, self.instance_id, self._lease_ms],
        )
        return bool(taken)

    async def renew(self, call_ids: Iterable[str]) -> tuple[set[str], set[str]]:
        """Extend our leases on `call_ids` (writing those of new calls), each listed as live
        in the same step; return those another instance holds now (this instance must let go
        of them) and those that had vanished and were written again (their saved state may have
        gone with them)."""
        ids = list(call_ids)
        if not ids:
            return set(), set()
        lost, rewritten = await self._renew(
            keys=[self._keys.live, *(self._keys.lease(c) for c in ids)],
            args=[self.instance_id, self._lease_ms, *ids],
        )
        return {ids[int(i) - 1] for i in lost}, {ids[int(i) - 1] for i in rewritten}

    async def release(self, call_id: str) -> None:
        """Drop our lease on `call_id` and take it off the live calls, unless another instance
        holds it now. Only once nothing is left to do for the call: its ended state is saved,
        or it was hung up at the provider."""
        await self._release(
            keys=[self._keys.lease(call_id), self._keys.live], args=[self.instance_id, call_id]
        )

    async def listed(self) -> list[str]:
        """Ids of the calls listed as live (sorted)."""
        return sorted(str(c) for c in await self._redis.smembers(self._keys.live))

    async def owner_of(self, call_id: str) -> str | None:
        """The instance holding `call_id`'s lease, or None when it has lapsed."""
        owner = await self._redis.get(self._keys.lease(call_id))
        return None if owner is None else str(owner)

    async def unowned(self, call_ids: list[str]) -> list[str]:
        """Those of `call_ids` whose lease has lapsed."""
        if not call_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for call_id in call_ids:
                pipe.exists(self._keys.lease(call_id))
            found = await pipe.execute()
        return [c for c, exists in zip(call_ids, found, strict=True) if not exists]

    async def hold_id(self) -> bool:
        """Take the hold of this instance for this process, before it serves: at once when no
        other process holds it, else once that one's hold lapses unrenewed (a process that ran
        as this instance and died: what is left of its lease period). False, without taking it,
        when the holder renews its hold meanwhile: another process runs as this instance."""
        first_seen: str | None = None
        while True:
            held = await self._hold(keys=[self._hold_key], args=[_PROCESS, self._lease_ms])
            if held is None:
                if first_seen is not None:
                    log.info(
                        "instance %s: the hold of the process that ran as it before lapsed "
                        "unrenewed; this process runs as it now",
                        self.instance_id,
                    )
                return True
            renewed, left_ms = str(held[0]), int(held[1])
            if first_seen is None:
                first_seen = renewed
            elif renewed != first_seen:
                return False
            # Redis counts whole ms: a hold met in its last one is looked at again.
            await asyncio.sleep(max(1, left_ms) / 1000)

    async def heartbeat(self) -> bool:
        """Announce this instance alive for one lease period, and renew this process's hold of
        it; once it has left, that it has left as of now: lapsed, so nobody's peer, but not
        gone (`forget_lapsed`) while it still runs. True when another process held it, having
        renewed it since this one did: two processes run as this instance. Each takes the hold
        back in turn, so that both are told."""
        other = await self._heartbeat(
            keys=[self._keys.instances, self._hold_key],
            args=[self.instance_id, _PROCESS, self._lease_ms, int(self._left)],
        )
        return bool(other)

    async def leave(self) -> None:
        """This instance stops (it drains): it is nobody's peer any more, but stays known, so
        that successors of its calls find its results, until it `depart`s. It keeps its hold:
        it still runs as this instance."""
        self._left = True
        await self.heartbeat()

    async def depart(self) -> bool:
        """This instance is gone for good (its last step, once it reads its results no more):
        it is nobody's peer any more (as after `leave`), lets go of its hold (a process started
        as this instance takes it at once), and is forgotten with its results stream unless an
        event there is for a live call, which its successor is to move. Returns whether it was
        forgotten; if not, it stays known, lapsed, for the others to forget later
        (`forget_lapsed`)."""
        self._left = True
        await self.let_go_id()
        forgotten = await self._forget(
            keys=[self._keys.instances, self._keys.live, self._keys.results(self.instance_id)],
            args=["", _FORGET_SCAN, RESULTS_GROUP, self.instance_id],
        )
        return bool(forgotten)

    async def let_go_id(self) -> None:
        """Let go of this instance's hold if this process has it (a process started as this
        instance then takes it at once)."""
        await self._let_go(keys=[self._hold_key], args=[_PROCESS])

    async def forget_lapsed(self) -> list[str]:
        """Forget instances lapsed for `FORGET_AFTER_LEASES` lease periods (a few at a time,
        the oldest lapses first), each with its results stream, unless an event there is for a
        live call: that one stays known until the call's successor has moved it. Events for
        calls no longer live are deleted. Returns the instances forgotten."""
        cutoff = await self._now_ms() - FORGET_AFTER_LEASES * self._lease_ms
        lapsed = [
            str(i)
            for i in await self._redis.zrangebyscore(
                self._keys.instances, "-inf", cutoff, start=0, num=_FORGET_BATCH
            )
        ]
        if not lapsed:
            return []
        forgotten = await self._forget(
            keys=[
                self._keys.instances,
                self._keys.live,
                *(self._keys.results(i) for i in lapsed),
            ],
            args=[cutoff, _FORGET_SCAN, RESULTS_GROUP, *lapsed],
        )
        return [str(i) for i in forgotten]

    async def known_instances(self) -> list[str]:
        """Every instance whose results stream may hold events: alive, or gone and not yet
        forgotten (`forget_lapsed`)."""
        return [str(i) for i in await self._redis.zrange(self._keys.instances, 0, -1)]

    async def peers(self) -> list[str]:
        """Other instances whose heartbeat has not lapsed."""
        now_ms = await self._now_ms()
        alive = await self._redis.zrangebyscore(self._keys.instances, now_ms, "+inf")
        return [str(i) for i in alive if i != self.instance_id]

    async def check_epoch(self) -> bool:
        """Whether Redis has lost its data since the last check (the first check says no)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.epoch, uuid.uuid4().hex, nx=True)
            pipe.get(self._keys.epoch)
            _, current = await pipe.execute()
        lost = self._epoch is not None and current != self._epoch
        self._epoch = str(current)
        if lost:
            self._data_lost_at = time.monotonic()
        return lost

    def recovering(self) -> float:
        """Seconds left of the lease period after Redis lost its data (0.0 when it has not
        recently): owners write their calls back within that time."""
        return max(0.0, self._data_lost_at + self.lease_s - time.monotonic())

    async def _now_ms(self) -> int:
        # The clock of the node holding the scores: instances' clocks may disagree.
        return await redis_now_ms(self._redis, self._keys.instances)
