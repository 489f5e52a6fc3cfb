"""`CallDirectory`: which instance owns each call, and control requests between instances.

Several orchestrator instances share one Redis. A call lives on the instance that started it:
its sideband, its state machine and its workers' results are there. An API request for the call
may reach any instance, so that instance looks the owner up here and asks it to act.

Keys (names and hash slots in `service.redis_keys`):

- the call's lease — the owning instance's id (`CallLeases`). It expires after `ttl_s` unless
  renewed, so that another instance can take over the calls of one that died; a renewal never
  takes a call back from the instance that took it over.
- an instance's control stream — control requests for that instance.
- an instance's control-replies stream — replies to its requests, matched to the waiting
  request by its `request_id`.

Both streams are trimmed, and expire when unused so that those of departed instances go too.
They are read with plain XREAD rather than a consumer group: a control request is worth
carrying out only while its requester still waits for the answer, so it must never be
redelivered later (a hang-up replayed minutes after it timed out would surprise everyone).
Each request carries its timeout, and the owner drops requests older than that by the clock of
the Redis node holding its control stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from service.calls.lease import CallLeases
from service.redis_client import (
    BACKOFF_MAX_S,
    BACKOFF_MIN_S,
    redis_client,
    redis_failures,
    redis_now_ms,
)
from service.redis_keys import RedisKeys
from service.redis_reports import (
    REPEAT_S,
    RepeatedReports,
    log_redis_failure,
    redis_trouble,
)

if TYPE_CHECKING:
    from redis.typing import EncodableT, FieldT

    _Fields = dict[FieldT, EncodableT]

log = logging.getLogger("callbridge.directory")

_BLOCK_MS: Final = 2000
_READ_BATCH: Final = 100
_STREAM_MAXLEN: Final = 1000
# A control stream outlives any request in it by far; an idle one belongs to a departed
# instance (or one nobody has asked anything for a while) and may go.
_STREAM_IDLE_S: Final = 3600.0
_STREAM_START: Final = "0-0"

_Entry = tuple[str, dict[str, str]]


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """An operation on a call, asked of the call's owner by another instance.

    `reply_to` is the requesting instance's id.
    """

    op: str
    call_id: str
    body: dict[str, Any]
    request_id: str
    reply_to: str


@dataclass(frozen=True, slots=True)
class ControlReply:
    """The owner's answer: an HTTP-like status and a JSON body."""

    status: int
    body: dict[str, Any]


ControlHandler = Callable[[ControlRequest], Awaitable[ControlReply]]
# Told the calls whose lease another instance holds now, and those whose lease had vanished
# and was written again.
LeaseListener = Callable[[set[str], set[str]], None]


class DirectoryUnavailable(Exception):
    """Redis cannot be reached (or the directory is closed): ownership cannot be decided."""


class ControlTimeout(Exception):
    """The owner did not answer a control request in time (it may be gone)."""


