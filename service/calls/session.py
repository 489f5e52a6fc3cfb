"""`CallSession`: the I/O loop of one call. `CallState` decides; this only does what it says:
receive → feed → apply; sleep → tick. It holds no protocol state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import assert_never

from service.calls.record import Call
from service.calls.stream import CallEventStream
from service.handoffs.queue import HandoffEvent
from service.metrics import (
    CALL_SETUP_SECONDS,
    EVENTS,
    HANDOFF_SECONDS,
    HANDOFFS,
    SIDEBAND_RECONNECTS,
)
from signaling.provider import CallNotFound, ProviderClient, ProviderError
from signaling.realtime import (
    Action,
    CallEnd,
    CallState,
    Connect,
    Delegation,
    EndCall,
    EndReason,
    EnqueueHandoff,
    EventObserved,
    HandoffDelivered,
    HangUp,
    IgnoredEvent,
    Joined,
    LimitReached,
    PublishTranscript,
    ReportError,
    SendEvent,
    SessionConfig,
    SessionReady,
    SessionSettings,
    SleepUntil,
    SpeechActivity,
)
from signaling.realtime.sideband import Sideband, SidebandError, SidebandRefused

log = logging.getLogger("callbridge.call")

Enqueue = Callable[[Delegation], Awaitable[None]]

YIELD_EVERY = 64
"""Frames handled before the loop yields, so a flooding provider cannot starve other calls."""


class CallSession:
    """Runs one call: joins its sideband, feeds `CallState`, applies its actions."""

    def __init__(
        self,
        call: Call,
        state: CallState,
        sideband: Sideband,
        provider: ProviderClient,
        stream: CallEventStream,
        enqueue: Enqueue,
        *,
        offer_received_at: float,
        on_end: Callable[[Call], None],
    ) -> None:
        self.call, self.state, self.sideband = call, state, sideband
        self.provider, self.stream = provider, stream
        self._enqueue, self._on_end = enqueue, on_end
        self._offer_received_at = offer_received_at
        self._ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._log = logging.LoggerAdapter(log, {"call_id": call.call_id})

    def start(self) -> None:
        """Run the call in the background (the SDP answer is not delayed by the join)."""
        self._task = asyncio.create_task(self._run(), name=f"call-{self.call.call_id}")

    async def wait_ended(self) -> None:
        """Return once the call has ended."""
        await self._ended.wait()

    async def _run(self) -> None:
        try:
            await self._apply(self.state.start(time.time()))
            frames = 0
            while not self.state.ended:
                delay = max(self.state.wake_at - time.time(), 0.0)
                if not self.sideband.connected:
                    await asyncio.sleep(min(delay, 3600.0))
                    await self._apply(self.state.tick(time.time()))
                    continue
                try:
                    async with asyncio.timeout(delay if delay != float("inf") else None):
                        raw = await self.sideband.receive()
                except TimeoutError:
                    await self._apply(self.state.tick(time.time()))
                    continue
                if raw is None:
                    sb = self.sideband
                    await self._apply(
                        self.state.link_closed(sb.close_code, sb.close_reason, time.time())
                    )
                    continue
                await self._apply(self.state.feed_raw(raw, time.time()))
                frames += 1
                if frames % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        except Exception:
            self._log.exception("call session crashed; hanging up")
            await self._apply(self.state.end(EndReason.INTERNAL_ERROR))

    async def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case SendEvent(payload):
                    if not await self.sideband.send(payload):
                        await self._apply(self.state.send_failed(payload, time.time()))
                case Connect():
                    await self._apply(await self._connect())
                case SleepUntil(at):
                    self._log.info("sideband rejoin in %.2f s", max(at - time.time(), 0.0))
                case Joined(rejoin):
                    self._joined(rejoin)
                case PublishTranscript(kind, role, item_id, text):
                    data = {"role": role, "item_id": item_id, "text": text}
                    self.stream.publish(f"transcript.{kind}", data)
                case EnqueueHandoff(delegation):
                    await self._handoff(delegation)
                case HandoffDelivered(handoff_id):
                    record = self.call.handoffs.get(handoff_id)
                    if record is not None:
                        record.delivered = True
                        HANDOFF_SECONDS.observe(time.time() - record.queued_at)
                case SessionReady(session_id):
                    self._session_ready(session_id)
                case SessionSettings(requested, confirmed):
                    self.call.config, self.call.confirmed_config = requested, confirmed
                case ReportError(code, message):
                    self.call.errors.append({"code": code, "message": message, "at": time.time()})
                    self._log.warning("provider error: %s %s", code, message)
                    self.stream.publish("call.error", {"code": code, "message": message})
                case LimitReached(kind, limit):
                    self.call.limits_reached[kind] = limit
                    self._log.warning("per-call cap reached: %s=%d; excess is dropped", kind, limit)
                case HangUp():
                    await self._hangup_at_provider()
                case EndCall(end):
                    await self._finish(end)
                case SpeechActivity():
                    pass
                case EventObserved(label):
                    EVENTS.labels(type=label).inc()
                case IgnoredEvent(type_name, reason):
                    self._log.debug("ignored provider event %s: %s", type_name, reason)
                case _:
                    assert_never(action)

    async def _connect(self) -> list[Action]:
        try:
            await self.sideband.connect()
        except SidebandRefused as exc:
            return self.state.join_failed(exc.status, exc.code, time.time(), exc.message)
        except SidebandError as exc:
            return self.state.join_failed(None, None, time.time(), str(exc))
        return self.state.link_opened(time.time())

    def _joined(self, rejoin: bool) -> None:
        if rejoin:
            SIDEBAND_RECONNECTS.inc()
            self.call.sideband_reconnects += 1
        else:
            self.call.joined_at = time.time()
            elapsed = time.monotonic() - self._offer_received_at
            CALL_SETUP_SECONDS.labels(stage="sideband_joined").observe(elapsed)
        if self.call.state == "starting":
            self.call.state = "active"
            self.stream.publish("call.state", {"state": "active"})

    def _session_ready(self, session_id: str | None) -> None:
        if self.call.session_id is None:
            elapsed = time.monotonic() - self._offer_received_at
            CALL_SETUP_SECONDS.labels(stage="session_updated").observe(elapsed)
        self.call.session_id = session_id
        self.stream.publish("session.ready", {"provider_session_id": session_id})

    async def _handoff(self, delegation: Delegation) -> None:
        record = self.call.handoff_queued(delegation)
        data = {"handoff_id": record.handoff_id, "request": record.request}
        self.stream.publish("handoff.queued", {**data, "steering": record.steering})
        self._log.info("handoff queued: %s", record.handoff_id)
        try:
            await self._enqueue(delegation)
        except Exception as exc:
            self._log.warning("handoff could not be queued: %s", exc)
            message = "the handoff queue is unavailable; please try again later"
            await self.handoff_event(
                HandoffEvent(
                    "failed", record.handoff_id, self.call.call_id, record.tool_call_id, message
                )
            )

    async def handoff_event(self, event: HandoffEvent) -> None:
        """Apply a worker's event; once the call has ended, results are only recorded."""
        if not self.call.handoff_event(event):
            if event.kind in ("result", "failed"):
                HANDOFFS.labels(outcome="duplicate").inc()
            return
        hid, now = event.handoff_id, time.time()
        if event.kind == "progress":
            self.stream.publish("handoff.progress", {"handoff_id": hid, "text": event.text})
            actions = self.state.submit_progress(hid, event.text, now)
        elif event.kind == "result":
            self.stream.publish("handoff.completed", {"handoff_id": hid, "output": event.text})
            actions = self.state.submit_result(hid, event.text, now)
        else:
            self.stream.publish("handoff.failed", {"handoff_id": hid, "error": event.text})
            actions = self.state.submit_failure(hid, event.text, now)
        await self._apply(actions)

    async def inject_text(self, text: str) -> None:
        """Add user text to the conversation and ask for a response."""
        await self._apply(self.state.inject_user_text(text, time.time()))

    async def update_session(self, config: SessionConfig) -> None:
        """Ask for new session settings (the record shows them once confirmed)."""
        await self._apply(self.state.update_session(config))

    async def end(self, reason: str) -> None:
        """End the call for `reason` (an `EndReason` value): hang up, close the sideband."""
        await self._apply(self.state.end(EndReason(reason)))
        await self._ended.wait()

    async def _finish(self, end: CallEnd) -> None:
        log_at = logging.WARNING if end.failed or end.code else logging.INFO
        self._log.log(
            log_at, "call ending: %s %s %s", end.reason.value, end.code or "", end.message or ""
        )
        await self.sideband.close()
        self.call.ended(end)
        detail = {"code": end.code} if end.code else {}
        self.stream.publish(
            "call.state", {"state": self.call.state, "reason": end.reason.value, **detail}
        )
        self.stream.close()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        self._on_end(self.call)
        self._ended.set()

    async def _hangup_at_provider(self) -> None:
        # A leaked call keeps costing money: retry a transient failure a few times.
        for attempt in range(3):
            try:
                await self.provider.hangup(self.call.call_id)
                return
            except CallNotFound:
                return
            except ProviderError as exc:
                self._log.warning("hangup attempt %d failed: %s", attempt + 1, exc.message)
                await asyncio.sleep(0.2 * (attempt + 1))

    async def aclose(self) -> None:
        """Cancel the loop (after `end`)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
