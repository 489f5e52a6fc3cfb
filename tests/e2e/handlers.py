"""Handoff handlers for the worker processes of the end-to-end tests.

Workers load them with `CALLBRIDGE_HANDLER=tests.e2e.handlers:<name>`; the worker's working
directory must be the repository root so that `tests` is importable.
"""

from __future__ import annotations

import asyncio
import os

from service.handoffs import HandlerError
from signaling.realtime import Delegation

SLOW_S = 3.0


async def slow(delegation: Delegation) -> str:
    """Answer after `SLOW_S` seconds, naming the worker process that answered."""
    await asyncio.sleep(SLOW_S)
    return f"slow answer to {delegation.request!r} from pid {os.getpid()}"


async def always_fails(delegation: Delegation) -> str:
    """Fail every delivery, so the handoff ends in the dead-letter stream."""
    raise HandlerError(f"always fails: {delegation.request}")


async def echo(delegation: Delegation) -> str:
    """Answer at once with the request itself."""
    return f"echo: {delegation.request}"
