"""The call directory (registry and control forwarding) against a private redis-server.

The `redis_server` fixture comes from `tests.e2e.redis_server` through the e2e conftest.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from service.calls.directory import (
    CallDirectory,
    ControlReply,
    ControlRequest,
    ControlTimeout,
    DirectoryUnavailable,
)
from tests.e2e.redis_server import RedisServer

WAIT_S = 5.0

OpenDirectory = Callable[..., CallDirectory]


async def eventually_async(probe: Callable[[], Awaitable[object]], expected: object) -> None:
    """Wait until `probe` returns `expected`; while Redis recovers it may raise, or time out."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            if await probe() == expected:
                return
        except (ControlTimeout, DirectoryUnavailable):
            pass
        assert time.monotonic() < deadline, f"never became {expected!r}"
        await asyncio.sleep(0.02)


class Recorder:
    """A control handler that answers 200 with the request's fields and remembers each one."""

    def __init__(self, *, delay_s: float = 0.0) -> None:
        self.requests: list[ControlRequest] = []
        self.delay_s = delay_s

    async def __call__(self, request: ControlRequest) -> ControlReply:
        self.requests.append(request)
        await asyncio.sleep(self.delay_s)
        return ControlReply(200, {"op": request.op, "call_id": request.call_id, **request.body})


async def refuse(request: ControlRequest) -> ControlReply:
    raise RuntimeError(f"cannot {request.op}")


@pytest.fixture
async def open_directory(redis_server: RedisServer) -> AsyncIterator[OpenDirectory]:
    """Makes directories on the test's server, closed at the end."""
    directories: list[CallDirectory] = []

    def make(instance_id: str, **options: Any) -> CallDirectory:
        directory = CallDirectory(redis_server.url, instance_id, **options)
        directories.append(directory)
        return directory

    yield make
    for directory in directories:
        await directory.aclose()


# The registry


async def test_a_registered_call_is_owned_by_its_instance(open_directory: OpenDirectory) -> None:
    a, b = open_directory("a"), open_directory("b")
    await a.register("call-1")
    assert await b.owner_of("call-1") == "a"


async def test_an_unknown_call_has_no_owner(open_directory: OpenDirectory) -> None:
    assert await open_directory("a").owner_of("call-1") is None


async def test_a_registration_expires_after_ttl(open_directory: OpenDirectory) -> None:
    a = open_directory("a", ttl_s=0.3)
    await a.register("call-1")
    await asyncio.sleep(0.5)
    assert await a.owner_of("call-1") is None


async def test_refresh_extends_a_registration(open_directory: OpenDirectory) -> None:
    a = open_directory("a", ttl_s=1.0)
    await a.register("call-1")
    await asyncio.sleep(0.6)
    await a.refresh(["call-1"])
    await asyncio.sleep(0.6)
    assert await a.owner_of("call-1") == "a"


async def test_a_started_directory_keeps_its_calls_registered(
    open_directory: OpenDirectory,
) -> None:
    a = open_directory("a", ttl_s=0.3)
    a.start(Recorder())
    await a.register("call-1")
    await asyncio.sleep(0.9)
    assert await a.owner_of("call-1") == "a"


async def test_unregister_removes_the_owners_entry(open_directory: OpenDirectory) -> None:
    a = open_directory("a")
    await a.register("call-1")
    await a.unregister("call-1")
    assert await a.owner_of("call-1") is None


async def test_unregister_by_another_instance_leaves_the_entry(
    open_directory: OpenDirectory,
) -> None:
    a, b = open_directory("a"), open_directory("b")
    await a.register("call-1")
    await b.unregister("call-1")
    assert await b.owner_of("call-1") == "a"


async def test_an_unregistered_call_is_not_refreshed_back(open_directory: OpenDirectory) -> None:
    a = open_directory("a", ttl_s=0.3)
    a.start(Recorder())
    await a.register("call-1")
    await a.unregister("call-1")
    await asyncio.sleep(0.3)
    assert await a.owner_of("call-1") is None


# Control requests


