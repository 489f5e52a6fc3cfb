"""`Hangups`: ending calls at the provider until the provider confirms it.

A call we consider ended but that is still live at the provider keeps costing money, and keeps
its WebRTC or phone leg up with nobody orchestrating it. So a hang-up is tried at once and, when
the provider cannot be reached or answers an error other than "no such call", tried again in
the background with jittered exponential backoff (honouring a 429's `Retry-After`) for up to
`retry_for_s`. Backoff and stop rules are tenacity's.

With Redis the hang-ups being retried are kept in a sorted set (`RedisKeys.hangups`; member:
the call id; score: the time by which the instance retrying it will have tried again). An instance
that dies stops pushing its scores forward; every instance looks for scores in the past and
claims them atomically, so another one carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Final

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from service.metrics import HANGUPS
from service.redis_client import redis_failures
from service.redis_keys import RedisKeys
from service.redis_reports import log_redis_failure
from signaling.ids import CallId, is_valid_call_id
from signaling.provider import CallNotFound, ProviderClient, ProviderError, ProviderRateLimited

if TYPE_CHECKING:
    from service.redis_client import RedisClient

log = logging.getLogger("callbridge.calls")

_FIRST_WAIT_S: Final = 0.5
_LONGEST_WAIT_S: Final = 30.0
# How long a claimed hang-up stays with its instance between two of its attempts: the longest
# wait plus a provider request's deadline, with room to spare.
_HOLD_S: Final = 2 * _LONGEST_WAIT_S + 30.0
_SWEEP_EVERY_S: Final = 5.0
_CLAIMS_PER_SWEEP: Final = 100

# KEYS[1]: the hang-ups. ARGV[1]: now, ARGV[2]: now + hold, ARGV[3]: how many at most.
# Claims the hang-ups whose holder missed its time: for each due member, push its score to
# ARGV[2] (now + hold) and return it. Atomic, so two instances never claim the same one.
_CLAIM_DUE: Final = """
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[3])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member)
end
return due
"""


def _worth_retrying(exc: BaseException) -> bool:
    # "No such call" is what a hang-up wants to hear; any other refusal may be passing.
    return isinstance(exc, ProviderError) and not isinstance(exc, CallNotFound)


class _Backoff:
    """Jittered exponential waits, but never shorter than a 429's `Retry-After`."""

    def __init__(self) -> None:
        self._exponential = wait_random_exponential(multiplier=_FIRST_WAIT_S, max=_LONGEST_WAIT_S)

    def __call__(self, state: RetryCallState) -> float:
        wait = float(self._exponential(state))
        outcome = state.outcome
        failure = outcome.exception() if outcome is not None else None
        if isinstance(failure, ProviderRateLimited) and failure.retry_after_s is not None:
            return max(wait, min(failure.retry_after_s, _LONGEST_WAIT_S))
        return wait


class Hangups:
    """Hangs calls up at the provider, retrying until it confirms (see the module doc)."""

    def __init__(
        self,
        provider: ProviderClient,
        *,
        retry_for_s: float,
        redis: RedisClient | None = None,
        keys: RedisKeys | None = None,
    ) -> None:
        self._provider = provider
        self._retry_for_s = retry_for_s
        self._redis = redis
        self._key = (keys or RedisKeys()).hangups
        self._retrying: dict[str, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def retrying(self) -> frozenset[str]:
        """Ids of the calls whose hang-up this instance is retrying now."""
        return frozenset(self._retrying)

    def start(self) -> None:
        """With Redis, start carrying on the hang-ups other instances left unfinished."""
        if self._redis is not None and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="hangup-sweeper")

    async def hang_up(self, call_id: CallId) -> bool:
        """Ask the provider to end `call_id` now. True once it has (or says it has no such
        call); otherwise the hang-up is retried in the background and False is returned.
        Never raises."""
        # Recorded before the first attempt: if this instance dies during it, another one
        # carries on.
        await self._remember(call_id)
        try:
            await self._provider.hangup(call_id)
        except CallNotFound:
            HANGUPS.labels(outcome="not_found").inc()
        except ProviderError as exc:
            log.warning("hang-up of %s failed (%s); retrying", call_id, exc)
            HANGUPS.labels(outcome="retried").inc()
            self._retry_soon(call_id)
            return False
        else:
            HANGUPS.labels(outcome="confirmed").inc()
        await self._forget(call_id)
        return True

    async def pending(self, call_id: str) -> bool:
        """Whether a hang-up of `call_id` is under way: here, or (with Redis) at any instance,
        one that died during it included. Raises Redis's errors (`redis_failures`)."""
        if call_id in self._retrying:
            return True
        if self._redis is None:
            return False
        return await self._redis.zscore(self._key, call_id) is not None

    async def aclose(self) -> None:
        """Stop retrying. With Redis, what is left is carried on by another instance (or this
        one once restarted); without, the calls are named in an ERROR line."""
        tasks = [t for t in (self._sweeper, *self._retrying.values()) if t is not None]
        left = sorted(self._retrying)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if left and self._redis is None:
            log.error("calls maybe still live at the provider (hang-up unconfirmed): %s", left)

    def _retry_soon(self, call_id: str) -> None:
        if call_id in self._retrying:
            return
        task = asyncio.create_task(self._retry(call_id), name=f"hangup-{call_id}")
        self._retrying[call_id] = task
        task.add_done_callback(lambda _: self._retrying.pop(call_id, None))

    async def _retry(self, call_id: str) -> None:
        retrying = AsyncRetrying(
            wait=_Backoff(),
            stop=stop_after_delay(self._retry_for_s),
            retry=retry_if_exception(_worth_retrying),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._remember(call_id)
                    await self._provider.hangup(CallId(call_id))
        except CallNotFound:
            HANGUPS.labels(outcome="not_found").inc()
        except ProviderError as exc:
            HANGUPS.labels(outcome="abandoned").inc()
            log.error(
                "gave up hanging up %s after %.0f s (%s): it may still be live at the provider",
                call_id,
                self._retry_for_s,
                exc,
            )
        else:
            HANGUPS.labels(outcome="confirmed").inc()
            log.info("hang-up of %s confirmed after retrying", call_id)
        await self._forget(call_id)

    async def _remember(self, call_id: str) -> None:
        """Record (or renew) this instance's hold on retrying `call_id`'s hang-up."""
        if self._redis is None:
            return
        try:
            await self._redis.zadd(self._key, {call_id: time.time() + _HOLD_S})
        except redis_failures() as exc:
            log_redis_failure(log, exc, "pending hang-up of %s not recorded in redis: %s", call_id)

    async def _forget(self, call_id: str) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.zrem(self._key, call_id)
        except redis_failures() as exc:
            # Left in the set, it is claimed again later, and the provider then says 404.
            log_redis_failure(
                log, exc, "finished hang-up of %s not removed from redis: %s", call_id
            )

    async def _sweep_forever(self) -> None:
        assert self._redis is not None
        claim = self._redis.register_script(_CLAIM_DUE)
        while True:
            await asyncio.sleep(_SWEEP_EVERY_S)
            now = time.time()
            try:
                due = await claim(keys=[self._key], args=[now, now + _HOLD_S, _CLAIMS_PER_SWEEP])
            except redis_failures() as exc:
                log_redis_failure(log, exc, "cannot look for unfinished hang-ups: %s")
                continue
            for call_id in due:
                if is_valid_call_id(str(call_id)):
                    log.info("carrying on the unfinished hang-up of %s", call_id)
                    self._retry_soon(str(call_id))
                else:
                    await self._forget(str(call_id))
