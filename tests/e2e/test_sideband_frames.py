"""The sideband's receiving side against a provider sending every kind of frame over a real
socket: whole messages, in order, in batches; the rest handled as websockets handles it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame
from websockets.utils import accept_key

from media.local_provider import self_signed
from signaling.realtime.sideband import Sideband
from signaling.tls import trust_anchors
from tests.e2e.servers import server_tls
from tests.e2e.waiting import until

Script = Callable[[ServerConnection], Awaitable[None]]


def _raw(payload: bytes, head: int = 0x81) -> bytes:
    """One unmasked frame as a server writes it (RFC 6455 §5.2), up to 64 KiB."""
    size = len(payload)
    if size < 126:
        return bytes((head, size)) + payload
    return bytes((head, 126)) + size.to_bytes(2, "big") + payload


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, and its key (PEM files)."""
    return self_signed(tmp_path_factory.mktemp("tls"))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@pytest.fixture
async def http_proxy() -> AsyncIterator[tuple[str, list[str]]]:
    """An HTTP proxy that only tunnels (`CONNECT`, RFC 9110 §9.3.6): its URL, and the
    targets of the tunnels it opened."""
    async with _tunnelling_proxy(None) as proxy:
        yield proxy


@pytest.fixture
async def https_proxy(
    certificate: tuple[Path, Path],
) -> AsyncIterator[tuple[str, list[str]]]:
    """The same proxy reached over TLS (an `https://` proxy), with the test certificate."""
    async with _tunnelling_proxy(certificate) as proxy:
        yield proxy


@contextlib.asynccontextmanager
async def _tunnelling_proxy(
    tls: tuple[Path, Path] | None,
) -> AsyncIterator[tuple[str, list[str]]]:
    targets: list[str] = []

    async def tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        target = request.split()[1].decode()
        targets.append(target)
        host, _, port = target.rpartition(":")
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    server = await asyncio.start_server(tunnel, "127.0.0.1", 0, ssl=server_tls(tls))
    scheme = "https" if tls else "http"
    yield f"{scheme}://127.0.0.1:{server.sockets[0].getsockname()[1]}", targets
    server.close()


Start = Callable[..., Awaitable[Sideband]]


@pytest.fixture
async def provider() -> AsyncIterator[Start]:
    """Serve a sideband that runs a script on each connection; a joined `Sideband` to it
    (`tls`: a (certificate, key) to serve `wss://` with; `proxy`: the proxy to join through)."""
    servers = []

    async def start(
        script: Script, *, tls: tuple[Path, Path] | None = None, proxy: str | None = None
    ) -> Sideband:
        async def handler(connection: ServerConnection) -> None:
            await script(connection)
            await connection.wait_closed()

        server = await serve(handler, "127.0.0.1", 0, ssl=server_tls(tls))
        servers.append(server)
        port = next(iter(server.sockets)).getsockname()[1]
        scheme = "wss" if tls else "ws"
        url = f"{scheme}://127.0.0.1:{port}/v1/realtime?call_id=rtc_1"
        sideband = Sideband(url, "sk-frames", proxy=proxy)
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
    provider: Start,
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
    provider: Start,
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
    provider: Start,
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
    provider: Start,
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
    provider: Start,
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


@pytest.mark.parametrize(
    ("header", "code"),
    [
        # Masked by the server (RFC 6455 §5.1).
        (bytes((0x81, 0x80 | 126)) + (1000).to_bytes(2, "big"), 1002),
        # An opcode RFC 6455 §5.2 reserves.
        (bytes((0x83, 126)) + (1000).to_bytes(2, "big"), 1002),
        # Over the 16 MiB cap by fewer bytes than the longest frame header.
        (bytes((0x81, 127)) + (16 * 1024 * 1024 + 1).to_bytes(8, "big"), 1009),
    ],
    ids=["masked", "reserved-opcode", "just-over-the-cap"],
)
async def test_a_frame_refused_on_its_header_fails_the_link_before_its_payload_arrives(
    provider: Start, header: bytes, code: int
) -> None:
    closed_with: list[int | None] = []

    async def script(connection: ServerConnection) -> None:
        await connection.send("before")
        # Sent once "before" is taken, so that the header arrives in a read of its own.
        await connection.recv()
        connection.transport.write(header + b"x" * 10)
        await connection.wait_closed()
        closed_with.append(connection.close_code)

    sideband = await provider(script)
    assert await sideband.receive(64) == ["before"]
    await sideband.send({"type": "taken"})
    assert await _everything(sideband) == []
    await until(lambda: closed_with == [code])


