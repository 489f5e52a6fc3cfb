"""`CallSession`: the I/O loop of one call. `CallState` decides; this only does what it says:
receive → feed → apply; sleep → tick. It holds no protocol state."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable

from service.calls.record import Call
from service.calls.reporting import CallReporter
from service.calls.stream import CallEventStream
from service.handoffs.queue import HandoffEvent
from signaling.ids import CallId
from signaling.realtime import (
    Action,
    CallEnd,
    CallState,
    Connect,
    Delegation,
    EndCall,
    EndReason,
    EnqueueHandoff,
    HangUp,
    SendEvent,
    SessionConfig,
)
from signaling.realtime.sideband import Sideband, SidebandError, SidebandRefused

log = logging.getLogger("callbridge.call")

Enqueue = Callable[[Delegation], Awaitable[None]]
HangUpAtProvider = Callable[[CallId], Awaitable[bool]]

YIELD_EVERY = 64
"""Frames handled before the loop yields, so a flooding provider cannot starve other calls."""


class CallSession:
    """Runs one call: joins its sideband, feeds `CallState`, applies its actions."""

    def __init__(
        self,
        call: Call,
        state: CallState,
        sideband: Sideband,
        hang_up: HangUpAtProvider,
        stream: CallEventStream,
        enqueue: Enqueue,
        *,
        offer_received_at: float,
        on_end: Callable[[Call], None],
    ) -> None:
        self.call, self.state, self.sideband = call, state, sideband
        self._hang_up, self.stream = hang_up, stream
        self._enqueue, self._on_end = enqueue, on_end
        self._ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._log = logging.LoggerAdapter(log, {"call_id": call.call_id})
        self._reporter = CallReporter(call, stream, self._log, offer_received_at)
        # Held while the core takes an input, and by `pause` while the call is handed over.
        self._applying = asyncio.Lock()
        self._paused = False
        self.detached = False

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
                sb = self.sideband
                if not sb.connected and self.state.link_status == "open":
                    # Closed under a send: report it like a close seen by receive.
                    await self._input(self._link_closed)
                    continue
                if not sb.connected:
                    await asyncio.sleep(min(delay, 3600.0))
                    await self._input(self._tick)
                    continue
                try:
                    async with asyncio.timeout(delay if delay != float("inf") else None):
                        raw = await sb.receive()
                except TimeoutError:
                    await self._input(self._tick)
                    continue
                if raw is None:
                    await self._input(self._link_closed)
                    continue
                await self._input(functools.partial(self._feed, raw))
                frames += 1
                if frames % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        except Exception:
            self._log.exception("call session crashed; hanging up")
            await self._apply(self.state.end(EndReason.INTERNAL_ERROR))

    async def _input(self, take: Callable[[], list[Action]]) -> None:
        """Give the core one input (`take` runs under the lock a handover pauses) and apply
        what it decides."""
        async with self._applying:
            await self._apply(take())

    def _feed(self, raw: str | bytes) -> list[Action]:
        return self.state.feed_raw(raw, time.time())

    def _tick(self) -> list[Action]:
        return self.state.tick(time.time())

    def _link_closed(self) -> list[Action]:
        return self.state.link_closed(
            self.sideband.close_code, self.sideband.close_reason, time.time()
        )

    async def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case SendEvent(payload):
                    if not await self.sideband.send(payload):
                        await self._apply(self.state.send_failed(payload, time.time()))
                case Connect():
                    await self._apply(await self._connect())
                case EnqueueHandoff(delegation):
                    await self._handoff(delegation)
                case HangUp():
                    # Retried in the background until the provider confirms (`Hangups`).
                    await self._hang_up(self.call.call_id)
                case EndCall(end):
                    await self._finish(end)
                case _:
                    self._reporter.apply(action)

    async def _connect(self) -> list[Action]:
        try:
            await self.sideband.connect()
        except SidebandRefused as exc:
            return self.state.join_failed(exc.status, exc.code, time.time(), exc.message)
        except SidebandError as exc:
            return self.state.join_failed(None, None, time.time(), str(exc))
        return self.state.link_opened(time.time())

    async def _handoff(self, delegation: Delegation) -> None:
        record = self._reporter.handoff_queued(delegation)
        try:
            await self._enqueue(delegation)
        except Exception as exc:
            self._log.warning("handoff could not be queued: %s", exc)
            message = "the handoff queue is unavailable; please try again later"
            await self._handoff_event(
                HandoffEvent(
                    "failed", record.handoff_id, self.call.call_id, record.tool_call_id, message
                )
            )

    async def handoff_event(self, event: HandoffEvent) -> None:
        """Apply a worker's event; once the call has ended, results are only recorded.

        Not applied once the session is `detached` (the caller sends it on to the new owner).
        """
        async with self._applying:
            if not self.detached:
                await self._handoff_event(event)

    async def _handoff_event(self, event: HandoffEvent) -> None:
        if not self._reporter.handoff_event(event):
            return
        state = self.state
        submit = {"progress": state.submit_progress, "result": state.submit_result}.get(
            event.kind, state.submit_failure
        )
        await self._apply(submit(event.handoff_id, event.text, time.time()))

    async def inject_text(self, text: str) -> None:
        """Add user text to the conversation and ask for a response."""
        await self._apply(self.state.inject_user_text(text, time.time()))

    async def update_session(self, config: SessionConfig) -> None:
        """Ask for new session settings (the record shows them once confirmed)."""
        await self._apply(self.state.update_session(config))

    # Handing the call over to another instance

    async def pause(self) -> None:
        """Stop taking provider and worker events (they wait) until `resume` or `detach`;
        an input being applied is finished first."""
        await self._applying.acquire()
        self._paused = True

    def resume(self) -> None:
        """Take events again after `pause`."""
        if self._paused:
            self._paused = False
            self._applying.release()

    async def detach(self) -> None:
        """Leave the call to the instance that took it over: stop (after the input being
        applied), close our sideband link, and do not end the call."""
        if not self._paused:
            await self.pause()
        self.detached = True
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        self.resume()
        await self.sideband.close()

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

    async def aclose(self) -> None:
        """Cancel the loop (after `end`)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
