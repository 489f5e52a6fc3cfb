"""`CallManager`: starts calls, owns their sessions, routes worker events back to them."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from service.auth import Principal
from service.calls.control import execute
from service.calls.directory import CallDirectory, ControlReply, ControlRequest
from service.calls.record import Call
from service.calls.session import CallSession
from service.calls.stream import CallEventStream
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
from service.settings import Settings
from signaling.credentials import Credentials
from signaling.ids import CallId
from signaling.provider import ProviderClient, ProviderError
from signaling.realtime import CallState, Delegation, SessionConfig, session_payload
from signaling.realtime.sideband import Sideband, sideband_url

log = logging.getLogger("callbridge.calls")


def _new_item_id() -> str:
    # Unique across restarts and instances; the provider allows at most 32 characters.
    return f"cb_{uuid.uuid4().hex[:24]}"


class CapacityExceeded(Exception):
    """Every call slot of this instance is taken."""


class Draining(Exception):
    """The instance is shutting down and takes no new calls."""


class CallManager:
    """The registry of this instance's calls."""

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
        self.settings = settings
        self.provider = provider
        self.queue = queue
        self.provider_base_url = provider_base_url
        self.credentials = credentials
        self.instance_id = instance_id or f"cb-{uuid.uuid4().hex[:12]}"
        self.reply_to = f"results:{self.instance_id}"
        self.sessions: dict[str, CallSession] = {}
        self._ended: OrderedDict[str, Call] = OrderedDict()
        self._recent_ended = recent_ended
        # Serialised size of each retained ended call, and their total: bounded by a budget.
        self._ended_bytes: dict[str, int] = {}
        self.ended_total_bytes = 0
        self._reserved = 0
        self.draining = False
        self._listener: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        # Delayed clean-ups that shutdown may cancel: the directory's keys expire by themselves.
        self._lingering: set[asyncio.Task[None]] = set()
        self.directory = directory_factory(self.instance_id) if directory_factory else None

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

    def _admit(self) -> None:
        """Raise `Draining` or `CapacityExceeded` when no new call may start now."""
        if self.draining:
            CALL_STARTS.labels(outcome="draining").inc()
            raise Draining("this instance is draining")
        if self._reserved >= self.settings.max_calls:
            CALL_STARTS.labels(outcome="capacity").inc()
            raise CapacityExceeded(f"all {self.settings.max_calls} call slots are in use")

    # Lifecycle of one call

    async def start(
        self, offer_sdp: str, config: SessionConfig, *, started_by: str | None = None
    ) -> tuple[Call, str]:
        """Create the call at the provider and start its session; return the SDP answer."""
        received = time.monotonic()
        self._admit()
        # Reserved before the first await, so concurrent starts cannot overshoot the cap.
        self._reserved += 1
        try:
            created = await self.provider.create_call(
                offer_sdp, session_payload(config, include_model=True)
            )
        except ProviderError:
            self._reserved -= 1
            CALL_STARTS.labels(outcome="provider_error").inc()
            raise
        except BaseException:
            self._reserved -= 1
            raise
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
        self._open_session(call, received)
        return call, created.answer_sdp

    async def accept_incoming(
        self, call_id: CallId, config: SessionConfig, sip_headers: dict[str, str]
    ) -> Call:
        """Answer a ringing phone call with `config`, then join its sideband as for WebRTC.

        Raises `Draining` or `CapacityExceeded` without answering, and the provider's
        `ProviderError` (`CallNotFound` when the caller is gone) if the answer fails.
        """
        received = time.monotonic()
        self._admit()
        self._reserved += 1
        try:
            await self.provider.accept(call_id, session_payload(config, include_model=True))
        except ProviderError:
            self._reserved -= 1
            CALL_STARTS.labels(outcome="provider_error").inc()
            raise
        except BaseException:
            self._reserved -= 1
            raise
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
        self._open_session(call, received)
        return call

    def _open_session(self, call: Call, received: float) -> None:
        """Track an answered call and join its sideband in the background."""
        state = CallState(
            call.call_id,
            call.config,
            limits=self.settings.call_limits(),
            new_item_id=_new_item_id,
            jitter=random.random,
            secrets=self.settings.secrets(),
        )
        call.transcript = state.transcript
        sideband = Sideband(
            sideband_url(self.provider_base_url, call.call_id),
            self.settings.api_key_value(),
            ping_interval_s=self.settings.sideband_ping_interval_s,
            credentials=self.credentials,
        )
        session = CallSession(
            call,
            state,
            sideband,
            self.provider,
            CallEventStream(),
            self._enqueue,
            offer_received_at=received,
            on_end=self._ended_call,
        )
        self.sessions[call.call_id] = session
        ACTIVE_CALLS.inc()
        CALL_STARTS.labels(outcome="started").inc()
        session.start()
        if self.directory is not None:
            # In the background: a slow broker must not delay the SDP answer.
            self._spawn(self._directory_op(self.directory.register(call.call_id)))
        log.info("call started", extra={"call_id": call.call_id})

    async def _enqueue(self, delegation: Delegation) -> None:
        await self.queue.put(delegation, self.reply_to)

    def _ended_call(self, call: Call) -> None:
        session = self.sessions.pop(call.call_id, None)
        if session is None:
            return
        self._reserved -= 1
        ACTIVE_CALLS.dec()
        reason = call.end_reason or OTHER
        CALLS_ENDED.labels(reason=label(reason, END_REASONS)).inc()
        self._retain(call)
        if self.directory is not None:
            # Kept registered for a while would be nicer; unregistering keeps lookups exact.
            self._spawn(self._unregister_later(call.call_id), lingering=True)

    def _retain(self, call: Call) -> None:
        """Keep an ended call's record, within the count and the byte budget (oldest go first).

        A record is measured as its JSON (what `GET /v1/calls/{id}` would serve); one larger
        than the whole budget is not kept.
        """
        size = len(json.dumps(call.to_json(full=True), separators=(",", ":")))
        self.ended_total_bytes += size - self._ended_bytes.get(call.call_id, 0)
        self._ended_bytes[call.call_id] = size
        self._ended[call.call_id] = call
        budget = self.settings.ended_calls_max_bytes
        while self._ended and (
            len(self._ended) > self._recent_ended or self.ended_total_bytes > budget
        ):
            evicted, _ = self._ended.popitem(last=False)
            self.ended_total_bytes -= self._ended_bytes.pop(evicted)

    async def _unregister_later(self, call_id: str) -> None:
        # The record stays here a while after the call ends; so does the way to it.
        await asyncio.sleep(self.settings.ended_call_retention_s)
        if self.directory is not None:
            await self._directory_op(self.directory.unregister(call_id))

    def _spawn(self, work: Coroutine[Any, Any, None], *, lingering: bool = False) -> None:
        task = asyncio.create_task(work)
        tasks = self._lingering if lingering else self._background
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _directory_op(self, operation: Awaitable[None]) -> None:
        try:
            await operation
        except Exception as exc:
            log.warning("call directory update failed: %s", exc)

    # Lookups and control

    def get(self, call_id: str) -> Call | None:
        """A live or recently ended call."""
        session = self.sessions.get(call_id)
        if session is not None:
            return session.call
        return self._ended.get(call_id)

    def session(self, call_id: str) -> CallSession | None:
        """The live session of a call."""
        return self.sessions.get(call_id)

    def active(self) -> list[Call]:
        """Live calls."""
        return [s.call for s in self.sessions.values()]

    async def hangup(self, call_id: CallId, reason: str = "hangup") -> Call | None:
        """End a live call; None if unknown."""
        session = self.sessions.get(call_id)
        if session is None:
            return self._ended.get(call_id)
        await session.end(reason)
        return session.call

    async def refer(self, call_id: CallId, target_uri: str) -> None:
        """Transfer a live phone call to `target_uri` (SIP REFER); the provider ends it after.

        Raises `ProviderError` when the provider refuses.
        """
        session = self.sessions.get(call_id)
        await self.provider.refer(call_id, target_uri)
        if session is not None:
            session.call.transferred_to = target_uri

    # Worker events

    def start_listening(self) -> None:
        """Route worker events to calls, and serve forwarded control requests, in the background."""
        self._listener = asyncio.create_task(self._listen(), name="handoff-events")
        if self.directory is not None:
            # The directory keeps its registrations fresh while this instance lives.
            self.directory.start(self._serve_control)

    async def _serve_control(self, request: ControlRequest) -> ControlReply:
        principal = Principal(**request.body.get("principal", {"kind": "anonymous"}))
        status, body = await execute(
            self, request.op, request.call_id, request.body.get("body", {}), principal
        )
        return ControlReply(status, body)

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
        """Apply one worker event to its call, live or ended."""
        session = self.sessions.get(event.call_id)
        if session is not None:
            await session.handoff_event(event)
            return
        call = self._ended.get(event.call_id)
        if call is None:
            log.info("event for an unknown call dropped", extra={"call_id": event.call_id})
            return
        record = call.handoffs.get(event.handoff_id)
        if record is not None and event.kind in ("result", "failed"):
            record.state = "completed" if event.kind == "result" else "failed"
            record.output = event.text if event.kind == "result" else None
            record.error = event.text if event.kind == "failed" else None
            record.finished_at = time.time()
            self._retain(call)

    # Shutdown

    async def drain(self, timeout_s: float) -> None:
        """Refuse new calls, let live ones finish for `timeout_s`, then hang them up."""
        self.draining = True
        sessions = list(self.sessions.values())
        if sessions:
            waits = [asyncio.create_task(s.wait_ended()) for s in sessions]
            _, pending = await asyncio.wait(waits, timeout=timeout_s)
            for task in pending:
                task.cancel()
        for session in list(self.sessions.values()):
            await session.end("drain")

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
        for task in self._lingering:
            task.cancel()
        if self._background:
            await asyncio.wait(set(self._background), timeout=2.0)
        if self.directory is not None:
            await self.directory.aclose()
