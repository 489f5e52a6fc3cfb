"""The sideband: a WebSocket to `{provider}/v1/realtime?call_id=...` (thin I/O shell).

It only moves text frames and reports what happened. What the frames mean, and when to join
again, is `CallState`'s business.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.uri import WebSocketURI, get_proxy, parse_uri

from signaling.addresses import STALE_AFTER_S, Resolution, connect_address, is_host_name
from signaling.credentials import Credentials, CredentialsError
from signaling.ids import CallId
from signaling.json_text import json_bytes
from signaling.realtime.ws_connection import BatchedConnection
from signaling.tls import trust_anchors

# websockets logs handshake headers at debug level; our logging setup redacts the key, and
# keeping this logger at INFO means the Authorization header is never even formatted.
_ws_log = logging.getLogger("callbridge.sideband.ws")
_ws_log.setLevel(logging.INFO)
_log = logging.getLogger("callbridge.sideband")


_REFUSAL_BODY_BYTES = 4096
CLOSE_TIMEOUT_S = 1.0
"""Seconds `close()` waits for the provider's close frame before dropping the connection."""


class _WithoutRedirects(connect):
    """websockets' `connect`, refusing to follow a redirect: it would send our credentials
    (`additional_headers`) to whatever host the redirect names. The 3xx is then raised as
    `InvalidStatus`, a refusal like any other."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


class SidebandError(Exception):
    """A join attempt failed without an HTTP answer (network, timeout, bad handshake)."""


class SidebandRefused(SidebandError):
    """The provider answered the handshake with HTTP `status` (and, from its JSON error body,
    `code` and `message`, unredacted)."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.code = code
        self.message = message


def _refusal(status: int, body: bytes | None) -> SidebandRefused:
    code = message = None
    try:
        error = json.loads((body or b"")[:_REFUSAL_BODY_BYTES]).get("error")
        if isinstance(error, dict):
            code = error.get("code") if isinstance(error.get("code"), str) else None
            message = error.get("message") if isinstance(error.get("message"), str) else None
    except (ValueError, AttributeError, RecursionError):
        pass
    return SidebandRefused(status, code, message or "")


def sideband_url(provider_base_url: str, call_id: CallId) -> str:
    """`https://host[/prefix]` -> `wss://host[/prefix]/v1/realtime?call_id=<id>` (no model)."""
    parts = urlsplit(provider_base_url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return urlunsplit(
        (scheme, parts.netloc, path + "/realtime", urlencode({"call_id": call_id}), "")
    )


def _sideband_uri(provider_base_url: str) -> WebSocketURI:
    # Any call id will do: what is read of it is the scheme, host and port.
    return parse_uri(sideband_url(provider_base_url, CallId("rtc_0")))


def sideband_proxy(provider_base_url: str) -> str | None:
    """The proxy the environment names for the provider's sideband (`wss_proxy`, `https_proxy`,
    `no_proxy`, ...; websockets' own choice), or None. Looked up once per provider rather than
    at every join."""
    return get_proxy(_sideband_uri(provider_base_url))


AddressInfo = tuple[Any, Any, Any, str, tuple[Any, ...]]
GetAddrInfo = Callable[[str, int], Awaitable[list[AddressInfo]]]
"""Looks up a host name and port: `socket.getaddrinfo`'s 5-tuples."""


async def _loop_getaddrinfo(host: str, port: int) -> list[AddressInfo]:
    return await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)


