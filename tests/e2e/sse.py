"""Reading a call's Server-Sent Events stream in tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.unit.sdp_samples import AIORTC_OFFER


@dataclass
class SseEvent:
    """One received event."""

    name: str
    data: dict[str, Any]


@dataclass
class SseRecorder:
    """Collects a call's events in the background; `wait_for` blocks until one matches."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    events: list[SseEvent] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _open: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        """Connect and return once the stream is open."""
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self._open.wait(), 5.0)

    async def _read(self) -> None:
        async with (
            httpx.AsyncClient(timeout=None) as client,
            client.stream("GET", self.url, headers=self.headers) as response,
        ):
            assert response.status_code == 200, await response.aread()
            self._open.set()
            name, data = "message", ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif line == "" and data:
                    self.events.append(SseEvent(name, json.loads(data)))
                    self._changed.set()
                    name, data = "message", ""

    async def wait_for(
        self, predicate: Callable[[SseEvent], bool], timeout_s: float = 10.0
    ) -> SseEvent:
        """The first event (already received or future) matching `predicate`."""

        async def find() -> SseEvent:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(find(), timeout_s)

    def index(self, event: SseEvent) -> int:
        """Position of an event in arrival order."""
        return self.events.index(event)

    async def stop(self) -> None:
        """Disconnect."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def ready_call(client: httpx.AsyncClient, base_url: str) -> str:
    """Start a call on the service at `base_url` with an aiortc offer and wait for its
    `session.ready` event; its Location."""
    response = await client.post(
        f"{base_url}/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
    )
    assert response.status_code == 201, response.text
    location: str = response.headers["location"]
    events = SseRecorder(f"{base_url}{location}/events")
    await events.start()
    await events.wait_for(lambda e: e.name == "session.ready")
    await events.stop()
    return location
