"""Sideband joins to a provider named by host: the name is resolved once for many joins, each
address is tried in turn, and TLS is verified against the name, not the address."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve

from media.local_provider import self_signed
from media.local_provider.config import LocalProviderConfig
from signaling.addresses import Resolution
from signaling.realtime.sideband import (
    AddressInfo,
    Sideband,
    SidebandAddresses,
    SidebandError,
    sideband_addresses,
)
from tests.e2e.conftest import STAND_IN_KEY, StartService
from tests.e2e.servers import server_tls
from tests.e2e.sse import ready_call
from tests.e2e.stand_in import local_provider

Serve = Callable[..., Awaitable[int]]


@pytest.fixture
async def sideband_server() -> AsyncIterator[Serve]:
    """Serve a sideband that holds each connection open on 127.0.0.1 (with `tls`: a
    (certificate, key) to serve `wss://` with); its port."""
    servers = []

    async def start(tls: tuple[Path, Path] | None = None) -> int:
        async def handler(connection: ServerConnection) -> None:
            await connection.wait_closed()

        server = await serve(handler, "127.0.0.1", 0, ssl=server_tls(tls))
        servers.append(server)
        port: int = next(iter(server.sockets)).getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
def localhost_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A certificate naming localhost only (verifying it against 127.0.0.1 would fail), and its
    key; trusted by the sideband through `SSL_CERT_FILE`."""
    certificate = self_signed(tmp_path, host="localhost")
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    return certificate


def _seeded(port: int, *addresses: str, host: str = "localhost", age_s: float = 0.0) -> Any:
    """`host:port` resolved to `addresses` `age_s` seconds ago: the `SidebandAddresses`, and
    its `Resolution`."""
    resolution = Resolution()
    resolution.remember(addresses, time.monotonic() - age_s)
    return SidebandAddresses(host, port, resolution), resolution


async def _joined(url: str, addresses: SidebandAddresses, open_timeout_s: float = 10.0) -> Sideband:
    sideband = Sideband(url, "sk-addresses", addresses=addresses, open_timeout_s=open_timeout_s)
    await sideband.connect()
    return sideband


