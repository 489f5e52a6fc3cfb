"""`HandoverGate`: lets a call's inputs into its core one at a time, holds them while the call is
handed over to another instance, and turns them away once it has been."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class HandoverGate:
    """One input at a time; none while paused; none at all once detached."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._paused = False
        self.detached = False
        """Whether the call was left to another instance; inputs are then skipped."""

    async def run(self, take: Callable[[], Awaitable[None]]) -> bool:
        """Await `take()` alone, after the input before it and after any pause; skip it once
        detached. Whether it was taken."""
        async with self._lock:
            if self.detached:
                return False
            await take()
            return True

    async def pause(self) -> None:
        """Hold every input (they wait) until `resume` or `detach`; the input being taken
        is finished first."""
        await self._lock.acquire()
        self._paused = True

    def resume(self) -> None:
        """Let inputs in again after `pause`."""
        if self._paused:
            self._paused = False
            self._lock.release()

    async def detach(self) -> None:
        """Turn every later input away (after the one being taken, unless paused), and let
        the waiting ones through to be skipped."""
        if not self._paused:
            await self.pause()
        self.detached = True
        self.resume()
