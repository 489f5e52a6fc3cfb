"""Waiting, in tests, until something is true: polled, with a deadline that fails the test."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable

POLL_S = 0.02


async def until(predicate: Callable[[], object], timeout_s: float = 30.0) -> None:
    """Return once `predicate()` (plain, or returning an awaitable) is truthy; `TimeoutError`
    after `timeout_s`."""

    async def poll() -> None:
        while True:
            result = predicate()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(POLL_S)

    await asyncio.wait_for(poll(), timeout_s)
