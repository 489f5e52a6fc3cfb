"""`CallSession`: the I/O loop of one call. `CallState` decides; this only does what it says:
receive → feed → apply; sleep → tick. It holds no protocol state."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable

from service.calls.effects import CallEffects, Enqueue, HangUpAtProvider, HungUpElsewhere
from service.calls.errors import OwnerUnreachable
from service.calls.gate import HandoverGate
from service.calls.record import Call
from service.calls.reporting import CallReporter
from service.calls.stream import CallEventStream
from service.handoffs.queue import HandoffEvent
from signaling.realtime import Action, CallState, EndReason, SessionConfig
from signaling.realtime.sideband import Sideband

log = logging.getLogger("callbridge.call")

YIELD_EVERY = 64
"""Frames fed to the core as one input, at most; the loop yields between inputs of frames
that were already waiting, so a flooding provider cannot starve other calls."""


class CallSession:
    """Runs one call: joins its sideband, feeds `CallState`, applies its actions.

    Its `gate` holds the call's inputs while the call is handed over to another instance.
    """

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
        hung_up_elsewhere: HungUpElsewhere,
    ) -> None:
        self.call, self.state, self.sideband, self.stream = call, state, sideband, stream
        self._on_end = on_end
        self._ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._log = logging.LoggerAdapter(log, {"call_id": call.call_id})
        reporter = CallReporter(call, stream, self._log, offer_received_at)
        self._effects = CallEffects(
            state, sideband, hang_up, hung_up_elsewhere, enqueue, reporter, self._finished
        )
        self.gate = HandoverGate()

    def start(self) -> None:
        """Run the call in the background (the SDP answer is not delayed by the join)."""
        self._task = asyncio.create_task(self._run(), name=f"call-{self.call.call_id}")

    async def wait_ended(self) -> None:
        """Return once the call has ended."""
        await self._ended.wait()

    async def _run(self) -> None:
        try:
            await self._effects.apply(self.state.start(time.time()))
            while not (self.state.ended or self.gate.detached):
                sb = self.sideband
                if not sb.connected and self.state.link_status == "open":
                    # Closed under a send: report it like a close seen by receive.
                    await self._input(self._link_closed)
                    continue
                if not sb.connected:
                    delay = max(self.state.wake_at - time.time(), 0.0)
                    await asyncio.sleep(min(delay, 3600.0))
                    await self._input(self._tick)
                    continue
                # Frames already received are fed without waiting, as `receive` would give
                # them (it only times out once it has to wait); then the loop yields.
                frames = sb.take(YIELD_EVERY)
                waited = not frames
                if waited:
                    delay = max(self.state.wake_at - time.time(), 0.0)
                    try:
                        async with asyncio.timeout(delay if delay != float("inf") else None):
                            received = await sb.receive(YIELD_EVERY)
                    except TimeoutError:
                        await self._input(self._tick)
                        continue
                    if received is None:
                        await self._input(self._link_closed)
                        continue
                    frames = received
                    del received
                await self.gate.run(functools.partial(self._effects.feed, frames))
                # Not kept while the next frames are awaited: a quiet call holds no old frame.
                del frames
                if not waited:
                    await asyncio.sleep(0)
        except Exception:
            self._log.exception("call session crashed; hanging up")
            await self._effects.apply(self.state.end(EndReason.INTERNAL_ERROR))

    async def _input(self, take: Callable[[], list[Action]]) -> None:
        """Give the core one input through the gate and apply what it decides."""
        await self.gate.run(lambda: self._effects.apply(take()))

    def _tick(self) -> list[Action]:
        return self.state.tick(time.time())

    def _link_closed(self) -> list[Action]:
        return self.state.link_closed(
            self.sideband.close_code, self.sideband.close_reason, time.time()
        )

    async def handoff_event(self, event: HandoffEvent) -> None:
        """Apply a worker's event; once the call has ended, results are only recorded.

        Not applied once the gate is `detached` (the caller sends it on to the new owner).
        """
        await self.gate.run(functools.partial(self._effects.handoff_event, event))

    async def inject_text(self, text: str) -> None:
        """Add user text to the conversation and ask for a response. Raises `OwnerUnreachable`
        when the call was handed over meanwhile (the command belongs to the new owner)."""
        await self._command(lambda: self.state.inject_user_text(text, time.time()))

    async def update_session(self, config: SessionConfig) -> None:
        """Ask for new session settings (the record shows them once confirmed); raises as
        `inject_text` does."""
        await self._command(lambda: self.state.update_session(config))

    async def _command(self, take: Callable[[], list[Action]]) -> None:
        # Through the gate, so that a command cannot slip into a call being handed over.
        if not await self.gate.run(lambda: self._effects.apply(take())):
            raise OwnerUnreachable("the call was just handed over to another instance; try again")

    async def detach(self) -> None:
        """Leave the call to the instance that took it over: stop (after the input being
        applied), close our sideband link, and do not end the call."""
        await self.gate.detach()
        self._stop()
        await self.sideband.close()

    async def end(self, reason: str) -> None:
        """End the call for `reason` (an `EndReason` value): hang up, close the sideband."""
        await self._effects.apply(self.state.end(EndReason(reason)))
        await self._ended.wait()

    def _finished(self) -> None:
        self._stop()
        self._on_end(self.call)
        self._ended.set()

    def _stop(self) -> None:
        """Cancel the loop, unless it is the caller (it then ends by itself)."""
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    async def aclose(self) -> None:
        """Cancel the loop (after `end`)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
