"""`CallEffects`: carries out what a call's core decides that needs I/O (sending on the sideband,
joining it, queueing handoffs, hanging up at the provider, ending the call) and gives each
outcome back to the core. Reports that need no I/O go to `CallReporter`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from service.calls.reporting import REPORTS, CallReporter
from service.handoffs.queue import HandoffEvent
from signaling.ids import CallId
from signaling.realtime import (
    Action,
    CallState,
    Connect,
    Delegation,
    EndCall,
    EndReason,
    EnqueueHandoff,
    HangUp,
    SendEvent,
)
from signaling.realtime.sideband import Sideband, SidebandError, SidebandRefused

Enqueue = Callable[[Delegation], Awaitable[None]]
HangUpAtProvider = Callable[[CallId], Awaitable[bool]]
HungUpElsewhere = Callable[[CallId], Awaitable[bool]]
"""Whether another instance hung the call up at the provider for the API while this one, its
owner, did not answer (`CallManager`); never raises."""


class CallEffects:
    """Applies one call's actions; `finished` is called once the call has ended."""

    def __init__(
        self,
        state: CallState,
        sideband: Sideband,
        hang_up: HangUpAtProvider,
        hung_up_elsewhere: HungUpElsewhere,
        enqueue: Enqueue,
        reporter: CallReporter,
        finished: Callable[[], None],
    ) -> None:
        self.state, self.sideband, self._hang_up = state, sideband, hang_up
        self._hung_up_elsewhere = hung_up_elsewhere
        self._enqueue, self._reporter, self._finished = enqueue, reporter, finished

    async def apply(self, actions: list[Action]) -> None:
        """Carry out `actions` in order, each followed by what the core makes of its outcome."""
        report = self._reporter.apply
        for action in actions:
            if isinstance(action, REPORTS):
                report(action)
            else:
                await self._carry_out(action)

    async def feed(self, frames: list[str | bytes]) -> None:
        """Give the core sideband `frames` one at a time, each frame's actions carried out (as
        `apply` does) before the next frame is fed; none once the call has ended. The provider
        events seen are counted in the metric once, at the end."""
        state, reporter = self.state, self._reporter
        report = reporter.apply
        try:
            for raw in frames:
                if state.ended:
                    break
                for action in state.feed_raw(raw, time.time()):
                    if isinstance(action, REPORTS):
                        report(action)
                    else:
                        await self._carry_out(action)
        finally:
            reporter.flush_events()

    async def _carry_out(
        self, action: SendEvent | Connect | EnqueueHandoff | HangUp | EndCall
    ) -> None:
        match action:
            case SendEvent(payload=payload):
                if not await self.sideband.send(payload):
                    await self.apply(self.state.send_failed(payload, time.time()))
            case Connect():
                await self.apply(await self._connect())
            case EnqueueHandoff(delegation=delegation, again=again):
                await self._handoff(delegation, again=again)
            case HangUp():
                # Retried in the background until the provider confirms (`Hangups`).
                await self._hang_up(self._reporter.call.call_id)
            case EndCall(end=end):
                self._reporter.ending(end)
                await self.sideband.close()
                self._reporter.ended(end)
                self._finished()

    async def handoff_event(self, event: HandoffEvent) -> None:
        """Record a worker's event, and give it to the core unless the call already had it."""
        if not self._reporter.handoff_event(event):
            return
        state = self.state
        submit = {"progress": state.submit_progress, "result": state.submit_result}.get(
            event.kind, state.submit_failure
        )
        await self.apply(submit(event.handoff_id, event.text, time.time()))

    async def _connect(self) -> list[Action]:
        try:
            await self.sideband.connect()
        except SidebandRefused as exc:
            # A call the provider no longer has may be one another instance hung up for the
            # API while this one did not answer: that hang-up, a command like any other, is
            # reported instead, so the call ends as hung up rather than by the provider's hand.
            # The core hangs up again: a 404 at worst, and no call left live should that
            # instance have died between its mark and its own hang-up.
            if await self._hung_up_elsewhere(self._reporter.call.call_id):
                return self.state.end(EndReason.HANGUP)
            return self.state.join_failed(exc.status, exc.code, time.time(), exc.message)
        except SidebandError as exc:
            return self.state.join_failed(None, None, time.time(), str(exc))
        return self.state.link_opened(time.time())

    async def _handoff(self, delegation: Delegation, *, again: bool) -> None:
        if again:
            await self._handoff_again(delegation)
            return
        self._reporter.handoff_queued(delegation)
        try:
            await self._enqueue(delegation)
        except Exception as exc:
            await self.handoff_event(self._reporter.enqueue_failed(delegation, exc))

    async def _handoff_again(self, delegation: Delegation) -> None:
        # In the record already, as its previous owner saved it. Its first put may well have
        # reached a worker, so a refusal now is no reason to fail it: its deadline decides.
        if not self.state.awaits_result(delegation.handoff_id):
            return
        self._reporter.handoff_queued_again(delegation)
        try:
            await self._enqueue(delegation)
        except Exception as exc:
            self._reporter.requeue_failed(delegation, exc)