class SidebandAddresses:
    """The addresses of the provider's host name for the joins of all its calls, looked up
    with the event loop's `getaddrinfo` and kept in a `Resolution` (this is its I/O shell).
    Joins that need a look-up while one is under way wait for that one. `lookups` counts the
    look-ups asked of the system."""

    def __init__(
        self,
        host: str,
        port: int,
        resolution: Resolution | None = None,
        getaddrinfo: GetAddrInfo | None = None,
    ) -> None:
        """`getaddrinfo(host, port)` looks the name up (the event loop's, for stream sockets,
        by default)."""
        self.host, self.port = host, port
        self._resolution = resolution or Resolution()
        self._getaddrinfo = getaddrinfo or _loop_getaddrinfo
        self._lookup: asyncio.Future[tuple[str, ...]] | None = None
        self.lookups = 0

    async def resolve(self) -> tuple[str, ...]:
        """The addresses to try, in order (at least one); raise `OSError` (`socket.gaierror`)
        or `UnicodeError` (a name IDNA cannot encode) when there are none to try. With stale
        addresses known, waits at most `STALE_AFTER_S` for the resolver, then takes them."""
        now = time.monotonic()
        fresh = self._resolution.fresh(now)
        if fresh is not None:
            return fresh
        if self._lookup is None:
            self.lookups += 1
            self._lookup = asyncio.ensure_future(self._look_up())
            self._lookup.add_done_callback(self._looked_up)
        stale = self._resolution.stale(now)
        # Shielded: a join given up on must not cancel the look-up the others wait for.
        if stale is None:
            return await asyncio.shield(self._lookup)
        try:
            async with asyncio.timeout(STALE_AFTER_S):
                return await asyncio.shield(self._lookup)
        except TimeoutError:
            self._stale_served("no answer in time")
            return stale

    async def _look_up(self) -> tuple[str, ...]:
        host, port = self.host, self.port
        try:
            infos = await self._getaddrinfo(host, port)
        except OSError as exc:
            stale = self._resolution.stale(time.monotonic())
            if stale is None:
                raise
            self._stale_served(type(exc).__name__)
            return stale
        addresses = tuple(dict.fromkeys(connect_address(info[4]) for info in infos))
        if not addresses:
            raise socket.gaierror(f"{host} resolved to no address")
        self._resolution.remember(addresses, time.monotonic())
        return addresses

    def _stale_served(self, why: str) -> None:
        if self._resolution.fresh(time.monotonic()) is None:
            _log.warning(
                "%s could not be resolved (%s): joining its last addresses", self.host, why
            )
        self._resolution.failed(time.monotonic())

    def _looked_up(self, lookup: asyncio.Future[tuple[str, ...]]) -> None:
        self._lookup = None
        if not lookup.cancelled():
            # Every waiter gets the failure; this keeps asyncio from reporting it unretrieved
            # when the last waiter gave up first.
            lookup.exception()

    def answered(self, address: str) -> None:
        """`address` was reached: try it first from now on."""
        self._resolution.prefer(address)

    def unreachable(self) -> None:
        """None of the addresses could be reached: resolve the name again at the next join."""
        self._resolution.forget()


def sideband_addresses(provider_base_url: str, proxy: str | None) -> SidebandAddresses | None:
    """The `SidebandAddresses` of the provider's sideband host; None when the sideband goes
    through `proxy` (the proxy resolves the name) or the host is an IP address."""
    uri = _sideband_uri(provider_base_url)
    if proxy is not None or not is_host_name(uri.host):
        return None
    return SidebandAddresses(uri.host, uri.port)


