"""Waiting, in tests, until something is true: polled, with a deadline that fails the test."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

POLL_S = 0.02


async def until(predicate: Callable[[], bool | Awaitable[bool]], timeout_s: float = 15.0) -> None:
    """Return once `predicate()` (plain or async) is true; `TimeoutError` after `timeout_s`."""

    async def poll() -> None:
        while True:
            result = predicate()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(POLL_S)

    await asyncio.wait_for(poll(), timeout_s)