async def test_a_request_is_carried_out_by_the_owner_and_answered(
    open_directory: OpenDirectory,
) -> None:
    a, b = open_directory("a"), open_directory("b")
    handler = Recorder()
    b.start(handler)
    reply = await a.request("b", "hangup", "call-1", {"reason": "user"})
    assert reply == ControlReply(200, {"op": "hangup", "call_id": "call-1", "reason": "user"})
    [request] = handler.requests
    assert (request.op, request.call_id, request.body, request.reply_to) == (
        "hangup",
        "call-1",
        {"reason": "user"},
        "a",
    )


async def test_concurrent_requests_each_get_their_own_reply(
    open_directory: OpenDirectory,
) -> None:
    a, b = open_directory("a"), open_directory("b")
    b.start(Recorder(delay_s=0.1))
    replies = await asyncio.gather(
        *(a.request("b", "get", f"call-{n}", {"n": n}) for n in range(10))
    )
    assert [reply.body["n"] for reply in replies] == list(range(10))


async def test_a_failing_handler_answers_500_and_the_owner_keeps_serving(
    open_directory: OpenDirectory,
) -> None:
    a, b = open_directory("a"), open_directory("b")
    b.start(refuse)
    first = await a.request("b", "hangup", "call-1", {})
    second = await a.request("b", "get", "call-1", {})
    assert (first.status, second.status) == (500, 500)
    assert "cannot hangup" in first.body["detail"]


async def test_a_request_to_a_departed_owner_times_out(open_directory: OpenDirectory) -> None:
    a, b = open_directory("a"), open_directory("b")
    b.start(Recorder())
    await b.aclose()
    started = time.monotonic()
    with pytest.raises(ControlTimeout):
        await a.request("b", "get", "call-1", {}, timeout_s=0.3)
    assert 0.3 <= time.monotonic() - started < 1.0


async def test_a_request_that_timed_out_is_not_carried_out_later(
    open_directory: OpenDirectory,
) -> None:
    a, b = open_directory("a"), open_directory("b")
    with pytest.raises(ControlTimeout):
        await a.request("b", "hangup", "call-1", {}, timeout_s=0.2)
    handler = Recorder()
    b.start(handler)
    await a.request("b", "get", "call-2", {})
    assert [r.call_id for r in handler.requests] == ["call-2"]


# Redis outages


async def test_owner_of_raises_directory_unavailable_while_redis_is_down(
    open_directory: OpenDirectory, redis_server: RedisServer
) -> None:
    a = open_directory("a")
    redis_server.stop()
    with pytest.raises(DirectoryUnavailable):
        await a.owner_of("call-1")


async def test_a_request_raises_directory_unavailable_while_redis_is_down(
    open_directory: OpenDirectory, redis_server: RedisServer
) -> None:
    a = open_directory("a")
    redis_server.stop()
    with pytest.raises(DirectoryUnavailable):
        await a.request("b", "get", "call-1", {})


async def test_a_call_registered_while_redis_is_down_is_written_once_it_is_back(
    open_directory: OpenDirectory, redis_server: RedisServer
) -> None:
    a = open_directory("a")
    a.start(Recorder())
    redis_server.stop()
    await a.register("call-1")
    redis_server.start()
    await eventually_async(lambda: a.owner_of("call-1"), "a")


async def test_registrations_lost_in_a_redis_restart_are_written_again(
    open_directory: OpenDirectory, redis_server: RedisServer
) -> None:
    a = open_directory("a")
    a.start(Recorder())
    await a.register("call-1")
    redis_server.restart()
    await eventually_async(lambda: a.owner_of("call-1"), "a")


async def test_requests_are_answered_again_after_a_redis_restart(
    open_directory: OpenDirectory, redis_server: RedisServer
) -> None:
    a, b = open_directory("a"), open_directory("b")
    b.start(Recorder())
    await a.request("b", "get", "call-1", {})
    redis_server.restart()

    async def answered() -> int:
        return (await a.request("b", "get", "call-1", {}, timeout_s=1.0)).status

    await eventually_async(answered, 200)


async def test_closing_right_after_a_redis_restart_returns_promptly(
    open_directory: OpenDirectory, redis_server: RedisServer
) -> None:
    a = open_directory("a")
    a.start(Recorder())
    await a.register("call-1")
    redis_server.restart()
    with contextlib.suppress(DirectoryUnavailable):
        await a.owner_of("call-1")
    await asyncio.wait_for(a.aclose(), 1.0)
