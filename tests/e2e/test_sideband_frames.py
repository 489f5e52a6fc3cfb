"""The sideband's receiving side against a provider sending every kind of frame over a real
socket: whole messages, in order, in batches; the rest handled as websockets handles it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from websockets.asyncio.server import ServerConnection, serve

from signaling.realtime.sideband import Sideband
from tests.e2e.waiting import until

Script = Callable[[ServerConnection], Awaitable[None]]


def _raw(payload: bytes, head: int = 0x81) -> bytes:
    """One unmasked frame as a server writes it (RFC 6455 §5.2), up to 64 KiB."""
    size = len(payload)
    if size < 126:
        return bytes((head, size)) + payload
    return bytes((head, 126)) + size.to_bytes(2, "big") + payload


@pytest.fixture
async def provider() -> AsyncIterator[Callable[[Script], Awaitable[Sideband]]]:
    """Serve a sideband that runs a script on each connection; a joined `Sideband` to it."""
    servers = []

    async def start(script: Script) -> Sideband:
        async def handler(connection: ServerConnection) -> None:
            await script(connection)
            await connection.wait_closed()

        server = await serve(handler, "127.0.0.1", 0)
        servers.append(server)
        port = next(iter(server.sockets)).getsockname()[1]
        sideband = Sideband(f"ws://127.0.0.1:{port}/v1/realtime?call_id=rtc_1", "sk-frames")
        await sideband.connect()
        return sideband

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def _everything(sideband: Sideband, limit: int = 64) -> list[list[str | bytes]]:
    batches = []
    while (batch := await asyncio.wait_for(sideband.receive(limit), 10)) is not None:
        batches.append(batch)
    return batches


async def test_fragmented_binary_large_and_plain_messages_arrive_whole_and_in_order(
    provider: Callable[[Script], Awaitable[Sideband]],
) -> None:
    large = "L" * 100_000

    async def script(connection: ServerConnection) -> None:
        await connection.send("first")
        await connection.send(["frag", "ment", "ed"])
        await connection.ping()
        await connection.send(b"\x00binary")
        await connection.send(large)
        await connection.send("last")
        await connection.close(1000, "done")

    sideband = await provider(script)
    batches = await _everything(sideband)
    messages = [m for batch in batches for m in batch]
    assert messages == ["first", "fragmented", b"\x00binary", large, "last"]
    assert sideband.close_code == 1000


async def test_frames_split_across_reads_are_delivered_once_whole(
    provider: Callable[[Script], Awaitable[Sideband]],
) -> None:
    frames = _raw(b"one") + _raw(b"t" * 300) + _raw(b"three")

    async def trickle(connection: ServerConnection) -> None:
        sent = 0
        for cut in (1, 3, 9, 200, len(frames)):
            connection.transport.write(frames[sent:cut])
            sent = cut
            await asyncio.sleep(0.02)
        await connection.close()

    sideband = await provider(trickle)
    messages = [m for batch in await _everything(sideband) for m in batch]
    assert messages == ["one", "t" * 300, "three"]


async def test_messages_already_received_are_taken_in_batches_up_to_the_limit(
    provider: Callable[[Script], Awaitable[Sideband]],
) -> None:
    async def script(connection: ServerConnection) -> None:
        connection.transport.write(b"".join(_raw(str(n).encode()) for n in range(10)))
        await connection.close()

    sideband = await provider(script)
    # All ten arrive in one read: the first wait returns four, the next four need no wait.
    assert await sideband.receive(4) == ["0", "1", "2", "3"]
    assert sideband.take(4) == ["4", "5", "6", "7"]
    assert await _everything(sideband, 100) == [["8", "9"]]


async def test_text_that_is_not_utf8_fails_the_link_with_1007_after_the_messages_before_it(
    provider: Callable[[Script], Awaitable[Sideband]],
) -> None:
    closed_with: list[int | None] = []

    async def script(connection: ServerConnection) -> None:
        connection.transport.write(_raw(b"before") + _raw(b"\xff\xfe") + _raw(b"after"))
        await connection.wait_closed()
        closed_with.append(connection.close_code)

    sideband = await provider(script)
    messages = [m for batch in await _everything(sideband) for m in batch]
    assert messages == ["before"]
    await until(lambda: closed_with == [1007])


async def test_a_frame_over_the_size_cap_fails_the_link_with_1009(
    provider: Callable[[Script], Awaitable[Sideband]],
) -> None:
    closed_with: list[int | None] = []

    async def script(connection: ServerConnection) -> None:
        header = bytes((0x81, 127)) + (17 * 1024 * 1024).to_bytes(8, "big")
        connection.transport.write(_raw(b"before") + header + b"x" * 1000)
        await connection.wait_closed()
        closed_with.append(connection.close_code)

    sideband = await provider(script)
    messages = [m for batch in await _everything(sideband) for m in batch]
    assert messages == ["before"]
    await until(lambda: closed_with == [1009])
