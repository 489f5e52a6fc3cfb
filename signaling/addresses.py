"""The provider's host name, resolved once per `TTL_S` for the sideband's joins (pure code).

Given a URI with a host name, websockets hands the name to the event loop for every
connection, and the loop resolves it again each time, in a thread pool
(https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.loop.getaddrinfo; libuv's
pool of four threads under uvloop, https://docs.libuv.org/en/v1.x/threadpool.html). Every call
joins its own sideband, so a busy instance would ask its resolver as often as calls start, with
each join waiting on a DNS round trip and a pool thread, and a resolver outage failing every
rejoin. aiohttp, which creates our calls at the same host, keeps a resolution 10 s by default
(`ttl_dns_cache`, https://docs.aiohttp.org/en/stable/client_reference.html#tcpconnector); the
sideband keeps one as long.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from typing import Final

TTL_S: Final = 10.0
"""Seconds a resolution is used before the name is resolved again (aiohttp's default)."""

MAX_HOSTS: Final = 16
"""Host and port pairs remembered at once; the least recently resolved goes first."""


def is_host_name(host: str) -> bool:
    """Whether `host` is a name to resolve, not an IPv4 or IPv6 literal (brackets allowed)."""
    try:
        ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return True
    return False


class AddressCache:
    """Resolutions of (host, port): the addresses in the resolver's order, each kept `ttl_s`
    seconds from `now` (the caller's monotonic clock), at most `max_hosts` pairs at once."""

    def __init__(self, ttl_s: float = TTL_S, max_hosts: int = MAX_HOSTS) -> None:
        self._ttl_s = ttl_s
        self._max_hosts = max_hosts
        self._kept: OrderedDict[tuple[str, int], tuple[float, tuple[str, ...]]] = OrderedDict()

    def addresses(self, host: str, port: int, now: float) -> tuple[str, ...] | None:
        """The addresses `host` resolved to less than `ttl_s` ago, or None (expired or never)."""
        kept = self._kept.get((host, port))
        if kept is None:
            return None
        until, addresses = kept
        if now >= until:
            del self._kept[(host, port)]
            return None
        return addresses

    def remember(self, host: str, port: int, addresses: tuple[str, ...], now: float) -> None:
        """Keep `addresses` (none: nothing is kept) for `host` and `port` until `now + ttl_s`."""
        if not addresses:
            return
        self._kept.pop((host, port), None)
        self._kept[(host, port)] = (now + self._ttl_s, addresses)
        while len(self._kept) > self._max_hosts:
            self._kept.popitem(last=False)

    def forget(self, host: str, port: int) -> None:
        """Drop the resolution of `host` and `port`: none of its addresses could be reached."""
        self._kept.pop((host, port), None)