class CallDirectory:
    """The shared call registry and this instance's end of the control channel.

    `instance_id` is this instance's id; `ttl_s` how long a registration lives unrefreshed.
    Register/unregister/refresh never raise for a Redis outage: the calls registered here are
    remembered, and `start`'s background refresh writes them again once Redis answers (also
    after a Redis restart lost them). `owner_of` and `request` do raise, as their callers must
    answer someone now.
    """

    def __init__(
        self, url: str, instance_id: str, *, keys: RedisKeys | None = None, ttl_s: float = 60.0
    ) -> None:
        if not instance_id:
            raise ValueError("instance_id must not be empty")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.instance_id = instance_id
        self.ttl_s = ttl_s
        self._redis = redis_client(url, longest_block_ms=_BLOCK_MS)
        self.redis = self._redis
        self.keys = keys or RedisKeys()
        self.leases = CallLeases(self._redis, instance_id, lease_s=ttl_s, keys=self.keys)
        self._on_leases: LeaseListener | None = None
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._refresh_every_s = ttl_s / 3
        self._stream_idle_ms = round(max(_STREAM_IDLE_S, ttl_s) * 1000)
        self._mine: set[str] = set()
        # Serialises writes to the registry, so a refresh already on its way cannot bring
        # back a call that `unregister` has just removed.
        self._writes = asyncio.Lock()
        self._waiting: dict[str, asyncio.Future[ControlReply]] = {}
        self._refresh_now = asyncio.Event()
        self._twin_reports = RepeatedReports(REPEAT_S)
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False

    # The registry

    async def register(self, call_id: str) -> bool:
        """Record this instance as `call_id`'s owner for `ttl_s`, unless another instance
        holds its lease (then False, and the listener given to `start` is told).

        While Redis is unreachable the call is only remembered (True); the background refresh
        writes it once Redis is back.
        """
        async with self._writes:
            self._mine.add(call_id)
            try:
                lost, _ = await self.leases.renew([call_id])
            except redis_failures() as exc:
                log_redis_failure(
                    log, exc, "call %s not registered yet; retrying (redis: %s)", call_id
                )
                self._refresh_now.set()
                return True
            if not lost:
                return True
            self._mine.discard(call_id)
            if self._on_leases is not None:
                self._on_leases(lost, set())
            return False

    async def unregister(self, call_id: str) -> None:
        """Forget `call_id`, and remove its entry if it still names this instance.

        While Redis is unreachable the entry stays until it expires.
        """
        async with self._writes:
            self._mine.discard(call_id)
            try:
                await self.leases.release(call_id)
            except redis_failures() as exc:
                log_redis_failure(
                    log, exc, "call %s not unregistered; it expires (redis: %s)", call_id
                )

    async def refresh(self, call_ids: Iterable[str]) -> None:
        """Restart the expiry of these calls' entries, naming this instance, in one round trip.

        Entries lost in a Redis restart are written again. A failure is logged, not raised.
        """
        async with self._writes:
            await self._write_entries(list(call_ids))

    async def owner_of(self, call_id: str) -> str | None:
        """The id of the instance that owns `call_id`, or None when no live instance does.

        Raises `DirectoryUnavailable` when Redis cannot be asked.
        """
        try:
            owner = await self._redis.get(self.keys.lease(call_id))
        except redis_failures() as exc:
            raise DirectoryUnavailable(redis_trouble(exc)) from exc
        return None if owner is None else str(owner)

    async def _write_entries(self, call_ids: list[str]) -> bool:
        """Renew each lease and this instance's heartbeat, then forget instances gone long
        enough (`CallLeases.forget_lapsed`); False when Redis did not take the renewals.

        Calls another instance has taken over are forgotten here and reported to the listener
        given to `start`, as are those whose lease had vanished.
        """
        try:
            if await self.leases.check_epoch():
                log.warning("redis has lost its data: writing this instance's calls back")
            twin = await self.leases.heartbeat()
            lost, rewritten = await self.leases.renew(call_ids)
        except redis_failures() as exc:
            log_redis_failure(
                log,
                exc,
                "could not renew this instance's heartbeat and its %d call lease%s (redis: %s)",
                len(call_ids),
                "" if len(call_ids) == 1 else "s",
            )
            return False
        if twin:
            self._report_twin()
        self._mine -= lost
        if (lost or rewritten) and self._on_leases is not None:
            self._on_leases(lost, rewritten)
        # After the renewals, and apart: a clean-up that fails or takes long must not cost a
        # lease.
        try:
            forgotten = await self.leases.forget_lapsed()
        except redis_failures() as exc:
            log_redis_failure(log, exc, "could not forget instances gone (redis: %s)")
        else:
            for instance in forgotten:
                log.info("instance %s is gone: forgotten, with its results stream", instance)
        return True

    def _report_twin(self) -> None:
        """Say that another process runs as this instance, at most every `REPEAT_S`.

        Neither process is stopped: both may serve live calls, and nothing tells which one an
        operator meant to run. Each takes the hold back in turn, so both keep saying so."""
        if self._twin_reports.due(self.instance_id, time.monotonic()):
            log.error(
                "another running process runs as instance %s too (CALLBRIDGE_INSTANCE_ID): it "
                "renewed this instance's hold in Redis since this process did; the two take "
                "each other's control requests and worker answers, so their calls fail. Stop "
                "one, and give each instance its own id (said again every %.0f s while it lasts)",
                self.instance_id,
                REPEAT_S,
            )

    def adopt(self, call_id: str) -> None:
        """Keep renewing the lease of `call_id`, which this instance has just claimed."""
        self._mine.add(call_id)

    async def _refresh_forever(self) -> None:
        """Keep this instance's calls registered: every `ttl_s / 3`, at once after an outage,
        and with backoff while Redis does not answer."""
        delay = BACKOFF_MIN_S
        while not self._closed:
            # Cleared before writing: a wish for a refresh made meanwhile is kept for the wait.
            self._refresh_now.clear()
            async with self._writes:
                written = await self._write_entries(sorted(self._mine))
            if written:
                delay = BACKOFF_MIN_S
                wait = self._refresh_every_s
            else:
                wait = delay
                delay = min(delay * 2, BACKOFF_MAX_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refresh_now.wait(), wait)

    # Control requests

    async def request(
        self,
        owner: str,
        op: str,
        call_id: str,
        body: dict[str, Any],
        *,
        timeout_s: float = 5.0,
    ) -> ControlReply:
        """Ask instance `owner` to carry out `op` on `call_id` and return its reply.

        Raises `DirectoryUnavailable` when the request cannot be handed to Redis (within
        `timeout_s`), and `ControlTimeout` when no reply comes within `timeout_s` of Redis
        taking it (the owner is gone or stuck); a request that reaches the owner after that is
        dropped, not carried out.
        """
        if self._closed:
            raise DirectoryUnavailable("the call directory is closed")
        self._ensure_reader()
        request_id = uuid.uuid4().hex
        reply: asyncio.Future[ControlReply] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = reply
        fields: _Fields = {
            "request_id": request_id,
            "op": op,
            "call_id": call_id,
            "body": json.dumps(body),
            "reply_to": self.instance_id,
            "timeout_ms": round(timeout_s * 1000),
        }
        try:
            try:
                await asyncio.wait_for(self._append(self.keys.control(owner), fields), timeout_s)
            except TimeoutError:
                raise DirectoryUnavailable("redis did not take the request in time") from None
            except redis_failures() as exc:
                raise DirectoryUnavailable(redis_trouble(exc)) from exc
            # Counted from Redis taking the request, as the owner counts from Redis' stamp on
            # it: so the owner never starts a request whose requester has stopped waiting.
            try:
                return await asyncio.wait_for(reply, timeout_s)
            except TimeoutError:
                raise ControlTimeout(
                    f"instance {owner} did not answer {op!r} for call {call_id} "
                    f"within {timeout_s:g} s"
                ) from None
        finally:
            self._waiting.pop(request_id, None)

    def start(self, handler: ControlHandler, on_leases: LeaseListener | None = None) -> None:
        """In the background: serve control requests addressed to this instance with `handler`,
        keep this instance's calls registered (telling `on_leases` of lost and rewritten
        leases), and collect replies to its own requests."""
        if self._started or self._closed:
            raise RuntimeError("the call directory was already started or is closed")
        self._started = True
        self._on_leases = on_leases
        self._spawn(self._serve(handler), "directory-serve")
        self._spawn(self._refresh_forever(), "directory-refresh")
        self._ensure_reader()

    async def _serve(self, handler: ControlHandler) -> None:
        async for entries in self._read(self.keys.control(self.instance_id), "control requests"):
            now_ms = await self._redis_now_ms()
            for entry_id, fields in entries:
                request = _parse_request(entry_id, fields, now_ms)
                if request is not None:
                    self._spawn(self._answer(handler, request), f"control-{request.op}")

    async def _redis_now_ms(self) -> int:
        """The clock of the node that stamped the entry ids: instances' clocks may disagree."""
        try:
            return await redis_now_ms(self._redis, self.keys.control(self.instance_id))
        except redis_failures():
            # Redis answered the read a moment ago; should it fail now, ours is close enough.
            return round(time.time() * 1000)

    async def _answer(self, handler: ControlHandler, request: ControlRequest) -> None:
        try:
            reply = await handler(request)
        except Exception as exc:
            log.exception("control request %s for call %s failed", request.op, request.call_id)
            reply = ControlReply(500, {"detail": f"{type(exc).__name__}: {exc}"[:500]})
        fields: _Fields = {
            "request_id": request.request_id,
            "status": reply.status,
            "body": json.dumps(reply.body),
        }
        try:
            await self._append(self.keys.control_replies(request.reply_to), fields)
        except redis_failures() as exc:
            log_redis_failure(
                log, exc, "reply to control request %s lost (redis: %s)", request.request_id
            )

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = self._spawn(self._collect_replies(), "directory-replies")

    async def _collect_replies(self) -> None:
        async for entries in self._read(
            self.keys.control_replies(self.instance_id), "control replies"
        ):
            for entry_id, fields in entries:
                self._deliver(entry_id, fields)

    def _deliver(self, entry_id: str, fields: dict[str, str]) -> None:
        reply = self._waiting.get(fields.get("request_id", ""))
        if reply is None or reply.done():
            return  # Its requester gave up, or it predates this directory.
        try:
            body = json.loads(fields["body"])
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            reply.set_result(ControlReply(int(fields["status"]), body))
        except (KeyError, ValueError) as exc:
            log.error("unreadable control reply %s: %s", entry_id, exc)
            reply.set_exception(DirectoryUnavailable(f"unreadable control reply: {exc}"))

    # Streams

    async def _read(self, key: str, what: str) -> AsyncIterator[list[_Entry]]:
        """Batches of new entries of `key`, forever, waiting out Redis outages.

        Reading starts at the stream's beginning: an entry added just before the first read
        must not be missed, and anything older is stale and ignored by the caller.
        """
        last_id = _STREAM_START
        delay = BACKOFF_MIN_S
        failing = False
        # Checked as well as cancellation: redis-py may turn a cancellation that hits a
        # broken connection into a ConnectionError.
        while not self._closed:
            try:
                # A list of [key, entries] pairs; empty when the block timed out.
                # Right after a failure the read does not block, so that a recovery is
                # noticed (and our calls written back) at once.
                reply: Any = await self._redis.xread(
                    {key: last_id}, count=_READ_BATCH, block=None if failing else _BLOCK_MS
                )
            except redis_failures() as exc:
                if self._closed:
                    return
                if not failing:
                    log_redis_failure(log, exc, "reading %s from redis failed, retrying: %s", what)
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            if failing:
                log.info("redis is back; %s resumed", what)
                failing = False
                delay = BACKOFF_MIN_S
                # Redis may have restarted empty: write our calls back without waiting.
                self._refresh_now.set()
            # After a restart the stream starts afresh, but its ids come from the clock, so
            # they still sort after `last_id`.
            entries: list[_Entry] = [
                (entry_id, fields or {}) for _, stream in reply or [] for entry_id, fields in stream
            ]
            if entries:
                last_id = entries[-1][0]
                yield entries

    async def _append(self, key: str, fields: _Fields) -> None:
        """XADD to a control stream, trimmed, with its idle expiry restarted."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(key, fields, maxlen=_STREAM_MAXLEN, approximate=True)
            pipe.pexpire(key, self._stream_idle_ms)
            await pipe.execute()

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # Shutdown

    async def aclose(self) -> None:
        """Stop serving and refreshing, fail waiting requests, depart (`CallLeases.depart`:
        this instance goes from the instances with its results, unless these hold events for
        a live call), close the connections. The caller has stopped reading its results.

        Registered calls are left to expire; the caller unregisters the ones that ended.
        """
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            # Bounded: a loop whose cancellation redis-py swallowed ends only once its blocking
            # read returns, and a handler might ignore cancellation altogether.
            await asyncio.wait(list(self._tasks), timeout=_BLOCK_MS / 1000)
        for reply in self._waiting.values():
            if not reply.done():
                reply.set_exception(DirectoryUnavailable("the call directory is closed"))
        # After the refresh has stopped, so that no heartbeat on its way makes it live again.
        try:
            if not await self.leases.depart():
                log.info(
                    "results stream kept: it holds answers for live calls, for their successors"
                )
        except redis_failures() as exc:
            log_redis_failure(
                log, exc, "could not depart; the others forget this instance (redis: %s)"
            )
        await self._redis.aclose()


async def hold_instance_id(
    url: str, instance_id: str, *, lease_s: float, keys: RedisKeys | None = None
) -> bool:
    """At start-up, take the hold of `instance_id` for this process (`CallLeases.hold_id`) on the
    Redis `url` names; False when another running process holds it. True when Redis cannot be
    asked now: an outage, which the service rides out (should another process hold the id, the
    heartbeat says so once Redis answers)."""
    redis = redis_client(url, longest_block_ms=0)
    try:
        return await CallLeases(
            redis, instance_id, lease_s=lease_s, keys=keys or RedisKeys()
        ).hold_id()
    except redis_failures():
        return True
    finally:
        await redis.aclose()


async def let_go_instance_id(
    url: str, instance_id: str, *, lease_s: float, keys: RedisKeys | None = None
) -> None:
    """Let go of the hold `hold_instance_id` took for this process, if it still has it: for a
    process that stops without having served, so that the next one started as `instance_id`
    need not wait the hold out. Quietly nothing when Redis cannot be asked."""
    redis = redis_client(url, longest_block_ms=0)
    try:
        await CallLeases(redis, instance_id, lease_s=lease_s, keys=keys or RedisKeys()).let_go_id()
    except redis_failures():
        pass
    finally:
        await redis.aclose()


def _parse_request(entry_id: str, fields: dict[str, str], now_ms: int) -> ControlRequest | None:
    """The request in a control stream entry; None when it is unreadable, or when its requester
    has stopped waiting (the entry id is the time Redis took the request, in ms)."""
    try:
        if int(entry_id.split("-")[0]) + int(fields["timeout_ms"]) < now_ms:
            log.info("control request %s arrived after its requester gave up; dropped", entry_id)
            return None
        body = json.loads(fields["body"])
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        return ControlRequest(
            op=fields["op"],
            call_id=fields["call_id"],
            body=body,
            request_id=fields["request_id"],
            reply_to=fields["reply_to"],
        )
    except (KeyError, ValueError) as exc:
        log.error("unreadable control request %s dropped: %s", entry_id, exc)
        return None