def _many(count: int) -> bytes:
    """`count` small text frames in one piece, as a flooding provider writes them."""
    return b"".join(_raw(f'{{"n":{n}}}'.encode()) for n in range(count))


async def _flood(connection: ServerConnection) -> None:
    connection.transport.write(_many(5_000))
    await connection.send(["frag", "mented"])
    await connection.close()


async def test_messages_arrive_whole_and_in_order_over_tls(
    provider: Start, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    sideband = await provider(_flood, tls=certificate)
    messages = [m for batch in await _everything(sideband) for m in batch]
    assert messages == [f'{{"n":{n}}}' for n in range(5_000)] + ["fragmented"]


async def test_every_join_over_tls_verifies_with_the_one_shared_context(
    provider: Start, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    joins = [await provider(_flood, tls=certificate) for _ in range(2)]
    links = [join._ws for join in joins]
    contexts = [
        link.transport.get_extra_info("ssl_object").context for link in links if link is not None
    ]
    assert contexts == [trust_anchors(), trust_anchors()]
    assert contexts[0] is contexts[1]


async def _tunnelled_with_the_shared_context(sideband: Sideband, tunnels: list[str]) -> None:
    """The join's TLS (to the provider, or to the proxy) used the one shared context, went
    through one tunnel, and every message of `_flood` arrived."""
    link = sideband._ws
    assert link is not None
    assert link.transport.get_extra_info("ssl_object").context is trust_anchors()
    messages = [m for batch in await _everything(sideband) for m in batch]
    assert len(messages) == 5_001
    assert len(tunnels) == 1


async def test_a_wss_join_through_an_http_proxy_verifies_with_the_shared_context(
    provider: Start,
    http_proxy: tuple[str, list[str]],
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, tunnels = http_proxy
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    sideband = await provider(_flood, tls=certificate, proxy=url)
    await _tunnelled_with_the_shared_context(sideband, tunnels)


async def test_a_join_through_an_https_proxy_verifies_the_proxy_with_the_shared_context(
    provider: Start,
    https_proxy: tuple[str, list[str]],
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, tunnels = https_proxy
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    sideband = await provider(_flood, proxy=url)
    await _tunnelled_with_the_shared_context(sideband, tunnels)


async def test_messages_arrive_whole_and_in_order_through_an_http_proxy(
    provider: Start, http_proxy: tuple[str, list[str]]
) -> None:
    url, tunnels = http_proxy
    sideband = await provider(_flood, proxy=url)
    messages = [m for batch in await _everything(sideband) for m in batch]
    assert messages == [f'{{"n":{n}}}' for n in range(5_000)] + ["fragmented"]
    assert len(tunnels) == 1


async def test_messages_in_the_read_of_the_handshake_response_leave_no_frame_held() -> None:
    async def upgrade_then_send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip().decode()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        # The response and the first events in one write, as a provider's first read often
        # brings them.
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n".encode()
            + _raw(b'{"type":"session.created"}')
            + _raw(b"x" * 2000)
        )
        await reader.read()
        writer.close()

    server = await asyncio.start_server(upgrade_then_send, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sideband = Sideband(f"ws://127.0.0.1:{port}/v1/realtime?call_id=rtc_1", "sk-frames")
    try:
        await sideband.connect()
        assert await sideband.receive(64) == ['{"type":"session.created"}', "x" * 2000]
        gc.collect()
        assert [o for o in gc.get_objects() if isinstance(o, Frame)] == []
    finally:
        await sideband.close()
        server.close()
        await server.wait_closed()