class Sideband:
    """One call's sideband connection; `connect()` again after it closes to rejoin."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        ping_interval_s: float = 20.0,
        open_timeout_s: float = 10.0,
        credentials: Credentials | None = None,
        compression: bool = False,
        proxy: str | None = None,
        addresses: SidebandAddresses | None = None,
    ) -> None:
        """`credentials`, when given, replace the bearer `api_key` header and are asked for
        headers at every join (an Entra ID token may have been refreshed meanwhile).
        `compression` offers permessage-deflate (RFC 7692), off by default. `proxy` is the
        proxy to join through (`sideband_proxy`), None for a direct connection. `addresses`
        (`sideband_addresses`, for the URL's host) resolves the host name instead of the
        event loop at every join; its addresses are tried in turn within `open_timeout_s`
        (`_open`)."""
        self.url = url
        self._addresses = addresses
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._credentials = credentials
        self._compression = "deflate" if compression else None
        self._proxy = proxy
        self._tls = trust_anchors() if url.startswith("wss:") else None
        # The same for the TLS to an https proxy (websockets takes no `proxy_ssl` for another).
        self._proxy_tls: dict[str, Any] = (
            {"proxy_ssl": trust_anchors()} if proxy and proxy.startswith("https:") else {}
        )
        self._ping_interval_s = ping_interval_s
        self._open_timeout_s = open_timeout_s
        self._ws: BatchedConnection | None = None
        self.close_code: int | None = None
        self.close_reason: str = ""

    @property
    def connected(self) -> bool:
        """Whether a connection is open."""
        return self._ws is not None

    async def connect(self) -> None:
        """One connection attempt; raise `SidebandRefused` when the provider answers with an
        HTTP status instead of upgrading, `SidebandError` when it does not answer (or no
        credentials could be had)."""
        try:
            headers = self._headers
            if self._credentials is not None:
                headers = await self._credentials.headers()
            ws = await self._open(headers)
        except InvalidStatus as exc:
            raise _refusal(exc.response.status_code, exc.response.body) from None
        except (OSError, UnicodeError, InvalidHandshake, CredentialsError) as exc:
            # (UnicodeError: a host name IDNA cannot encode, from whoever resolves it.)
            raise SidebandError(type(exc).__name__) from None
        assert isinstance(ws, BatchedConnection)
        # The handshake's request (headers, the key among them) and response headers are never
        # read again, and held calls are many: let them go.
        ws.request = None
        if ws.response is not None:
            ws.response.headers.clear()
        self._ws = ws
        self.close_code, self.close_reason = None, ""

    async def _open(self, headers: dict[str, str]) -> Any:
        """websockets' connection to the URL, made to the host's resolved addresses when
        `addresses` was given: resolving and every attempt within `open_timeout_s`, as a single
        connection would be; each address gets an even share of the time left, so that one
        that never answers leaves time for the next."""
        addresses = self._addresses
        if addresses is None:
            return await self._connect(headers)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._open_timeout_s
        async with asyncio.timeout_at(deadline):
            *others, last = await addresses.resolve()
        for index, address in enumerate(others):
            share = (deadline - loop.time()) / (len(others) + 1 - index)
            try:
                async with asyncio.timeout(share):
                    ws = await self._connect(headers, host=address, port=addresses.port)
            except OSError:  # refused, unreachable, reset, or out of its time (TimeoutError)
                continue
            addresses.answered(address)
            return ws
        try:
            async with asyncio.timeout_at(deadline):
                ws = await self._connect(headers, host=last, port=addresses.port)
        except OSError:
            addresses.unreachable()
            raise
        addresses.answered(last)
        return ws

    async def _connect(self, headers: dict[str, str], **target: Any) -> Any:
        return await _WithoutRedirects(
            self.url,
            create_connection=BatchedConnection,
            additional_headers=headers,
            ping_interval=self._ping_interval_s,
            ping_timeout=self._ping_interval_s,
            open_timeout=self._open_timeout_s,
            max_size=16 * 1024 * 1024,
            # Closing comes after the hang-up: a provider still flushing a backlog at us
            # must not hold the call's end (the default waits 10 s for its close frame).
            close_timeout=CLOSE_TIMEOUT_S,
            compression=self._compression,
            proxy=self._proxy,
            # One context for every join: websockets would make one per connection.
            ssl=self._tls,
            **self._proxy_tls,
            logger=_ws_log,
            user_agent_header="callbridge",
            **target,
        )

    @property
    def unread_bytes(self) -> int:
        """Payload bytes of frames received and not yet taken (0 without a connection); reading
        pauses past `ws_connection.MAX_UNREAD_BYTES`."""
        ws = self._ws
        return ws.unread_bytes if ws is not None else 0

    def take(self, limit: int) -> list[str | bytes]:
        """Up to `limit` frames already received, oldest first, without waiting; none without
        a connection."""
        ws = self._ws
        return ws.take_batch(limit) if ws is not None else []

    async def receive(self, limit: int) -> list[str | bytes] | None:
        """The next frames (at least one, at most `limit`, oldest first), or None once the
        connection has closed."""
        ws = self._ws
        if ws is None:
            return None
        try:
            return await ws.recv_batch(limit)
        except ConnectionClosed as exc:
            self._closed(exc)
            return None

    async def send(self, payload: dict[str, Any]) -> bool:
        """Send one client event; False when there is no open connection to send it on."""
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(json_bytes(payload), text=True)
        except ConnectionClosed as exc:
            self._closed(exc)
            return False
        return True

    def _closed(self, exc: ConnectionClosed) -> None:
        rcvd = exc.rcvd
        self.close_code = rcvd.code if rcvd else None
        self.close_reason = rcvd.reason if rcvd else ""
        self._ws = None

    async def close(self) -> None:
        """Close the connection if open."""
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
