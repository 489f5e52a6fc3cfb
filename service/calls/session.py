"""`CallSession`: the task that owns one call's sideband and applies `CallState`'s actions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, assert_never

from service.calls.record import Call, HandoffRecord
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
    CallEnded,
    CallState,
    Delegation,
    EnqueueHandoff,
    EventObserved,
    IgnoredEvent,
    PublishTranscript,
    ReportError,
    SendEvent,
    SessionConfig,
    SessionReady,
    SpeechActivity,
)
from signaling.realtime.sideband import (
    Sideband,
    SidebandError,
    SidebandGone,
)

log = logging.getLogger("callbridge.call")

Enqueue = Callable[[Delegation], Awaitable[None]]


class CallSession:
    """Joins the sideband, feeds the state machine, and ends the call exactly once."""

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
        restored: bool = False,
    ) -> None:
        self.call = call
        self.state = state
        self.sideband = sideband
        self.provider = provider
        self.stream = stream
        self._enqueue = enqueue
        self._offer_received_at = offer_received_at
        self._on_end = on_end
        self._unsent: list[dict[str, Any]] = []
        self._ending = False
        self._ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._session_ready_seen = False
        # A call restored from the store (taken over) was set up elsewhere: no setup metrics.
        self._restored = restored
        # Held while an event is applied, and by `pause` during a handover.
        self._applying = asyncio.Lock()
        self.detached = False
        self._log = logging.LoggerAdapter(log, {"call_id": call.call_id})

    def start(self) -> None:
        """Run the session in the background (the SDP answer is not delayed by the join)."""
        self._task = asyncio.create_task(self._run(), name=f"call-{self.call.call_id}")
        self._watchdog = asyncio.create_task(self._watch(), name=f"watch-{self.call.call_id}")

    async def wait_ended(self) -> None:
        """Return once the call has ended."""
        await self._ended.wait()

    # The sideband loop

    async def _run(self) -> None:
        try:
            try:
                await self.sideband.join()
            except SidebandGone:
                await self._finish("provider_ended", hangup=False, failed=True)
                return
            except SidebandError as exc:
                self._log.warning("sideband join failed, hanging up: %s", exc)
                await self._finish("sideband_unavailable", hangup=True, failed=True)
                return
            await self._on_joined(first=True)
            while not self._ending:
                raw = await self.sideband.receive()
                if raw is not None:
                    async with self._applying:
                        await self._apply(self.state.feed_raw(raw))
                    continue
                if self._ending:
                    break
                await self._rejoin()
        except asyncio.CancelledError:
            raise
        except Exception:
            self._log.exception("call session crashed; hanging up")
            await self._finish("internal_error", hangup=True, failed=True)

    async def _on_joined(self, *, first: bool) -> None:
        self.call.joined_at = self.call.joined_at or time.time()
        if first and not self._restored:
            CALL_SETUP_SECONDS.labels(stage="sideband_joined").observe(
                time.monotonic() - self._offer_received_at
            )
        if self.call.state == "starting":
            self.call.state = "active"
            self.stream.publish("call.state", {"state": "active"})
        await self._apply(self.state.joined())
        pending, self._unsent = self._unsent, []
        for payload in pending:
            await self._send(payload)

    async def _rejoin(self) -> None:
        code, reason = self.sideband.close_code, self.sideband.close_reason
        self._log.info("sideband closed (code=%s reason=%r); rejoining", code, reason)
        self.state.disconnected()
        SIDEBAND_RECONNECTS.inc()
        self.call.sideband_reconnects += 1
        try:
            await self.sideband.join()
        except SidebandGone:
            await self._finish("provider_ended", hangup=False)
            return
        except SidebandError as exc:
            self._log.warning("sideband lost for good, hanging up: %s", exc)
            await self._finish("sideband_lost", hangup=True)
            return
        await self._on_joined(first=False)

    async def _watch(self) -> None:
        """Enforce the maximum duration and the idle timeout (the sideband may never hear
        that the browser left)."""
        deadline = time.monotonic() + self.call.max_duration_s
        while not self._ending:
            now = time.monotonic()
            idle_at = self.call.last_activity + self.call.idle_timeout_s
            if now >= deadline:
                await self.end("max_duration")
                return
            if now >= idle_at:
                await self.end("idle_timeout")
                return
            await asyncio.sleep(min(deadline, idle_at) - now + 0.01)

    # Applying actions

    async def _send(self, payload: dict[str, Any]) -> None:
        if not await self.sideband.send(payload):
            # Not lost: sent after the next rejoin.
            self._unsent.append(payload)

    def _touch(self) -> None:
        self.call.last_activity = time.monotonic()

    async def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case SendEvent(payload):
                    await self._send(payload)
                case PublishTranscript(kind, role, item_id, text):
                    self._touch()
                    self.stream.publish(
                        f"transcript.{kind}", {"role": role, "item_id": item_id, "text": text}
                    )
                case EnqueueHandoff(delegation):
                    self._touch()
                    await self._handoff(delegation)
                case SessionReady(session_id):
                    self.call.session_id = session_id
                    if not self._session_ready_seen:
                        self._session_ready_seen = True
                        CALL_SETUP_SECONDS.labels(stage="session_updated").observe(
                            time.monotonic() - self._offer_received_at
                        )
                    self.stream.publish("session.ready", {"provider_session_id": session_id})
                case ReportError(code, message):
                    error = {"code": code, "message": message, "at": time.time()}
                    self.call.errors.append(error)
                    self._log.warning("provider error event: %s %s", code, message)
                    self.stream.publish("call.error", {"code": code, "message": message})
                case CallEnded(reason):
                    await self._finish(f"provider_ended:{reason}", hangup=True)
                case SpeechActivity():
                    self._touch()
                case EventObserved(type_name):
                    EVENTS.labels(type=type_name).inc()
                case IgnoredEvent(type_name, reason):
                    self._log.debug("ignored provider event %s: %s", type_name, reason)
                case _:
                    assert_never(action)

    async def _handoff(self, delegation: Delegation) -> None:
        record = HandoffRecord(
            handoff_id=delegation.handoff_id,
            tool_call_id=delegation.tool_call_id,
            request=delegation.request,
            steering=delegation.steering,
        )
        self.call.handoffs[delegation.handoff_id] = record
        self.stream.publish(
            "handoff.queued",
            {
                "handoff_id": delegation.handoff_id,
                "request": delegation.request,
                "steering": delegation.steering,
            },
        )
        extra = {"call_id": self.call.call_id, "handoff_id": delegation.handoff_id}
        log.info("handoff queued", extra=extra)
        try:
            await self._enqueue(delegation)
        except Exception as exc:
            log.warning("handoff could not be queued: %s", exc, extra=extra)
            await self._handoff_event(
                HandoffEvent(
                    "failed",
                    delegation.handoff_id,
                    delegation.call_id,
                    delegation.tool_call_id,
                    "the handoff queue is unavailable; please try again later",
                )
            )

    async def handoff_event(self, event: HandoffEvent) -> None:
        """Apply a worker's event; once the call has ended, results are recorded, not sent.

        Not applied once the session is `detached` (the caller sends it on to the new owner).
        """
        async with self._applying:
            if not self.detached:
                await self._handoff_event(event)

    async def _handoff_event(self, event: HandoffEvent) -> None:
        record = self.call.handoffs.get(event.handoff_id)
        if record is None:
            record = HandoffRecord(event.handoff_id, event.tool_call_id, "", False)
            self.call.handoffs[event.handoff_id] = record
        self._touch()
        if event.kind == "started":
            if record.state == "queued":
                record.state = "running"
            return
        if event.kind == "progress":
            record.progress.append(event.text)
            self.stream.publish(
                "handoff.progress", {"handoff_id": event.handoff_id, "text": event.text}
            )
            if self.call.live:
                await self._apply(self.state.submit_progress(event.handoff_id, event.text))
            return
        if record.state in ("completed", "failed"):
            # A redelivered handoff's second result: the tool call already has its output.
            HANDOFFS.labels(outcome="duplicate").inc()
            return
        record.finished_at = time.time()
        if event.kind == "result":
            record.state, record.output = "completed", event.text
            actions = self.state.submit_result(event.handoff_id, event.text)
            name = "handoff.completed"
            payload = {"handoff_id": event.handoff_id, "output": event.text}
        else:
            record.state, record.error = "failed", event.text
            actions = self.state.submit_failure(event.handoff_id, event.text)
            name = "handoff.failed"
            payload = {"handoff_id": event.handoff_id, "error": event.text}
        self.stream.publish(name, payload)
        if self.call.live:
            record.delivered = True
            HANDOFF_SECONDS.observe(record.finished_at - record.queued_at)
            await self._apply(actions)

    # Handing the call over to another instance

    async def pause(self) -> None:
        """Stop applying provider and worker events (they wait) until `resume` or `detach`."""
        await self._applying.acquire()

    def resume(self) -> None:
        """Apply events again after `pause`."""
        if self._applying.locked():
            self._applying.release()

    async def detach(self) -> None:
        """Leave the call to the instance that took it over: stop, close our sideband link,
        and do not end the call."""
        self.detached = True
        self._ending = True
        current = asyncio.current_task()
        for task in (self._task, self._watchdog):
            if task is not None and task is not current and not task.done():
                task.cancel()
        self.resume()
        await self.sideband.close()

    # Control from the API

    async def inject_text(self, text: str) -> None:
        """Add user text to the conversation and ask for a response."""
        self._touch()
        await self._apply(self.state.inject_user_text(text))

    async def update_session(self, config: SessionConfig) -> None:
        """Change the live session's settings."""
        self.call.config = config
        await self._apply(self.state.update_session(config))

    async def end(self, reason: str) -> None:
        """End the call: hang up at the provider, close the sideband."""
        await self._finish(reason, hangup=True)

    async def _finish(self, reason: str, *, hangup: bool, failed: bool = False) -> None:
        if self._ending:
            await self._ended.wait()
            return
        self._ending = True
        self._log.info("call ending: %s", reason)
        if hangup:
            await self._hangup_at_provider()
        await self.sideband.close()
        self.call.state = "failed" if failed else "ended"
        self.call.ended_at = time.time()
        self.call.end_reason = reason
        self.stream.publish("call.state", {"state": self.call.state, "reason": reason})
        self.stream.close()
        current = asyncio.current_task()
        for task in (self._task, self._watchdog):
            if task is not None and task is not current and not task.done():
                task.cancel()
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
        """Cancel the tasks (after `end`)."""
        for task in (self._task, self._watchdog):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
