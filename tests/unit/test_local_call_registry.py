"""The stand-in remembers its ended calls within a count, so that a provider running for long
holds a bounded number of them, while a call that just ended is still known as ended."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from media.local_provider.calls import CallRegistry
from media.local_provider.config import LocalProviderConfig

KEPT = 3


@pytest.fixture
async def registry() -> AsyncIterator[CallRegistry]:
    calls = CallRegistry(LocalProviderConfig(media=False, ended_calls_kept=KEPT))
    yield calls
    await calls.end_all()
    calls.close()


async def test_past_the_count_the_earliest_ended_calls_are_forgotten(
    registry: CallRegistry,
) -> None:
    ended = [registry.create() for _ in range(KEPT + 2)]
    for call in ended:
        await call.end()
    assert registry.call_ids() == [call.call_id for call in ended[-KEPT:]]


async def test_a_call_that_just_ended_is_known_as_ended(registry: CallRegistry) -> None:
    call = registry.create()
    await call.end()
    assert registry.get(call.call_id) is call
    assert registry.active(call.call_id) is None


async def test_active_calls_are_never_forgotten_for_the_count(registry: CallRegistry) -> None:
    active = [registry.create() for _ in range(KEPT + 2)]
    for _ in range(KEPT + 2):
        await registry.create().end()
    assert all(registry.active(call.call_id) is call for call in active)
