"""SIP routers for the phone-call tests (`CALLBRIDGE_SIP_ROUTER=tests.e2e.sip_routers:<name>`)."""

from __future__ import annotations

import asyncio
from typing import Any

from service.calls.sip_router import IncomingCall

FRONT_DESK = "tel:+14155550123"
PIRATE = "You are a pirate. Answer like one."


def busy(call: IncomingCall) -> dict[str, Any]:
    """Every line is busy: 486 Busy Here."""
    return {"action": "reject", "status_code": 486}


async def front_desk(call: IncomingCall) -> dict[str, Any]:
    """Send every call to the front desk."""
    return {"action": "refer", "target_uri": FRONT_DESK}


def pirate(call: IncomingCall) -> dict[str, Any]:
    """Accept, with other instructions for callers from a 415 number."""
    if "+1415" in call.sip_headers.get("From", ""):
        return {"action": "accept", "session": {"instructions": PIRATE}}
    return {"action": "accept"}


def undecided(call: IncomingCall) -> dict[str, Any]:
    """Answer something that is not a decision."""
    return {"action": "maybe"}


async def dawdling(call: IncomingCall) -> dict[str, Any]:
    """Never decide in time."""
    await asyncio.sleep(3600)
    return {"action": "accept"}


def exits(call: IncomingCall) -> dict[str, Any]:
    """Raise `SystemExit`, as a router calling `sys.exit()` would."""
    raise SystemExit(1)


async def cancels_itself(call: IncomingCall) -> dict[str, Any]:
    """Raise a `CancelledError` of its own (nothing cancelled it)."""
    raise asyncio.CancelledError
