"""`IncomingCalls`: decides each ringing phone call in the background and tells the provider.

The webhook must be answered quickly (the provider retries a slow or failed delivery), so the
API hands the call over here and returns; the router, the accept/reject/refer request and the
sideband join all happen afterwards, in a task this object owns.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from service.calls.errors import CapacityExceeded, Draining
from service.calls.manager import CallManager
from service.calls.sip_router import (
    Accept,
    IncomingCall,
    Refer,
    Reject,
    Router,
    RouterError,
)
from service.metrics import SIP_CALLS
from service.outbound_http import HoldsConnections
from signaling.provider import ProviderError

log = logging.getLogger("callbridge.sip")

# SIP statuses (RFC 3261 §21) we answer with when we cannot take a call.
BUSY_HERE = 486
TEMPORARILY_UNAVAILABLE = 480


class IncomingCalls:
    """Routes ringing phone calls; at most `max_ringing` are being decided at once."""

    def __init__(
        self, manager: CallManager, router: Router, *, router_timeout_s: float, max_ringing: int
    ) -> None:
        self._manager = manager
        self._router = router
        self._router_timeout_s = router_timeout_s
        self._max_ringing = max_ringing
        self._tasks: set[asyncio.Task[None]] = set()

    def ring(self, call: IncomingCall) -> None:
        """Decide `call` in the background (never raises, never waits)."""
        task = asyncio.create_task(self._decide(call), name=f"ring-{call.call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _decide(self, call: IncomingCall) -> None:
        extra = {"call_id": call.call_id}
        if self._manager.get(call.call_id) is not None:
            # Announced again under another webhook id: it was answered the first time.
            log.info("phone call already answered", extra=extra)
            return
        try:
            decision = await self._route(call)
            if isinstance(decision, Accept):
                await self._accept(call, decision)
            elif isinstance(decision, Reject):
                await self._manager.provider.reject(call.call_id, decision.status_code)
                SIP_CALLS.labels(outcome="rejected").inc()
                log.info("phone call rejected with %d", decision.status_code, extra=extra)
            else:
                await self._refer(call, decision)
        except ProviderError as exc:
            SIP_CALLS.labels(outcome="provider_error").inc()
            log.warning("phone call could not be answered: %s", exc.message, extra=extra)
        except Exception:
            SIP_CALLS.labels(outcome="internal_error").inc()
            log.exception("phone call routing crashed", extra=extra)

    async def _route(self, call: IncomingCall) -> Accept | Reject | Refer:
        if len(self._tasks) > self._max_ringing:
            return Reject(status_code=BUSY_HERE)
        try:
            return await asyncio.wait_for(self._router(call), self._router_timeout_s)
        except TimeoutError:
            # A router is a screening policy: when it cannot decide, the call is not taken.
            log.warning(
                "SIP router did not decide within %.1f s, rejecting",
                self._router_timeout_s,
                extra={"call_id": call.call_id},
            )
            return Reject(status_code=TEMPORARILY_UNAVAILABLE)
        except RouterError as exc:
            log.warning("SIP router failed, rejecting: %s", exc, extra={"call_id": call.call_id})
            return Reject(status_code=TEMPORARILY_UNAVAILABLE)

    async def _accept(self, call: IncomingCall, decision: Accept) -> None:
        changes: dict[str, Any] = decision.session.model_dump(exclude_none=True)
        config = replace(self._manager.default_config(), **changes)
        try:
            await self._manager.accept_incoming(call.call_id, config, call.sip_headers)
        except (CapacityExceeded, Draining):
            await self._manager.provider.reject(call.call_id, BUSY_HERE)
            SIP_CALLS.labels(outcome="busy").inc()
            return
        SIP_CALLS.labels(outcome="accepted").inc()

    async def _refer(self, call: IncomingCall, decision: Refer) -> None:
        await self._manager.provider.refer(call.call_id, decision.target_uri)
        SIP_CALLS.labels(outcome="referred").inc()
        log.info("phone call referred", extra={"call_id": call.call_id})

    async def aclose(self) -> None:
        """Stop deciding (shutdown): calls still ringing are left to ring out; a router given
        as a URL has its connections closed."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)
        if isinstance(self._router, HoldsConnections):
            await self._router.aclose()
