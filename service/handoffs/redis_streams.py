"""The Redis Streams queue: handoffs shared by workers on many hosts, results routed per instance.

Keys (names and hash slots in `service.redis_keys`; all in the ownership slot, as the scripts
below take several at once):

- the handoff stream — one entry per handoff (`delegation` JSON, `reply_to`), read by the
  consumer group `group`. Acknowledged entries are deleted, so the stream holds only handoffs
  that are waiting or in flight.
- a handoff's mark — set as the handoff is appended, and kept `handoff_deadline_ms` (as long
  as its owner waits for its result) plus `MARK_MARGIN_MS`: a successor queues the handoffs its
  predecessor left without a result again (the predecessor may have died before they reached
  Redis), and the mark keeps one that had from being appended twice, answered or not.
- the dead letters — handoffs given up on, with the reason.
- an instance's results — worker events for the calls it owns, read by its consumer group
  `owner`, so that events published while the instance was not reading wait for it. An answer
  (a `failed` one for a handoff given up on too) finds the call, not the instance: it is routed
  by the call's owner read from its lease (`service.calls.lease`) in the same script that
  appends. With no lease (the owner died and nobody has claimed the call yet) the event goes to
  the instance that asked, `reply_to`; the successor's `reroute` moves it over, with any the
  previous owners never consumed. Whatever writes an instance's results makes sure that the
  instance is among the instances (lapsed as of now, if it was forgotten), where successors
  look for results and the clean-up forgets gone instances with theirs.
- a call's parked events — events an instance received for a call it no longer runs while no
  other instance holds the lease (`forward`); also moved by `reroute`. Expires
  `parked_ttl_ms` after the last event.

A script is given every key it touches (a Redis Cluster requires it), so the routing script
is given the results stream of the owner its caller expects (the instance that asked, almost
always right): when the lease names another, it appends nothing and names that owner, and
the caller runs it again with that owner's stream.

The handoff group's consumers are the workers (`worker-<host name>-<pid>`, `<instance>-worker`),
and a consumer stays in the group until deleted, so each one started adds one. A consumer is
deleted when its worker stops (`leave`), and consumers of workers that died are deleted by the
live workers, once idle for `FORGET_AFTER_CLAIMS` claim idle times; either way only a consumer
with no pending entries, in the script that looks (`_FORGET`), as its pending entries are what
lets another worker claim its handoffs.

A job's `delivery` is Redis' own per-entry delivery counter (XPENDING `times_delivered`) and its
`token` is the stream entry id, so both stay right across workers and processes.

Handoffs, events and acknowledgements go through one `CommandBatcher`: those made while a round
trip is under way share the next one, so a busy worker or instance writes to Redis once for many.
A result and its handoff's acknowledgement are one script (`complete`), as are a handoff's
move to the dead letters and its `failed` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any, Final

import orjson
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, FieldT

from service.handoffs.queue import MAX_DELIVERIES, HandoffEvent, HandoffJob, QueueUnavailable
from service.redis_batch import Command, CommandBatcher
from service.redis_client import (
    BACKOFF_MAX_S,
    BACKOFF_MIN_S,
    NOW_MS_LUA,
    redis_client,
    redis_failures,
    redis_now_ms,
    redis_refusal,
    redis_waited_out,
)
from service.redis_keys import RESULTS_GROUP, RedisKeys
from service.redis_reports import log_redis_failure, redis_trouble
from signaling.realtime import Delegation

log = logging.getLogger("callbridge.queue")

# Errors meaning "Redis cannot serve us right now" (unreachable, or refusing our credentials),
# as opposed to Redis refusing a command.
_WAITED_OUT: Final = redis_waited_out()
_FAILURES: Final = redis_failures()
_PING_TIMEOUT_S: Final = 1.0
_EVENTS_BATCH: Final = 100
_SWEEP_DONE: Final = "0-0"

# KEYS[4]: the instances. Called by every script that writes an instance's results: one that
# has gone and was forgotten (or that Redis lost) is made known again, lapsed as of now, so that
# no results stream is left where neither a successor nor the clean-up looks
# (`service.calls.lease`).
_KNOWN_FUNCTION: Final = (
    NOW_MS_LUA
    + """
local function known(instance)
    if not redis.call('ZSCORE', KEYS[4], instance) then
        redis.call('ZADD', KEYS[4], now_ms() - 1, instance)
    end