@contextlib.asynccontextmanager
async def _silent(hosts: tuple[str, ...], port: int) -> AsyncIterator[None]:
    """Listeners on each of `hosts` at `port` that take connections and never say a word."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    servers = [await asyncio.start_server(hold, host, port) for host in hosts]
    yield
    for server in servers:
        server.close()


async def test_joins_within_the_ttl_resolve_the_host_name_once(sideband_server: Serve) -> None:
    port = await sideband_server()
    addresses = sideband_addresses(f"http://localhost:{port}", None)
    assert addresses is not None
    joins = [await _joined(f"ws://localhost:{port}/v1/realtime?call_id=rtc_1", addresses)]
    joins.append(await _joined(f"ws://localhost:{port}/v1/realtime?call_id=rtc_2", addresses))
    assert [join.connected for join in joins] == [True, True]
    assert addresses.lookups == 1
    for join in joins:
        await join.close()


async def test_an_address_that_refuses_is_passed_over_for_the_next(
    sideband_server: Serve,
) -> None:
    port = await sideband_server()
    # Nothing listens on 127.0.0.2: the connection is refused.
    addresses, resolution = _seeded(port, "127.0.0.2", "127.0.0.1")
    sideband = await _joined(f"ws://localhost:{port}/v1/realtime?call_id=rtc_1", addresses)
    assert sideband.connected
    assert addresses.lookups == 0
    assert resolution.fresh(time.monotonic()) == ("127.0.0.1", "127.0.0.2")
    await sideband.close()


async def test_a_name_none_of_whose_addresses_answers_is_resolved_again_at_the_next_join(
    sideband_server: Serve,
) -> None:
    port = await sideband_server()
    addresses, _ = _seeded(port, "127.0.0.2")
    url = f"ws://localhost:{port}/v1/realtime?call_id=rtc_1"
    with pytest.raises(SidebandError):
        await _joined(url, addresses)
    sideband = await _joined(url, addresses)
    assert sideband.connected
    assert addresses.lookups == 1
    await sideband.close()


async def test_joins_at_the_same_time_share_one_look_up(sideband_server: Serve) -> None:
    port = await sideband_server()
    addresses = sideband_addresses(f"http://localhost:{port}", None)
    assert addresses is not None
    url = f"ws://localhost:{port}/v1/realtime?call_id=rtc_1"
    joins = await asyncio.gather(*(_joined(url, addresses) for _ in range(10)))
    assert addresses.lookups == 1
    for join in joins:
        await join.close()


async def test_addresses_that_never_answer_leave_time_for_the_next(sideband_server: Serve) -> None:
    port = await sideband_server()
    silent = ("127.0.0.2", "127.0.0.3")
    async with _silent(silent, port):
        addresses, resolution = _seeded(port, *silent, "127.0.0.1")
        url = f"ws://localhost:{port}/v1/realtime?call_id=rtc_1"
        sideband = await _joined(url, addresses, open_timeout_s=3.0)
        assert sideband.connected
        assert resolution.fresh(time.monotonic())[0] == "127.0.0.1"
        await sideband.close()


async def test_a_join_to_addresses_that_never_answer_ends_at_its_open_timeout(
    sideband_server: Serve,
) -> None:
    port = await sideband_server()
    silent = ("127.0.0.2", "127.0.0.3")
    async with _silent(silent, port):
        addresses, _ = _seeded(port, *silent)
        url = f"ws://localhost:{port}/v1/realtime?call_id=rtc_1"
        with pytest.raises(SidebandError, match="TimeoutError"):
            await _joined(url, addresses, open_timeout_s=1.0)


async def test_while_the_name_cannot_be_resolved_its_last_addresses_are_joined(
    sideband_server: Serve,
) -> None:
    port = await sideband_server()
    # RFC 6761 §6.4: `.invalid` names never resolve; this one did, a minute ago.
    addresses, _ = _seeded(port, "127.0.0.1", host="callbridge.invalid", age_s=60.0)
    url = f"ws://callbridge.invalid:{port}/v1/realtime?call_id=rtc_1"
    sideband = await _joined(url, addresses)
    assert sideband.connected
    assert addresses.lookups == 1
    await sideband.close()


async def test_while_the_resolver_does_not_answer_the_last_addresses_are_joined(
    sideband_server: Serve,
) -> None:
    port = await sideband_server()
    answered = asyncio.Event()

    async def silent_resolver(host: str, port: int) -> list[AddressInfo]:
        # A resolver that never answers, as one whose servers are all unreachable (no real one
        # can be made to do so on this machine without changing its resolver for every test).
        await answered.wait()
        return []

    resolution = Resolution()
    resolution.remember(("127.0.0.1",), time.monotonic() - 60.0)
    addresses = SidebandAddresses("localhost", port, resolution, silent_resolver)
    url = f"ws://localhost:{port}/v1/realtime?call_id=rtc_1"
    joins = [await _joined(url, addresses, open_timeout_s=5.0) for _ in range(2)]
    assert [join.connected for join in joins] == [True, True]
    # The second join took the stale addresses at once: the resolver was asked once.
    assert addresses.lookups == 1
    answered.set()
    for join in joins:
        await join.close()


async def test_a_host_name_idna_cannot_encode_fails_the_join_as_a_sideband_error() -> None:
    host = "a" * 64 + ".example"
    for addresses in (SidebandAddresses(host, 443), None):
        sideband = Sideband(f"ws://{host}:443/v1/realtime?call_id=rtc_1", None, addresses=addresses)
        with pytest.raises(SidebandError, match="UnicodeError"):
            await sideband.connect()


async def test_a_name_that_cannot_be_resolved_fails_the_join_as_a_sideband_error() -> None:
    # RFC 6761 §6.4: `.invalid` names never resolve.
    addresses = SidebandAddresses("callbridge.invalid", 443)
    sideband = Sideband(
        "ws://callbridge.invalid:443/v1/realtime?call_id=rtc_1", None, addresses=addresses
    )
    with pytest.raises(SidebandError, match="gaierror"):
        await sideband.connect()


async def test_a_join_over_tls_to_a_resolved_address_verifies_the_host_name(
    sideband_server: Serve, localhost_certificate: tuple[Path, Path]
) -> None:
    port = await sideband_server(tls=localhost_certificate)
    addresses, _ = _seeded(port, "127.0.0.1")
    sideband = await _joined(f"wss://localhost:{port}/v1/realtime?call_id=rtc_1", addresses)
    assert sideband.connected
    await sideband.close()


async def test_calls_to_a_provider_named_by_host_resolve_the_name_once(
    start_service: StartService,
) -> None:
    config = LocalProviderConfig(api_key=STAND_IN_KEY, media=False)
    async with local_provider(config) as provider:
        named = provider.base_url.replace("127.0.0.1", "localhost")
        service = await start_service(provider="openai", provider_url=named)
        async with httpx.AsyncClient(base_url=service.url) as client:
            for _ in range(2):
                location = await ready_call(client, service.url)
                assert (await client.delete(location)).status_code == 200
        addresses = service.manager._sideband_addresses
        assert addresses is not None
        assert addresses.lookups == 1


def test_localhost_resolves_here() -> None:
    """The first test's premise: this machine resolves `localhost` to 127.0.0.1 among others."""
    infos = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    assert "127.0.0.1" in {info[4][0] for info in infos}
