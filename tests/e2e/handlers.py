"""Handoff handlers for the worker processes of the end-to-end tests.

Workers load them with `CALLBRIDGE_HANDLER=tests.e2e.handlers:<name>`; the worker's working
directory must be the repository root so that `tests` is importable.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from service.handoffs import HandlerError
from signaling.realtime import Delegation

SLOW_S = 3.0

RAISED: dict[str, type[BaseException]] = {
    exception.__name__: exception
    for exception in (SystemExit, KeyboardInterrupt, GeneratorExit, asyncio.CancelledError)
}
"""What `raises` raises, by the request that names it: exceptions that are not `Exception`s."""


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


async def raises(delegation: Delegation) -> str:
    """Raise the exception of `RAISED` the request names; answer any other as `echo` does."""
    if delegation.request in RAISED:
        raise RAISED[delegation.request]()
    return await echo(delegation)


def _api_key() -> str:
    return os.environ["CALLBRIDGE_API_KEY"]


async def fails_quoting_the_key(delegation: Delegation) -> str:
    """Fail with a message that quotes the provider key, as a careless handler's error might."""
    raise RuntimeError("db failed for key " + _api_key())


async def answers_with_the_key(delegation: Delegation) -> str:
    """Answer with the provider key."""
    return "the key is " + _api_key()


async def reports_progress_with_the_key(delegation: Delegation) -> AsyncIterator[str]:
    """Report progress quoting the provider key, then answer."""
    yield "connecting with " + _api_key()
    yield "done"


async def answers_late_with_the_key(delegation: Delegation) -> str:
    """Answer with the provider key after `SLOW_S` seconds."""
    await asyncio.sleep(SLOW_S)
    return "the key is " + _api_key()