end
"""
)

# KEYS[1]: the call's lease, KEYS[2]: its parked stream, KEYS[3]: the results of instance
# ARGV[1], where the caller expects the owner to be ("" for nowhere), KEYS[4]: the instances.
# ARGV[2]: an instance not to route to ("" for none), ARGV[3]: maxlen, ARGV[4]: parked TTL ms,
# ARGV[5]: the asking instance ("" for none), then the entry's fields from ARGV[fields].
# Returns "" once the entry is appended (to KEYS[3], or parked), else the owner whose results
# the caller must give as KEYS[3] instead. In a script, so routing and a change of owner never
# interleave, nor routing and the owner being forgotten.
_ROUTE_FUNCTION: Final = (
    _KNOWN_FUNCTION
    + """
local function route(fields)
    local owner = redis.call('GET', KEYS[1])
    if not owner and ARGV[5] ~= '' then
        owner = ARGV[5]
    end
    if owner and owner ~= ARGV[2] then
        if owner ~= ARGV[1] then
            return owner
        end
        known(owner)
        redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, fields))
        return ''
    end
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, fields))
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
    return ''
end
"""
)
_ROUTE: Final = _ROUTE_FUNCTION + "return route(6)"
# As `_ROUTE`, and then KEYS[5]: the handoffs stream, ARGV[6]: its consumer group, ARGV[7]: the
# handoff's entry, acknowledged and deleted once its result is on its way; fields from ARGV[8].
_COMPLETE: Final = (
    _ROUTE_FUNCTION
    + """
local owner = route(8)
if owner == '' then
    redis.call('XACK', KEYS[5], ARGV[6], ARGV[7])
    redis.call('XDEL', KEYS[5], ARGV[7])
end
return owner
"""
)
# As `_COMPLETE`, for a handoff given up on: and KEYS[6]: the dead letters, ARGV[8]: how many
# of the dead letter's field names and values follow it; the event's fields after them. The
# handoff's entry moves to the dead letters as its `failed` event is on its way.
_BURY: Final = (
    _ROUTE_FUNCTION
    + """
local letter = tonumber(ARGV[8])
local owner = route(9 + letter)
if owner == '' then
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 9, 8 + letter))
    redis.call('XACK', KEYS[5], ARGV[6], ARGV[7])
    redis.call('XDEL', KEYS[5], ARGV[7])
end
return owner
"""
)

# KEYS[1]: the handoff stream, KEYS[2]: the handoff's mark. ARGV[1]: maxlen, ARGV[2]: the
# mark's TTL ms, then the entry's fields. Appends the handoff unless its mark says it was
# appended already; returns 1 if it did, else 0.
_ADD: Final = """
if not redis.call('SET', KEYS[2], '', 'NX', 'PX', ARGV[2]) then
    return 0
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))
return 1
"""

# KEYS[1]: a stream. ARGV[1]: its consumer group, then entry ids. Acknowledges and deletes the
# entries together, so that the stream never keeps an acknowledged one.
_DONE: Final = """
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
return redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
"""

# KEYS[1]: the call's lease, KEYS[2]: its parked stream, KEYS[3]: the results of ARGV[1], the
# call's owner as the caller read it, KEYS[4]: the instances, KEYS[5...]: other instances'
# results. ARGV[2]: call id, ARGV[3]: maxlen, ARGV[4]: the owners' group. Moves the call's
# events from all of them to KEYS[3] and returns how many; -1 (nothing moved) when the lease no
# longer names ARGV[1]: the instance it names now moves them when it takes the call.
_REROUTE: Final = (
    _KNOWN_FUNCTION
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return -1
end
local moved = 0
for k = 5, #KEYS do
    for _, entry in ipairs(redis.call('XRANGE', KEYS[k], '-', '+')) do
        local fields = entry[2]
        for i = 1, #fields, 2 do
            if fields[i] == 'call_id' and fields[i + 1] == ARGV[2] then
                redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
                redis.pcall('XACK', KEYS[k], ARGV[4], entry[1])
                redis.call('XDEL', KEYS[k], entry[1])
                moved = moved + 1
            end
        end
    end
end
for _, entry in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(entry[2]))
    moved = moved + 1
end
redis.call('DEL', KEYS[2])
if moved > 0 then
    known(ARGV[1])
end
return moved
"""
)
# KEYS[1]: the handoff stream. ARGV[1]: its consumer group, ARGV[2]: how long (ms) a consumer
# must have been idle, ARGV[3]: the one consumer to look at ("" for all). Deletes those with no
# pending entries and returns their names (none when Redis lost the stream or the group, and
# the consumers with them). In a script, so that nothing is delivered to a consumer between the
# look at its pending count and its deletion: DELCONSUMER drops the consumer's pending entries,
# the only record of handoffs it took and never answered, which nobody could claim then.
_FORGET: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then
    return {}
