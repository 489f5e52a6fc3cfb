"""Call ownership as a lease in Redis: who owns each call, for how long, and taking it over.

Keys (names and hash slots in `service.redis_keys`; all in the ownership slot, as the renewal
script takes many leases at once):

- the call's lease — the owning instance's id, expiring `lease_s` after its last renewal. The
  handoff queue reads the same key to route a worker's answer to the owner.
- the epoch — a random mark written once: when it is gone or new, Redis has lost its data (a
  restart without persistence, a `FLUSHALL`; on a cluster, the ownership slot's node lost it)
  and owners are writing their calls back.
- the instances — live instances: a sorted set of ids scored by when their heartbeat lapses
  (ms since the epoch, by the clock of the Redis node holding it).
- the live calls — the ids of the calls to be taken over should their lease lapse: where every
  instance looks for lapsed leases.

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

import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from service.redis_client import redis_now_ms
from service.redis_keys import RedisKeys

if TYPE_CHECKING:
    from service.redis_client import RedisClient

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

    async def heartbeat(self) -> None:
        """Announce this instance alive for one lease period (and forget long-lapsed peers);
        nothing once it has left."""
        if self._left:
            return
        now_ms = await self._now_ms()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._keys.instances, {self.instance_id: now_ms + self._lease_ms})
            pipe.zremrangebyscore(self._keys.instances, "-inf", now_ms - 100 * self._lease_ms)
            await pipe.execute()

    async def leave(self) -> None:
        """This instance stops: it is nobody's peer any more."""
        self._left = True
        await self._redis.zrem(self._keys.instances, self.instance_id)

    async def known_instances(self) -> list[str]:
        """Every instance Redis remembers, alive or lapsed (not long ago)."""
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
