"""`CallManager`: starts calls, owns their sessions, runs control commands, and, with Redis,
keeps each call's lease and saved state so that any instance can serve it or take it over.

In a cluster (a `CallDirectory`), the owner of a call holds its lease (`service.calls.lease`)
and saves the call (record, core snapshot, SSE events) to the `CallStore` as it changes. Every
instance looks for live calls whose lease has lapsed and claims them; the claimer restores the
call from the store, moves the worker answers addressed to the old owner to itself, and rejoins
the sideband by call id. A draining instance with live peers hands its calls over instead of
hanging them up.

What an owner writes for a call, in order, so that its death at any point leaves the call to
another instance: its lease, which lists it as live in the same step (before its start is
answered); its state, with each change; once it has ended (and its hang-up at the provider is
recorded in Redis), its ended state; and only then its lease is let go, which unlists it.
Dying before the first save leaves a listed call without state, which the claimer hangs up
(`_take_over`). Only a death between the provider's answer and the lease leaves nothing behind
(see README, Failover).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any, Final, TypedDict, TypeVar

from service.auth import Principal, may_control
from service.calls.control import (
    Command,
    DeleteCall,
    GetCall,
    HangUp,
    InjectText,
    Refer,
    UpdateSession,
    command_from_json,
    command_name,
    command_to_json,
)
from service.calls.directory import (
    CallDirectory,
    ControlReply,
    ControlRequest,
    ControlTimeout,
    DirectoryUnavailable,
)
from service.calls.errors import (
    CallAlreadyEnded,
    CallError,
    CallGone,
    CapacityExceeded,
    Draining,
    InvalidCommand,
    NotAPhoneCall,
    OwnerUnreachable,
    TransferRefused,
    UnknownCall,
)
from service.calls.handoff_text import LIMIT_KIND, admit
from service.calls.hangups import Hangups
from service.calls.record import Call, summary
from service.calls.retention import EndedCalls
from service.calls.session import CallSession
from service.calls.store import CallStore, StoredCall, record_from_json, record_to_json
from service.calls.stream import CallEventStream, ClusterEventStream, KeptEventStream
from service.handoffs.queue import HandoffEvent, HandoffQueue
from service.metrics import (
    ACTIVE_CALLS,
    CALL_SETUP_SECONDS,
    CALL_STARTS,
    CALLS_ENDED,
    END_REASONS,
    OTHER,
    label,
)
from service.redis_client import redis_failures
from service.redis_reports import log_redis_failure, redis_trouble
from service.settings import Settings
from signaling.credentials import Credentials
from signaling.ids import CallId
from signaling.provider import ProviderClient, ProviderError
from signaling.realtime import (
    CallLimits,
    CallState,
    Delegation,
    EndReason,
    SessionConfig,
    session_payload,
)
from signaling.realtime.sideband import (
    Sideband,
    sideband_addresses,
    sideband_proxy,
    sideband_url,
)

log = logging.getLogger("callbridge.calls")
_T = TypeVar("_T")

_ERRORS: Final[dict[str, type[CallError]]] = {
    cls.__name__: cls
    for cls in (
        UnknownCall,
        CallAlreadyEnded,
        CallGone,
        InvalidCommand,
        OwnerUnreachable,
        NotAPhoneCall,
        TransferRefused,
    )
}
_ADOPT: Final = "adopt"
_CONTROL_TIMEOUT_S: Final = 5.0
# How long a peer taking over a call during a handover may take to join its sideband.
_HANDOVER_JOIN_S: Final = 5.0


class _CoreOptions(TypedDict):
    limits: CallLimits
    new_item_id: Callable[[], str]
    jitter: Callable[[], float]
    secrets: tuple[str, ...]


def _new_item_id() -> str:
    # Unique across restarts and instances; the provider allows at most 32 characters.
    return f"cb_{uuid.uuid4().hex[:24]}"


class CallManager:
    """The registry of this instance's calls, and the entry point of every call command."""

    def __init__(
        self,
        settings: Settings,
        provider: ProviderClient,
        queue: HandoffQueue,
        *,
        provider_base_url: str,
        instance_id: str | None = None,
        directory_factory: Callable[[str], CallDirectory] | None = None,
        recent_ended: int = 1000,
        credentials: Credentials | None = None,
    ) -> None:
        """`credentials` replace the bearer key on the sideband (Azure `api-key`, Entra ID)."""
        self.settings = settings
        self.credentials = credentials
        self.provider = provider
        self.queue = queue
        self.provider_base_url = provider_base_url
        self._sideband_proxy = sideband_proxy(provider_base_url)
        self._sideband_addresses = sideband_addresses(provider_base_url, self._sideband_proxy)
        self.instance_id = instance_id or f"cb-{uuid.uuid4().hex[:12]}"
        # Worker answers are routed by call lease to the instance's own results stream.
        self.reply_to = self.instance_id
        self.sessions: dict[str, CallSession] = {}
        self._ended = EndedCalls(
            max_calls=recent_ended,
            max_bytes=settings.ended_calls_max_bytes,
            events_for_s=settings.ended_call_retention_s,
        )
        self._reserved = 0
        self.draining = False
        self._listener: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.directory = directory_factory(self.instance_id) if directory_factory else None
        self.store = (
            CallStore(
                self.directory.redis,
                keys=self.directory.keys,
                events_maxlen=settings.call_events_kept,
                retention_s=settings.ended_call_retention_s,
            )
            if self.directory is not None
            else None
        )
        self.hangups = Hangups(
            provider,
            retry_for_s=settings.hangup_retry_s,
            redis=self.directory.redis if self.directory is not None else None,
            keys=self.directory.keys if self.directory is not None else None,
        )
        # Calls with changes not yet saved; ended sessions wait in `_closing` for their last save.
        self._dirty: set[str] = set()
        self._closing: dict[str, CallSession] = {}
        self._save_soon = asyncio.Event()
        # Calls whose lease this instance has written: only those are saved (as live), or a
        # new call could look abandoned to the others before its lease is there.
        self._leased: set[str] = set()
        # One lock per call being saved: a call's saves must not overtake each other.
        self._saving: dict[str, asyncio.Lock] = {}
        # A live owner answers in milliseconds; one that does not for two leases has died.
        self._control_timeout_s = min(_CONTROL_TIMEOUT_S, 2 * settings.call_lease_s)
        # What every call core of this instance is made with, new or restored. Settings do not
        # change while the service runs: made once, not at every call start.
        self._core: _CoreOptions = {
            "limits": settings.call_limits(),
            "new_item_id": _new_item_id,
            "jitter": random.random,
            "secrets": tuple(settings.secrets()),
        }

    # Capacity

    @property
    def capacity_left(self) -> int:
        """Call slots not yet reserved."""
        return max(0, self.settings.max_calls - self._reserved)

    def default_config(self) -> SessionConfig:
        """The session settings in force when a call-start request overrides nothing."""
        s = self.settings
        return SessionConfig(
            mode=s.session_mode,
            model=s.model,
            instructions=s.instructions,
            voice=s.voice,
            output_modality=s.output_modality,
            transcription_model=s.transcription_model,
        )

    # Lifecycle of one call

    async def start(
        self, offer_sdp: str, config: SessionConfig, *, started_by: str | None = None
    ) -> tuple[Call, str]:
        """Create the call at the provider and start its session; return the SDP answer.

        Raises `Draining`, `CapacityExceeded`, or the provider's `ProviderError`.
        """
        received = time.monotonic()
        payload = session_payload(config, include_model=True)
        created = await self._reserving(lambda: self.provider.create_call(offer_sdp, payload))
        CALL_SETUP_SECONDS.labels(stage="provider_answered").observe(time.monotonic() - received)
        call = Call(
            call_id=created.call_id,
            config=config,
            owner=self.instance_id,
            answered_at=time.time(),
            max_duration_s=self.settings.max_call_duration_s,
            idle_timeout_s=self.settings.idle_timeout_s,
            started_by=started_by,
        )
        await self._open_session(call, received)
        return call, created.answer_sdp

    async def accept_incoming(
        self, call_id: CallId, config: SessionConfig, sip_headers: dict[str, str]
    ) -> Call:
        """Answer a ringing phone call with `config`, then join its sideband as for WebRTC.

        Raises `Draining` or `CapacityExceeded` without answering, and the provider's
        `ProviderError` (`CallNotFound` when the caller is gone) if the answer fails.
        """
        received = time.monotonic()
        payload = session_payload(config, include_model=True)
        await self._reserving(lambda: self.provider.accept(call_id, payload))
        call = Call(
            call_id=call_id,
            config=config,
            owner=self.instance_id,
            answered_at=time.time(),
            max_duration_s=self.settings.max_call_duration_s,
            idle_timeout_s=self.settings.idle_timeout_s,
            kind="sip",
            sip_headers=dict(sip_headers),
        )
        await self._open_session(call, received)
        return call

    async def _reserving(self, at_provider: Callable[[], Awaitable[_T]]) -> _T:
        """Take a call slot, then run `at_provider()`; the slot is given back if it fails.

        Raises `Draining` or `CapacityExceeded` before asking the provider anything.
        """
        self._admit()
        # Reserved before the first await, so concurrent starts cannot overshoot the cap.
        self._reserved += 1
        try:
            return await at_provider()
        except ProviderError:
            self._reserved -= 1
            CALL_STARTS.labels(outcome="provider_error").inc()
            raise
        except BaseException:
            self._reserved -= 1
            raise

    def _admit(self) -> None:
        """Raise `Draining` or `CapacityExceeded` when no new call may start now."""
        if self.draining:
            CALL_STARTS.labels(outcome="draining").inc()
            raise Draining("this instance is draining")
        if self._reserved >= self.settings.max_calls:
            CALL_STARTS.labels(outcome="capacity").inc()
            raise CapacityExceeded(f"all {self.settings.max_calls} call slots are in use")

    async def _open_session(self, call: Call, received: float) -> None:
        """Track an answered call and join its sideband in the background; in a cluster, wait
        (a bounded time) until its lease is written and it is listed as live, so that any
        instance finds the call the moment its URL is handed out, and takes it over (or hangs
        it up, before its first save) should this instance die."""
        state = CallState(call.call_id, call.config, **self._core)
        session = self._track(call, state, offer_received_at=received)
        CALL_STARTS.labels(outcome="started").inc()
        session.start()
        log.info("call started", extra={"call_id": call.call_id})
        if self.directory is not None:
            registered = self._spawn(self._register(call.call_id))
            # A slow broker delays the SDP answer by at most a lease period; the lease is
            # written anyway.
            await asyncio.wait({registered}, timeout=self.settings.call_lease_s)

    def _track(self, call: Call, state: CallState, *, offer_received_at: float) -> CallSession:
        """Make the session that runs `call` with `state`, and count it as live here (it is
        started by the caller)."""
        call_id = call.call_id
        call.transcript = state.transcript
        stream = (
            ClusterEventStream(lambda: self._mark_dirty(call_id))
            if self.store is not None
            else CallEventStream(history=self.settings.call_events_kept)
        )
        sideband = Sideband(
            sideband_url(self.provider_base_url, call_id),
            self.settings.api_key_value(),
            ping_interval_s=self.settings.sideband_ping_interval_s,
            compression=self.settings.sideband_compression,
            credentials=self.credentials,
            proxy=self._sideband_proxy,
            addresses=self._sideband_addresses,
        )
        session = CallSession(
            call,
            state,
            sideband,
            self.hangups.hang_up,
            stream,
            self._enqueue,
            offer_received_at=offer_received_at,
            on_end=self._ended_call,
            hung_up_elsewhere=self._hung_up_elsewhere,
        )
        self.sessions[call_id] = session
        ACTIVE_CALLS.inc()
        return session

    async def _register(self, call_id: str) -> None:
        """Take the new call's lease, which lists it as live, then save it: a call listed
        without a lease would look abandoned to the other instances."""
        directory, _ = self._cluster()
        try:
            await directory.register(call_id)
        except Exception as exc:
            log.warning("call directory update failed: %s", exc)
        self._leased.add(call_id)
        self._mark_dirty(call_id)

    async def _enqueue(self, delegation: Delegation) -> None:
        await self.queue.put(delegation, self.reply_to)

    def _ended_call(self, call: Call) -> None:
        session = self.sessions.pop(call.call_id, None)
        if session is None:
            return
        self._reserved -= 1
        ACTIVE_CALLS.dec()
        CALLS_ENDED.labels(reason=label(call.end_reason or OTHER, END_REASONS)).inc()
        # With Redis, its events are read from the store, where they expire with its state.
        events = session.stream if self.store is None else None
        self._ended.keep(call, events, time.monotonic())
        if self.store is not None:
            # Its last events and state are saved, then its lease is let go.
            self._closing[call.call_id] = session
            self._mark_dirty(call.call_id)

    @property
    def ended_total_bytes(self) -> int:
        """What the ended calls kept here (records, and events without Redis) measure."""
        return self._ended.total_bytes

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _directory_op(self, operation: Awaitable[None]) -> None:
        try:
            await operation
        except Exception as exc:
            log.warning("call directory update failed: %s", exc)

    # Saving calls to the store

    def _mark_dirty(self, call_id: str) -> None:
        if self.store is None:
            return
        self._dirty.add(call_id)
        self._save_soon.set()

    async def _save_forever(self) -> None:
        """Save changed calls (each call's saves in order, calls concurrently); a failed save
        is retried with backoff."""
        delay = 0.05
        while True:
            await self._save_soon.wait()
            self._save_soon.clear()
            dirty, self._dirty = sorted(self._dirty), set()
            saved = await asyncio.gather(*(self._save(call_id) for call_id in dirty))
            failed = [call_id for call_id, ok in zip(dirty, saved, strict=True) if not ok]
            if failed:
                self._dirty.update(failed)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                self._save_soon.set()
            else:
                delay = 0.05

    async def _save(self, call_id: str) -> bool:
        """Save one call's state and new events now; False when Redis did not take them."""
        if self.store is None:
            return True
        lock = self._saving.setdefault(call_id, asyncio.Lock())
        async with lock:
            session = self.sessions.get(call_id)
            ended = session is None
            session = session or self._closing.get(call_id)
            if session is None:
                self._saving.pop(call_id, None)
                return True
            if call_id not in self._leased:
                # Saved once `_register` has written the lease (it marks the call again).
                return True
            stream = session.stream
            events = stream.take_pending() if isinstance(stream, ClusterEventStream) else []
            stored = StoredCall(
                {**record_to_json(session.call), "owner": self.instance_id},
                session.call.to_json(),
                session.state.snapshot(),
            )
            try:
                await self.store.save(call_id, stored, events, ended=ended)
            except redis_failures() as exc:
                log_redis_failure(log, exc, "call %s not saved yet (redis: %s)", call_id)
                if isinstance(stream, ClusterEventStream):
                    stream.put_back(events)
                return False
            # Apart, as the summaries are in another slot. Should it fail, the events are
            # saved: the retry only writes again.
            try:
                await self.store.summarise(call_id, None if ended else stored.view)
            except redis_failures() as exc:
                log_redis_failure(log, exc, "call %s not summarised yet (redis: %s)", call_id)
                return False
            if ended:
                # Unlisted with its lease, only now that its ended state is saved: a death
                # before leaves it listed, and whoever claims it sees that it has ended.
                self._closing.pop(call_id, None)
                self._saving.pop(call_id, None)
                self._leased.discard(call_id)
                if self.directory is not None:
                    await self._directory_op(self.directory.unregister(call_id))
            return True

    # Lookups

    def get(self, call_id: str) -> Call | None:
        """A live or recently ended call of this instance."""
        session = self.sessions.get(call_id)
        if session is not None:
            return session.call
        return self._ended.get(call_id)

    def session(self, call_id: str) -> CallSession | None:
        """The live session of a call of this instance."""
        return self.sessions.get(call_id)

    def event_stream(self, call_id: str) -> CallEventStream | KeptEventStream | None:
        """Without Redis: the event stream of a live call of this instance, or the closed
        one of a call that ended here within `ended_call_retention_s` and is still kept (see
        `EndedCalls`); else None."""
        session = self.sessions.get(call_id)
        if session is not None:
            return session.stream
        return self._ended.events(call_id, time.monotonic())

    def active(self) -> list[Call]:
        """Live calls of this instance."""
        return [s.call for s in self.sessions.values()]

    async def live_calls(
        self, after: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of live calls (records without transcript), by call id after `after`, at most
        `limit` (fewer when a call ended meanwhile); and the `after` of the next page, None
        after the last. With Redis: every instance's calls, as last saved.

        Raises `OwnerUnreachable` when Redis cannot be reached.
        """
        if self.directory is None or self.store is None:
            ids = sorted(c for c in self.sessions if after is None or c > after)
            page = [self.sessions[c].call.to_json(full=False) for c in ids[:limit]]
            return page, ids[limit - 1] if len(ids) > limit else None
        try:
            listed = await self.directory.leases.listed()
            ids = [c for c in listed if after is None or c > after]
            following = ids[limit - 1] if len(ids) > limit else None
            return await self.store.summaries(ids[:limit]), following
        except redis_failures() as exc:
            raise OwnerUnreachable(redis_trouble(exc)) from None

    async def hangup(self, call_id: CallId, reason: str = "hangup") -> Call | None:
        """End a live call of this instance; None if unknown here."""
        session = self.sessions.get(call_id)
        if session is None:
            return self._ended.get(call_id)
        await session.end(reason)
        return session.call

    async def visible(self, call_id: str, principal: Principal) -> None:
        """Raise `UnknownCall` unless the call exists (anywhere) and `principal` may see it."""
        await self.execute(GetCall(call_id, principal))

    # Commands

    async def execute(self, command: Command) -> Any:
        """Carry out `command` here, or at the instance that owns the call.

        Returns the command's result (`GetCall`: the record; `HangUp`: the record without
        transcript; `DeleteCall`: the full final record; `InjectText`: None; `UpdateSession`:
        the session settings). Raises `UnknownCall`, `CallGone` (deleted), `CallAlreadyEnded`,
        `InvalidCommand`, or `OwnerUnreachable` when the owner or Redis cannot be reached in
        time.
        """
        call_id = command.call_id
        if self.directory is None or call_id in self.sessions:
            return await self._execute_here(command)
        owner = await self._owner_of(call_id)
        if owner in (None, self.instance_id) and call_id in self._ended:
            # Ended here; its lease may not be let go of yet.
            return await self._execute_here(command)
        if owner is None:
            return await self._execute_unowned(command)
        if owner == self.instance_id:
            if call_id in self.sessions:
                return await self._execute_here(command)
            raise OwnerUnreachable("the call is being taken over; try again")
        return await self._execute_at(owner, command)

    def _cluster(self) -> tuple[CallDirectory, CallStore]:
        if self.directory is None or self.store is None:
            raise RuntimeError("only an instance with Redis has a cluster")
        return self.directory, self.store

    async def _owner_of(self, call_id: str) -> str | None:
        assert self.directory is not None
        try:
            return await self.directory.owner_of(call_id)
        except DirectoryUnavailable as exc:
            raise OwnerUnreachable(str(exc)) from None

    async def _execute_at(self, owner: str, command: Command) -> Any:
        assert self.directory is not None
        try:
            reply = await self.directory.request(
                owner,
                command_name(command),
                command.call_id,
                command_to_json(command),
                timeout_s=self._control_timeout_s,
            )
        except (ControlTimeout, DirectoryUnavailable) as exc:
            return await self._owner_silent(command, exc)
        if reply.status == 200:
            return reply.body.get("result")
        error = _ERRORS.get(str(reply.body.get("error")), OwnerUnreachable)
        raise error(str(reply.body.get("detail", "the owner refused the command")))

    async def _owner_silent(self, command: Command, exc: Exception) -> Any:
        """The owner holds the lease but does not answer (it may have just died). A record is
        answered from the store and a hang-up goes straight to the provider; the rest waits
        for the lease to lapse."""
        stored = await self._load(command.call_id)
        if stored is None or not may_control(command.principal, stored.record["started_by"]):
            raise OwnerUnreachable(f"the call's owner cannot be reached: {exc}") from None
        if stored.deleted:
            raise CallGone("the call was deleted")
        if isinstance(command, GetCall):
            return stored.view
        if isinstance(command, HangUp | DeleteCall):
            _, store = self._cluster()
            # Marked before the provider hears of it: the owner, once it answers again, finds
            # its call gone at the provider, and must learn that a hang-up is why.
            try:
                await store.mark_hung_up(command.call_id)
            except redis_failures() as failure:
                raise OwnerUnreachable(redis_trouble(failure)) from None
            await self._hang_up_at_provider(command.call_id)
            return await self._ended_answer(command, stored)
        raise OwnerUnreachable(f"the call's owner cannot be reached: {exc}") from None

    async def _ended_answer(self, command: HangUp | DeleteCall, stored: StoredCall) -> Any:
        """What a hang-up or a deletion of a call that has ended (or is being ended at the
        provider) answers from its saved record; a deletion is recorded for every instance."""
        if isinstance(command, HangUp):
            return summary(stored.view)
        _, store = self._cluster()
        try:
            await store.mark_deleted(command.call_id)
        except redis_failures() as exc:
            raise OwnerUnreachable(redis_trouble(exc)) from None
        return stored.view

    async def _execute_unowned(self, command: Command) -> Any:
        """Nobody holds the call's lease: it ended (the store still shows it), its owner died
        (take it over now), or Redis lost its data (wait for the owner to write it back)."""
        stored = await self._load(command.call_id)
        if stored is None:
            stored = await self._wait_for_rewrite(command.call_id)
        if stored is None:
            raise UnknownCall("no such call")
        if not may_control(command.principal, stored.record["started_by"]):
            raise UnknownCall("no such call")
        if stored.deleted:
            raise CallGone("the call was deleted")
        if stored.record["state"] in ("ended", "failed"):
            if isinstance(command, GetCall):
                return stored.view
            if isinstance(command, HangUp | DeleteCall):
                return await self._ended_answer(command, stored)
            raise CallAlreadyEnded("the call has ended")
        if await self._take_over(command.call_id, stored):
            return await self._execute_here(command)
        owner = await self._owner_of(command.call_id)
        if command.call_id in self.sessions:
            return await self._execute_here(command)
        if owner is not None and owner != self.instance_id:
            return await self._execute_at(owner, command)
        raise OwnerUnreachable("the call is being taken over; try again")

    async def _wait_for_rewrite(self, call_id: str) -> StoredCall | None:
        """Right after Redis lost its data, owners are writing their calls back (within a
        renewal period): a call not found then is waited for rather than called unknown."""
        directory, _ = self._cluster()
        try:
            await directory.leases.check_epoch()
        except redis_failures() as exc:
            raise OwnerUnreachable(redis_trouble(exc)) from None
        deadline = time.monotonic() + directory.leases.recovering()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            stored = await self._load(call_id)
            if stored is not None:
                return stored
        return None

    async def _load(self, call_id: str) -> StoredCall | None:
        _, store = self._cluster()
        try:
            return await store.load(call_id)
        except redis_failures() as exc:
            raise OwnerUnreachable(redis_trouble(exc)) from None

    async def _hung_up_elsewhere(self, call_id: CallId) -> bool:
        """Whether another instance hung `call_id` up at the provider for the API while this
        one, its owner, did not answer (`_owner_silent`). False without Redis, and when Redis
        cannot tell: the call then ends as what the provider's refusal says."""
        if self.store is None:
            return False
        try:
            return await self.store.is_hung_up(call_id)
        except redis_failures() as exc:
            log_redis_failure(
                log, exc, "cannot tell whether %s was hung up elsewhere (redis: %s)", call_id
            )
            return False

    async def _hang_up_at_provider(self, call_id: str) -> None:
        # Retried in the background (and, with Redis, by any instance) until confirmed.
        await self.hangups.hang_up(CallId(call_id))

    async def _execute_here(self, command: Command) -> Any:
        call = self.get(command.call_id)
        # A call someone else started is reported as unknown: its existence is not their business.
        if call is None or not may_control(command.principal, call.started_by):
            raise UnknownCall("no such call")
        if call.deleted or (not call.live and await self._deleted_elsewhere(call.call_id)):
            raise CallGone("the call was deleted")
        match command:
            case GetCall():
                return call.to_json()
            case HangUp():
                await self.hangup(call.call_id)
                return call.to_json(full=False)
            case DeleteCall():
                await self.hangup(call.call_id)
                call.deleted = True
                if self.store is not None:
                    await self._directory_op(self.store.mark_deleted(call.call_id))
                return call.to_json()
            case InjectText(text=text):
                session = self._live(call.call_id)
                await session.inject_text(text)
                self._mark_dirty(call.call_id)
                return None
            case UpdateSession():
                session = self._live(call.call_id)
                try:
                    config = replace(session.call.config, **command.changes())
                except (TypeError, ValueError) as exc:
                    raise InvalidCommand(f"invalid session update: {exc}") from None
                await session.update_session(config)
                self._mark_dirty(call.call_id)
                view = session.call.to_json(full=False)
                return {"session": view["session"], "session_requested": view["session_requested"]}
            case Refer(target_uri=target_uri):
                session = self._live(call.call_id)
                # A live call that is not a phone call: its kind conflicts, not the request.
                if call.kind != "sip":
                    raise NotAPhoneCall("only a phone call (SIP) can be transferred")
                try:
                    await self.provider.refer(CallId(call.call_id), target_uri)
                except ProviderError as exc:
                    raise TransferRefused(
                        f"the provider refused the transfer: {exc.message}", exc.status
                    ) from None
                session.call.transferred_to = target_uri
                self._mark_dirty(call.call_id)
                return {"status": "referred", "target_uri": target_uri}

    async def _deleted_elsewhere(self, call_id: str) -> bool:
        """Whether another instance deleted this ended call (only a cluster can tell; while
        Redis is unreachable, the record this instance keeps is served)."""
        if self.store is None:
            return False
        try:
            return await self.store.is_deleted(call_id)
        except redis_failures():
            return False

    def _live(self, call_id: str) -> CallSession:
        session = self.sessions.get(call_id)
        if session is None:
            raise CallAlreadyEnded("the call has ended")
        return session

    async def _serve_control(self, request: ControlRequest) -> ControlReply:
        """Carry out a command another instance forwarded (or take over a handed-over call)."""
        try:
            if request.op == _ADOPT:
                adopted = await self._adopt(request.call_id, str(request.body.get("from", "")))
                return ControlReply(200, {"result": adopted})
            command = command_from_json(request.op, request.body)
            if command.call_id != request.call_id:
                raise InvalidCommand("the command names another call")
            return ControlReply(200, {"result": await self._execute_here(command)})
        except CallError as exc:
            return ControlReply(409, {"error": type(exc).__name__, "detail": str(exc)})

    # Taking calls over

    async def _take_over(
        self, call_id: str, stored: StoredCall | None = None, *, handed_from: str | None = None
    ) -> bool:
        """Claim `call_id` (from `handed_from`, or because its lease lapsed), restore it from
        the store and rejoin its sideband. False when another instance was faster, the call is
        no longer live, or this instance has no room.

        A listed call claimed because its lease lapsed is not always one to rejoin:

        - Its saved state says it has ended: its owner died between saving that and letting
          its lease go. The owner recorded its hang-up in Redis before (`Hangups`), so it is
          only taken off the live calls.
        - It has no saved state: its owner died between listing it (with its lease, before its
          start was answered) and its first save, or the node holding its state lost it before
          the owner's next save. Nothing tells how to carry it on (its session settings, who
          may see it), so it is hung up at the provider rather than left live there, billed and
          unserved.
        - Its saved state cannot be restored: hung up likewise.
        - It was being hung up: its owner died during it (`Hangups`), or another instance hung
          it up for the API while its owner did not answer (`_owner_silent`). It is restored
          only to end as hung up, not joined again.

        A hang-up is recorded in Redis before it is tried, so that another instance carries it
        on should this one die; the call is taken off the live calls only after that (a death in
        between leaves it listed, to be claimed again).
        """
        directory, store = self._cluster()
        if self.draining or self._reserved >= self.settings.max_calls or call_id in self.sessions:
            return False
        # Reserved before the first await, as for a new call.
        self._reserved += 1
        try:
            leases = directory.leases
            claimed = await (
                leases.hand_over(call_id, handed_from) if handed_from else leases.claim(call_id)
            )
            if not claimed:
                self._reserved -= 1
                return False
            stored = await store.load(call_id) if handed_from or stored is None else stored
            if stored is None and handed_from is None:
                log.warning("call %s was never saved (its owner died); hanging up", call_id)
                self._reserved -= 1
                await self._hang_up_at_provider(call_id)
                await self._unlist(call_id)
                return False
            if stored is None or stored.record["state"] not in ("starting", "active"):
                # (A handed-over call without state stays with the owner handing it over: it
                # writes its lease and state back at its next renewal.)
                self._reserved -= 1
                await self._unlist(call_id)
                return False
            # Its owner died while hanging it up, or another instance hung it up for the API
            # while its owner did not answer: end it rather than join it again.
            hanging_up = stored.hung_up or await self.hangups.pending(call_id)
            try:
                self._restore(call_id, stored, hanging_up=hanging_up)
            except (KeyError, TypeError, ValueError) as exc:
                log.error("call %s cannot be restored (%s); hanging up", call_id, exc)
                self._reserved -= 1
                await self._hang_up_at_provider(call_id)
                await self._unlist(call_id)
                return False
            previous = {str(stored.record.get("owner", "")), *await leases.known_instances()}
            previous.discard(self.instance_id)
            previous.discard("")
            moved = await self.queue.reroute(call_id, sorted(previous))
        except redis_failures() as exc:
            if call_id not in self.sessions:
                self._reserved -= 1
            log_redis_failure(log, exc, "taking over call %s failed (redis: %s)", call_id)
            return call_id in self.sessions
        log.info(
            "call taken over",
            extra={"call_id": call_id, "from": stored.record.get("owner"), "answers_moved": moved},
        )
        return True

    async def _unlist(self, call_id: str) -> None:
        """Take a claimed call off the live calls, with its lease and summary: the summary
        first, the listing last, so that a death in between leaves it listed."""
        directory, store = self._cluster()
        await store.summarise(call_id, None)
        await directory.leases.release(call_id)

    def _restore(self, call_id: str, stored: StoredCall, *, hanging_up: bool) -> None:
        assert self.directory is not None
        call = record_from_json(stored.record, self.instance_id)
        state = CallState.restore(stored.core, **self._core)
        session = self._track(call, state, offer_received_at=time.monotonic())
        self.directory.adopt(call_id)
        self._leased.add(call_id)
        if hanging_up:
            # Its end reason was never saved; a hang-up is what it was getting.
            self._spawn(session.end(EndReason.HANGUP))
        else:
            session.start()
        self._mark_dirty(call_id)

    async def _adopt(self, call_id: str, from_instance: str) -> bool:
        """A draining peer hands `call_id` over: take it, and answer once its sideband is up
        (or the call has ended: one being hung up is not joined)."""
        if not from_instance:
            raise InvalidCommand("a handover names the instance handing over")
        if not await self._take_over(call_id, handed_from=from_instance):
            return False
        session = self.sessions.get(call_id)
        deadline = time.monotonic() + _HANDOVER_JOIN_S
        while session is not None and not (session.sideband.connected or session.state.ended):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        return True

    async def _take_over_forever(self) -> None:
        """Claim live calls whose lease lapsed, every quarter lease period."""
        directory, _ = self._cluster()
        while True:
            # A quarter lease: a lapsed lease is noticed soon, for two Redis commands a look.
            await asyncio.sleep(self.settings.call_lease_s / 4)
            if self.draining:
                continue
            try:
                live = [c for c in await directory.leases.listed() if c not in self.sessions]
                orphans = await directory.leases.unowned(live)
            except redis_failures() as exc:
                log.debug("looking for calls to take over failed: %s", exc)
                continue
            # Concurrently: each takeover waits on Redis a few times, and calls wait meanwhile.
            await asyncio.gather(*(self._take_over(call_id) for call_id in orphans))

    def _on_leases(self, lost: set[str], rewritten: set[str]) -> None:
        for call_id in lost:
            if call_id in self.sessions and not self.draining:
                # Expected during a handover; otherwise this instance was too slow to renew.
                log.warning("call taken over by another instance", extra={"call_id": call_id})
            self._spawn(self._let_go(call_id))
        for call_id in rewritten:
            # The lease had vanished (Redis lost its data?): the saved state may be gone too.
            self._mark_dirty(call_id)

    async def _let_go(self, call_id: str) -> None:
        """Stop running a call another instance now owns, without ending it."""
        session = self.sessions.pop(call_id, None)
        if session is None:
            return
        self._reserved -= 1
        ACTIVE_CALLS.dec()
        self._dirty.discard(call_id)
        self._saving.pop(call_id, None)
        self._leased.discard(call_id)
        await session.detach()

    # Worker events

    def start_listening(self) -> None:
        """Route worker events to calls, serve forwarded commands, keep leases and saved state,
        and take over calls whose owner died, in the background."""
        self._listener = asyncio.create_task(self._listen(), name="handoff-events")
        self.hangups.start()
        if self.directory is not None:
            self.directory.start(self._serve_control, self._on_leases)
            self._spawn(self._save_forever())
            self._spawn(self._take_over_forever())

    async def _listen(self) -> None:
        while True:
            try:
                async for event in self.queue.events(self.reply_to):
                    await self.dispatch(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("handoff event stream failed, resubscribing: %s", exc)
                await asyncio.sleep(1.0)

    async def dispatch(self, event: HandoffEvent) -> None:
        """Apply one worker event to its call, live or ended; one for a call this instance no
        longer runs goes on to its owner. Returns once the effect is saved, so the event is
        acknowledged only then. Its text is redacted and cut to `handoff_max_text_bytes` first."""
        session = self.sessions.get(event.call_id)
        if session is not None:
            admitted = self._admitted(session.call, event)
            if admitted is None:
                return
            event = admitted
            await session.handoff_event(event)
            if not session.gate.detached:
                # Until saved: the event is acknowledged when this returns.
                while True:
                    if await self._save(event.call_id):
                        return
                    await asyncio.sleep(0.2)
        call = self._ended.get(event.call_id)
        if call is None:
            if self.directory is not None:
                await self.queue.forward(event, not_to=self.instance_id)
            else:
                log.info("event for an unknown call dropped", extra={"call_id": event.call_id})
            return
        if event.handoff_id in call.handoffs and event.kind in ("result", "failed"):
            admitted = self._admitted(call, event)
            if admitted is not None:
                call.handoff_event(admitted)

    def _admitted(self, call: Call, event: HandoffEvent) -> HandoffEvent | None:
        """`event` redacted and within the handoff text cap (None: progress past its budget,
        dropped)."""
        record = call.handoffs.get(event.handoff_id)
        limit = self.settings.handoff_max_text_bytes
        spent = record.progress_bytes if record else 0
        bounded, cut = admit(event, spent, limit, self._core["secrets"])
        if cut and LIMIT_KIND not in call.limits_reached:
            call.limits_reached[LIMIT_KIND] = limit
            log.warning(
                "per-call cap reached: %s=%d; longer handoff text is cut",
                LIMIT_KIND,
                limit,
                extra={"call_id": call.call_id},
            )
        return bounded

    # Shutdown

    async def drain(self, timeout_s: float) -> None:
        """Refuse new calls; hand live calls over to live peers when configured to (and there
        are peers); otherwise let them finish for `timeout_s`, then hang them up."""
        self.draining = True
        if self.directory is not None:
            try:
                # Whether or not it hands calls over: no draining peer may hand its own here.
                await self.directory.leases.leave()
            except redis_failures() as exc:
                log_redis_failure(log, exc, "still listed as a peer while draining (redis: %s)")
        if self.sessions and self.settings.drain_handover:
            await self._hand_over_all()
        sessions = list(self.sessions.values())
        if sessions:
            waits = [asyncio.create_task(s.wait_ended()) for s in sessions]
            _, pending = await asyncio.wait(waits, timeout=timeout_s)
            for task in pending:
                task.cancel()
        for session in list(self.sessions.values()):
            await session.end("drain")

    async def _hand_over_all(self) -> None:
        if self.directory is None:
            return
        try:
            peers = await self.directory.leases.peers()
        except redis_failures() as exc:
            log_redis_failure(log, exc, "no handover, calls are drained here (redis: %s)")
            return
        if not peers:
            log.info("no live peer: calls are drained here")
            return
        call_ids = sorted(self.sessions)
        log.info(
            "handing %d call%s over to %d peer%s",
            len(call_ids),
            "" if len(call_ids) == 1 else "s",
            len(peers),
            "" if len(peers) == 1 else "s",
        )
        await asyncio.gather(
            *(self._hand_over(c, peers[n % len(peers)]) for n, c in enumerate(call_ids))
        )

    async def _hand_over(self, call_id: str, peer: str) -> None:
        """Stop applying events, save, let `peer` claim and join; then leave the sideband."""
        assert self.directory is not None
        session = self.sessions.get(call_id)
        if session is None:
            return
        await session.gate.pause()
        if not await self._save(call_id):
            session.gate.resume()
            return
        try:
            reply = await self.directory.request(
                peer, _ADOPT, call_id, {"from": self.instance_id}, timeout_s=_HANDOVER_JOIN_S
            )
            adopted = reply.status == 200 and bool(reply.body.get("result"))
        except (ControlTimeout, DirectoryUnavailable) as exc:
            log.warning("handover of %s to %s failed: %s", call_id, peer, exc)
            adopted = await self._owner_is(call_id, peer)
        if not adopted:
            session.gate.resume()
            return
        await self._let_go(call_id)

    async def _owner_is(self, call_id: str, instance: str) -> bool:
        assert self.directory is not None
        with contextlib.suppress(*redis_failures()):
            return await self.directory.leases.owner_of(call_id) == instance
        return False

    async def aclose(self) -> None:
        """Hang up everything and stop the listener."""
        for session in list(self.sessions.values()):
            await session.end("shutdown")
        for session in list(self.sessions.values()):
            await session.aclose()
        if self._listener is not None:
            self._listener.cancel()
            # Bounded: a broker client can swallow a cancellation mid-command.
            await asyncio.wait({self._listener}, timeout=2.0)
        for call_id in list(self._closing):
            await self._save(call_id)
        for task in self._background:
            task.cancel()
        if self._background:
            await asyncio.wait(set(self._background), timeout=2.0)
        await self.hangups.aclose()
        if self.directory is not None:
            await self.directory.aclose()