end
local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if consumers['err'] then
    if string.sub(consumers['err'], 1, 8) == 'NOGROUP ' then
        return {}
    end
    return consumers
end
local forgotten = {}
for _, consumer in ipairs(consumers) do
    local info = {}
    for i = 1, #consumer, 2 do
        info[consumer[i]] = consumer[i + 1]
    end
    if (ARGV[3] == '' or info['name'] == ARGV[3]) and info['pending'] == 0
            and info['idle'] >= tonumber(ARGV[2]) then
        redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
        forgotten[#forgotten + 1] = info['name']
    end
end
return forgotten
"""

FORGET_AFTER_CLAIMS: Final = 4
"""A consumer of the handoff group with no pending entries is deleted once idle this many
claim idle times (`RedisStreamQueue.forget_idle_ms`).

Claim idle times, because that is how long this deployment lets a worker be silent about a
handoff before it counts the worker as dead (it outlasts the handler timeout). A live worker's
consumer is never idle that long: while it runs handoffs it has pending entries, which keep
it, and while it has room it reads every `block_ms`, which resets its idle time on Redis 7.2
and later (https://redis.io/docs/latest/commands/xinfo-consumers/). Before 7.2 only a read that
returns entries does, so a live worker left without work may lose its consumer; its next read
creates it again, and as it held nothing, nothing is lost. Several rather than one, so that a
worker merely stalled (a long pause, a partition from Redis it waits out) keeps its consumer;
no more, so that the consumers of workers gone are few: those of the last 4 to 5 claim idle
times (6 to 7.5 minutes with the defaults)."""

# How many times a worker event is routed, its call changing owners between each: more than
# one change during one round trip is already unheard of.
_ROUTE_ATTEMPTS: Final = 4

MARK_MARGIN_MS: Final = 60_000
"""How much longer than the handoff deadline a handoff's mark is kept: the deadline runs on the
owner's clock, the mark's TTL on Redis', and a successor decides to queue again a moment before
it appends."""

_Entry = tuple[str, dict[str, str] | None]
_Fields = dict[FieldT, EncodableT]
# A handoff's id and stream entry fields.
_Handoff = tuple[str, _Fields]


class RedisStreamQueue:
    """`HandoffQueue` on Redis Streams consumer groups; see the module docstring for the keys."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        keys: RedisKeys | None = None,
        group: str = "workers",
        claim_idle_ms: int = 30000,
        max_deliveries: int = MAX_DELIVERIES,
        maxlen: int = 100000,
        buffer_limit: int = 1000,
        block_ms: int = 1000,
        parked_ttl_ms: int = 3_600_000,
        handoff_deadline_ms: int = 3_600_000,
    ) -> None:
        if (
            min(claim_idle_ms, max_deliveries, maxlen, block_ms, handoff_deadline_ms) < 1
            or buffer_limit < 0
        ):
            raise ValueError("queue limits must be positive (buffer_limit may be 0)")
        self._redis = redis_client(url, longest_block_ms=block_ms)
        self._keys = keys or RedisKeys()
        self._handoffs = self._keys.handoffs
        self._parked_ttl_ms = parked_ttl_ms
        self._handoff_deadline_ms = handoff_deadline_ms
        self._reroute = self._redis.register_script(_REROUTE)
        self._forget = self._redis.register_script(_FORGET)
        self._batch = CommandBatcher(self._redis)
        self._group = group
        self._claim_idle_ms = claim_idle_ms
        self._max_deliveries = max_deliveries
        self._maxlen = maxlen
        self._buffer_limit = buffer_limit
        self._block_ms = block_ms
        self._buffer: deque[_Handoff] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        # Set by `fail`/`release`: a job was just made claimable, so the next read sweeps first.
        self._claimable = False

    @property
    def forget_idle_ms(self) -> int:
        """How long a consumer with no pending entries may be idle before the live workers
        delete it (`FORGET_AFTER_CLAIMS` claim idle times)."""
        return FORGET_AFTER_CLAIMS * self._claim_idle_ms

    @property
    def buffered(self) -> int:
        """Handoffs held locally until Redis answers again."""
        return len(self._buffer)

    # Producing

    async def put(self, delegation: Delegation, reply_to: str) -> None:
        """Queue a handoff; while Redis is unreachable, hold it locally (up to `buffer_limit`).
        A handoff id appended within the last `handoff_deadline_ms` (plus `MARK_MARGIN_MS`) is
        not appended again.

        Raises `QueueUnavailable` when the local buffer is full, the queue is closed, or Redis
        refuses the write.
        """
        if self._closed.is_set():
            raise QueueUnavailable("the handoff queue is closed")
        handoff = (delegation.handoff_id, _handoff_fields(delegation, reply_to))
        if self._buffer:
            # Handoffs already waiting for Redis go first: a newer one must not overtake them.
            self._hold(handoff)
            return
        try:
            await self._add_handoff(handoff)
        except _WAITED_OUT as exc:
            log_redis_failure(log, exc, "redis unreachable, holding the handoff locally: %s")
            self._hold(handoff)
        except RedisError as exc:
            raise QueueUnavailable(f"redis refused the handoff: {exc}") from exc

    def _hold(self, handoff: _Handoff) -> None:
        if len(self._buffer) >= self._buffer_limit:
            raise QueueUnavailable(
                f"redis is unreachable and {len(self._buffer)} handoffs are already waiting"
            )
        self._buffer.append(handoff)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="redis-queue-flush")

    async def _flush(self) -> None:
        delay = BACKOFF_MIN_S
        while self._buffer and not self._closed.is_set():
            try:
                await self._add_handoff(self._buffer[0])
            except _FAILURES as exc:
                # Refusals (e.g. out of memory) are retried too: they may pass, and dropping
                # the handoff would leave its tool call without an output.
                log.debug("buffered handoffs still waiting for redis: %s", exc)
                await self._pause(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            self._buffer.popleft()
            delay = BACKOFF_MIN_S
        if not self._buffer:
            log.info("buffered handoffs sent to redis")

    async def _add_handoff(self, handoff: _Handoff) -> None:
        # Batched: many calls handing off at once share a round trip.
        handoff_id, fields = handoff
        await self._run_script(
            _ADD,
            [self._handoffs, self._keys.handoff_mark(handoff_id)],
            [
                self._maxlen,
                self._handoff_deadline_ms + MARK_MARGIN_MS,
                *_flat(fields),
            ],
        )

    # Consuming

    async def jobs(
        self, consumer: str, *, capacity: Callable[[], int] | None = None
    ) -> AsyncGenerator[HandoffJob, None]:
        """Handoffs for `consumer`: reclaimed ones first, then new ones; ends when closed.

        `capacity()` is how many jobs the caller can start at once right now (default 1):
        new entries are read up to that many per XREADGROUP, so that none waits here, growing
        idle towards being reclaimed by another consumer. Idle entries are swept (XAUTOCLAIM)
        when a read times out, when this queue has just made a job claimable (`fail`,
        `release`), and otherwise at least every `block_ms` while new work keeps coming. At the
        start and then every `claim_idle_ms`, consumers with no pending entries idle for
        `forget_idle_ms` (their workers are gone) are deleted.

        An entry whose delivery count exceeds `max_deliveries` (its workers kept dying) is
        not yielded again: it is dead-lettered and its owner is sent a `failed` event.
        Connection errors are waited out, and a consumer group lost in a Redis restart is
        created again.
        """
        cursor = _SWEEP_DONE
        sweep_at = 0.0
        forget_at = 0.0
        group_missing = False
        delay = BACKOFF_MIN_S
        while not self._closed.is_set():
            _raise_if_cancelled()
            try:
                if group_missing:
                    await self._create_group(self._handoffs, self._group)
                    group_missing = False
                if time.monotonic() >= forget_at:
                    forget_at = time.monotonic() + self._claim_idle_ms / 1000
                    await self._forget_idle_consumers()
                claimed: HandoffJob | None = None
                if cursor != _SWEEP_DONE or self._claimable or time.monotonic() >= sweep_at:
                    self._claimable = False
                    claimed, cursor = await self._claim_one(consumer, cursor)
                    if cursor == _SWEEP_DONE:
                        sweep_at = time.monotonic() + self._block_ms / 1000
                batch: list[HandoffJob | None] = []
                if claimed is not None:
                    batch = [claimed]
                elif cursor == _SWEEP_DONE:
                    count = max(1, capacity()) if capacity is not None else 1
                    batch = await self._read_new(consumer, count)
                    if not batch:
                        sweep_at = 0.0
            except _WAITED_OUT as exc:
                if self._closed.is_set():
                    return
                log_redis_failure(log, exc, "redis unreachable, consumer %s waiting: %s", consumer)
                cursor = _SWEEP_DONE
                sweep_at = 0.0
                await self._pause(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            except ResponseError as exc:
                if not _is_nogroup(exc):
                    raise
                cursor = _SWEEP_DONE
                sweep_at = 0.0
                group_missing = True
                continue
            delay = BACKOFF_MIN_S
            for job in batch:
                if job is not None:
                    yield job

    async def _forget_idle_consumers(self) -> None:
        """Delete the consumers of workers gone: no pending entries, idle `forget_idle_ms`."""
        try:
            forgotten = await self._forget(
                keys=[self._handoffs], args=[self._group, self.forget_idle_ms, ""]
            )
        except ResponseError as exc:
            # Housekeeping: Redis refusing it (our user may not run XINFO, say) must not stop
            # the consuming. An outage is not caught: the consumer waits it out.
            log_redis_failure(log, exc, "could not delete idle consumers: %s")
            return
        if forgotten:
            log.debug("deleted %d idle consumers with no pending handoffs", len(forgotten))

    async def _claim_one(self, consumer: str, cursor: str) -> tuple[HandoffJob | None, str]:
        """One step of a sweep: claim one idle entry (None when there is none at `cursor`)."""
        # One entry at a time: whatever a consumer claims but has not yet handed to its worker
        # grows idle and would be claimed again by someone else.
        cursor, claimed, trimmed = await self._redis.xautoclaim(
            self._handoffs, self._group, consumer, self._claim_idle_ms, cursor, count=1
        )
        if trimmed:
            log.error(
                "%d pending handoffs were trimmed away (maxlen) before an answer", len(trimmed)
            )
        if not claimed:
            return None, cursor
        entry_id, fields = claimed[0]
        delivery = await self._times_delivered(entry_id)
        if delivery is None:
            # Acknowledged by its slow first worker between our claim and this look-up.
            return None, cursor
        return await self._admit(entry_id, fields, delivery), cursor

    async def _read_new(self, consumer: str, count: int) -> list[HandoffJob | None]:
        """Up to `count` new entries (waiting up to `block_ms` for the first); None for an entry
        that was dead-lettered as unreadable."""
        reply = await self._redis.xreadgroup(
            self._group, consumer, {self._handoffs: ">"}, count=count, block=self._block_ms
        )
        return [await self._admit(entry_id, fields, 1) for entry_id, fields in _entries(reply)]

    async def _times_delivered(self, entry_id: str) -> int | None:
        rows = await self._redis.xpending_range(
            self._handoffs, self._group, min=entry_id, max=entry_id, count=1
        )
        return int(rows[0]["times_delivered"]) if rows else None

    async def _admit(
        self, entry_id: str, fields: dict[str, str] | None, delivery: int
    ) -> HandoffJob | None:
        """The job for an entry, or None when the entry was dead-lettered instead."""
        fields = fields or {}
        try:
            job = HandoffJob(
                Delegation.from_json(orjson.loads(fields["delegation"])),
                fields["reply_to"],
                delivery,
                entry_id,
            )
        except (KeyError, ValueError) as exc:
            log.error("unreadable handoff entry %s dead-lettered: %s", entry_id, exc)
            await self._bury(
                entry_id,
                fields.get("delegation", ""),
                fields.get("reply_to", ""),
                delivery,
                f"unreadable handoff entry: {exc}",
            )
            return None
        if delivery <= self._max_deliveries:
            return job
        reason = f"the handoff was delivered {delivery - 1} times and never answered"
        log.warning("handoff %s dead-lettered: %s", job.delegation.handoff_id, reason)
        failed = HandoffEvent.for_job(job, "failed", reason, dead=True)
        await self._bury(
            entry_id, fields["delegation"], job.reply_to, delivery, reason, tell=failed
        )
        return None

    async def _bury(
        self,
        entry_id: str,
        delegation_json: str,
        reply_to: str,
        delivery: int,
        reason: str,
        *,
        tell: HandoffEvent | None = None,
    ) -> None:
        """Move an entry to the dead-letter stream and `tell` its call's owner (routed as
        `publish` routes, so it reaches whoever holds the call now), in one script."""
        dead: _Fields = {
            "entry_id": entry_id,
            "delegation": delegation_json,
            "reply_to": reply_to,
            "delivery": delivery,
            "reason": reason,
        }
        if tell is None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xadd(self._keys.dead, dead, maxlen=self._maxlen, approximate=True)
                pipe.xack(self._handoffs, self._group, entry_id)
                pipe.xdel(self._handoffs, entry_id)
                await pipe.execute()
            return
        letter = [part for pair in dead.items() for part in pair]
        fields = _flat_event_fields(tell)
        await self._route(
            tell.call_id,
            reply_to,
            lambda owner: self._run_script(
                _BURY,
                [*self._route_keys(tell.call_id, owner), self._handoffs, self._keys.dead],
                [
                    *self._route_args(owner, reply_to, ""),
                    self._group,
                    entry_id,
                    len(letter),
                    *letter,
                    *fields,
                ],
            ),
        )

    async def ack(self, job: HandoffJob) -> None:
        """Done: acknowledge and delete the entry (together, in a script).

        Acknowledgements and events made while others are on their way to Redis travel
        together in the next round trip. If Redis is unreachable the entry stays pending and
        is redelivered after `claim_idle_ms`; the owner takes only the first result of a tool
        call.
        """
        try:
            await self._run_script(_DONE, [self._handoffs], [self._group, job.token])
        except _WAITED_OUT as exc:
            log_redis_failure(log, exc, "could not acknowledge handoff %s: %s", job.token)

    async def fail(self, job: HandoffJob, message: str) -> bool:
        """Dead-letter the job at `max_deliveries` (True), else make it claimable at once (False).

        The caller publishes the `failed` event for a dead job. If Redis is unreachable the
        entry stays pending, is reclaimed after `claim_idle_ms` with the next delivery count,
        and is dead-lettered then if that is over the limit.
        """
        try:
            if job.delivery >= self._max_deliveries:
                delegation_json = orjson.dumps(job.delegation.to_json()).decode()
                await self._bury(job.token, delegation_json, job.reply_to, job.delivery, message)
                return True
            await self._make_claimable(job, keep_delivery=False)
        except _WAITED_OUT as exc:
            log_redis_failure(log, exc, "could not record the failure of handoff %s: %s", job.token)
        return False

    async def release(self, job: HandoffJob) -> None:
        """Give an unprocessed job back: claimable at once, and this delivery does not count."""
        try:
            await self._make_claimable(job, keep_delivery=True)
        except _WAITED_OUT as exc:
            log_redis_failure(
                log, exc, "could not release handoff %s; reclaimed once idle: %s", job.token
            )

    async def leave(self, consumer: str) -> None:
        """Delete `consumer` from the group unless it has pending entries (in one script): its
        worker has stopped. Entries given back (`release`) keep it until another worker claims
        them; then the clean-up of idle consumers in `jobs` deletes it. Redis failing is logged,
        and left to that clean-up too."""
        try:
            forgotten = await self._forget(keys=[self._handoffs], args=[self._group, 0, consumer])
        except _FAILURES as exc:
            log_redis_failure(log, exc, "could not delete consumer %s: %s", consumer)
            return
        if not forgotten:
            # Or Redis never made it: Redis 7.0 makes none for a read that returns nothing.
            log.debug("consumer %s not deleted: it holds handoffs given back", consumer)

    async def _make_claimable(self, job: HandoffJob, *, keep_delivery: bool) -> None:
        """Backdate the entry's last delivery by `claim_idle_ms` so the next XAUTOCLAIM takes it.

        The entry stays pending, so Redis' delivery counter goes on: the next claim adds one,
        unless `keep_delivery` first winds the counter back by one.
        """
        try:
            rows = await self._redis.xpending_range(
                self._handoffs, self._group, min=job.token, max=job.token, count=1
            )
        except ResponseError as exc:
            if _is_nogroup(exc):
                return  # Redis lost the group and the entry with it.
            raise
        if not rows:
            return  # Already acknowledged or dead-lettered.
        await self._redis.xclaim(
            self._handoffs,
            self._group,
            str(rows[0]["consumer"]),
            0,
            [job.token],
            idle=self._claim_idle_ms,
            retrycount=job.delivery - 1 if keep_delivery else None,
            justid=True,
        )
        self._claimable = True

    # Results

    async def publish(self, reply_to: str, event: HandoffEvent) -> None:
        """Append a worker event to the results of the call's current owner (or park it while
        the call has none). `reply_to` is where the call was when it asked; the lease decides."""
        await self._publish(event, reply_to=reply_to, not_to="")

    async def forward(self, event: HandoffEvent, *, not_to: str) -> None:
        """Route `event` to its call's owner unless that is `not_to` (an instance that no longer
        runs the call, though its lease may still name it): then it is parked for the
        successor's `reroute`."""
        await self._publish(event, reply_to="", not_to=not_to)

    async def _publish(self, event: HandoffEvent, *, reply_to: str, not_to: str) -> None:
        fields = _flat_event_fields(event)
        await self._route(
            event.call_id,
            reply_to,
            lambda owner: self._run_script(
                _ROUTE,
                self._route_keys(event.call_id, owner),
                [*self._route_args(owner, reply_to, not_to), *fields],
            ),
        )

    async def complete(self, job: HandoffJob, result: HandoffEvent) -> None:
        """`publish` the job's `result`, then acknowledge and delete its entry, in one script:
        a handoff is never acknowledged without its result. Raises as `publish`; the entry then
        stays pending and is redelivered after `claim_idle_ms` (the owner takes only the first
        result of a tool call)."""
        fields = _flat_event_fields(result)
        await self._route(
            result.call_id,
            job.reply_to,
            lambda owner: self._run_script(
                _COMPLETE,
                [*self._route_keys(result.call_id, owner), self._handoffs],
                [*self._route_args(owner, job.reply_to, ""), self._group, job.token, *fields],
            ),
        )

    async def _route(
        self, call_id: str, expected: str, run: Callable[[str], Awaitable[Any]]
    ) -> None:
        """Run a routing script (`run(owner)`) expecting the call's owner to be `expected`
        ("" for nowhere), and again with the owner it names instead, until it appends. Raises
        `QueueUnavailable` when the owner keeps changing."""
        owner = expected
        for _ in range(_ROUTE_ATTEMPTS):
            named = str(await run(owner))
            if not named:
                return
            owner = named
        raise QueueUnavailable(f"call {call_id} kept changing owners while its event was routed")

    def _route_keys(self, call_id: str, owner: str) -> list[str]:
        parked = self._keys.parked(call_id)
        # Nowhere expected: the script only names the owner, and never writes the third key.
        results = self._keys.results(owner) if owner else parked
        return [self._keys.lease(call_id), parked, results, self._keys.instances]

    def _route_args(self, owner: str, reply_to: str, not_to: str) -> list[EncodableT]:
        return [owner, not_to, self._maxlen, self._parked_ttl_ms, reply_to]

    async def _run_script(self, script: str, keys: list[str], args: list[EncodableT]) -> Any:
        """Run `script` in the next batch. By its text, not its digest: Redis caches it all
        the same, and a restarted Redis that forgot it cannot answer NOSCRIPT in the middle of
        a batch."""
        return await self._batch.run(lambda client: client.eval(script, len(keys), *keys, *args))

    async def reroute(self, call_id: str, previous_owners: Sequence[str]) -> int:
        """Move `call_id`'s events parked, or left unconsumed at any of `previous_owners`, to
        its current owner's results (in one script); returns how many moved (0 when the call
        has no owner, or has changed owners meanwhile: its new owner moves them)."""
        owner = await self._redis.get(self._keys.lease(call_id))
        if owner is None:
            return 0
        sources = [self._keys.results(o) for o in previous_owners if o != owner]
        moved = await self._reroute(
            keys=[*self._route_keys(call_id, str(owner)), *sources],
            args=[str(owner), call_id, self._maxlen, RESULTS_GROUP],
        )
        return max(0, int(moved))

    async def events(self, reply_to: str) -> AsyncGenerator[HandoffEvent, None]:
        """Events for `reply_to`, in order, each acknowledged (and deleted) once the caller asks
        for the next: the acknowledgement goes with this queue's next batch of commands, and is
        waited for before reading more.

        Starts with events handed out earlier but never acknowledged (the previous reader
        stopped), then new ones; survives Redis restarts like `jobs`; ends when closed.
        """
        key = self._keys.results(reply_to)
        fetched: deque[_Entry] = deque()
        acks: list[asyncio.Future[Any]] = []
        # Pending entries come first; after a dropped connection too, as the reply to a read
        # may have been lost on the way while Redis counts its entries as delivered.
        backlog = True
        group_missing = False
        delay = BACKOFF_MIN_S
        while not self._closed.is_set():
            try:
                if group_missing:
                    await self._create_results(reply_to)
                    group_missing = False
                if not fetched:
                    _raise_if_cancelled()
                    if acks:
                        # An acknowledgement that failed leaves its entry pending: the backlog
                        # read after the outage hands it out again.
                        sent, acks = acks, []
                        await asyncio.gather(*sent)
                    reply = await self._redis.xreadgroup(
                        RESULTS_GROUP,
                        RESULTS_GROUP,
                        {key: "0" if backlog else ">"},
                        count=_EVENTS_BATCH,
                        block=None if backlog else self._block_ms,
                    )
                    fetched.extend(_entries(reply))
                    backlog = backlog and bool(fetched)
                    delay = BACKOFF_MIN_S
                    continue
            except _WAITED_OUT as exc:
                if self._closed.is_set():
                    return
                log_redis_failure(
                    log, exc, "redis unreachable, events for %s waiting: %s", reply_to
                )
                backlog = True
                await self._pause(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            except ResponseError as exc:
                if not _is_nogroup(exc):
                    raise
                group_missing = True
                continue
            entry_id, fields = fetched.popleft()
            event = _parse_event(entry_id, fields)
            if event is not None:
                yield event
            acks.append(self._batch.submit(_acknowledge_event(key, entry_id)))

    # Operations

    async def depth(self) -> int:
        """Handoffs in Redis, waiting or in flight; `QueueUnavailable` when Redis is unreachable.

        The stream length is exact because acknowledged and dead-lettered entries are deleted.
        Handoffs held locally are counted by `buffered` instead.
        """
        try:
            return int(await self._redis.xlen(self._handoffs))
        except _WAITED_OUT as exc:
            raise QueueUnavailable(redis_trouble(exc)) from exc

    async def unavailable(self) -> str | None:
        """None when Redis answers a PING within a second, else why not: it refuses our
        credentials or permissions (`redis_refusal`), or does not answer."""
        try:
            await asyncio.wait_for(self._redis.ping(), _PING_TIMEOUT_S)
        except TimeoutError:
            return f"redis did not answer a PING within {_PING_TIMEOUT_S:g} s"
        except _FAILURES as exc:
            return redis_refusal(exc) or "redis does not answer"
        return None

    async def aclose(self) -> None:
        """Stop the flusher, end `jobs`/`events` loops, and close the connection pool."""
        self._closed.set()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            if self._buffer:
                log.warning("queue closed with %d handoffs never sent to redis", len(self._buffer))
        # Commands on their way (acknowledgements, events, handoffs) are sent before the pool
        # goes.
        await self._batch.aclose()
        # Closing the pool also drops connections blocked in XREADGROUP, waking their loops.
        await self._redis.aclose()

    # Helpers

    async def _create_group(self, key: str, group: str) -> None:
        """Create `group` reading `key` from its start (entries added while it was missing)."""
        try:
            await self._redis.xgroup_create(key, group, id="0", mkstream=True)
        except ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise

    async def _create_results(self, instance: str) -> None:
        """Create `instance`'s results with their group (`_create_group`), once the instance
        is known, as every script writing its results makes sure (`_KNOWN_FUNCTION`): a reader
        that outlives its instance's departure must not leave a stream nobody finds."""
        now_ms = await redis_now_ms(self._redis, self._keys.instances)
        # Lapsed, unless it is there already (alive: its heartbeat keeps it so).
        await self._redis.zadd(self._keys.instances, {instance: now_ms - 1}, nx=True)
        await self._create_group(self._keys.results(instance), RESULTS_GROUP)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the queue is closed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)


def _acknowledge_event(key: str, entry_id: str) -> Command:
    return lambda client: client.eval(_DONE, 1, key, RESULTS_GROUP, entry_id)


def _raise_if_cancelled() -> None:
    """Raise `CancelledError` if this task was cancelled but the cancellation was lost.

    On Python 3.11 redis-py's socket writes go through `asyncio.wait_for`, which drops a
    cancellation that arrives just as the write completes
    (https://github.com/python/cpython/issues/86296); a loop that goes on reading would then
    never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _is_nogroup(exc: ResponseError) -> bool:
    return str(exc).startswith("NOGROUP")


def _entries(reply: Any) -> list[_Entry]:
    """The entries of a one-stream XREADGROUP reply (empty when it timed out)."""
    if not reply:
        return []
    entries: list[_Entry] = reply[0][1]
    return entries


def _handoff_fields(delegation: Delegation, reply_to: str) -> _Fields:
    return {"delegation": orjson.dumps(delegation.to_json()), "reply_to": reply_to}


def _event_fields(event: HandoffEvent) -> _Fields:
    # `call_id` beside the event, so a successor can pick its call's events out of a stream.
    return {"event": orjson.dumps(event.to_json()), "call_id": event.call_id}


def _flat_event_fields(event: HandoffEvent) -> list[EncodableT]:
    return _flat(_event_fields(event))


def _flat(fields: _Fields) -> list[EncodableT]:
    """A stream entry's field names and values in turn, as a script's arguments."""
    return [part for pair in fields.items() for part in pair]


def _parse_event(entry_id: str, fields: dict[str, str] | None) -> HandoffEvent | None:
    try:
        data = orjson.loads((fields or {})["event"])
        if not isinstance(data, dict):
            raise ValueError("a handoff event must be a JSON object")
        return HandoffEvent.from_json(data)
    except (KeyError, ValueError) as exc:
        log.error("unreadable handoff event %s dropped: %s", entry_id, exc)
        return None
