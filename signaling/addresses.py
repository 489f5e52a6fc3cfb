"""The provider's host name as last resolved, for the sideband's joins (pure code).

Given a URI with a host name, websockets hands the name to the event loop for every
connection, and the loop resolves it again each time, in a thread pool
(https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.loop.getaddrinfo; libuv's
pool of four threads under uvloop, https://docs.libuv.org/en/v1.x/threadpool.html). Every call
joins its own sideband, so a busy instance would ask its resolver as often as calls start, with
each join waiting on a DNS round trip and a pool thread, and a resolver outage failing every
rejoin. aiohttp, which creates our calls at the same host, keeps a resolution 10 s by default
(`ttl_dns_cache`, https://docs.aiohttp.org/en/stable/client_reference.html#tcpconnector); the
sideband keeps one as long. While the resolver fails, or takes longer than `STALE_AFTER_S` to
answer, it joins the last addresses it had, for up to a day, and asks the resolver again 30 s
later (serving stale data, RFC 8767 §5).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Final

TTL_S: Final = 10.0
"""Seconds a resolution is used before the name is resolved again (aiohttp's default)."""

MAX_STALE_S: Final = 86_400.0
"""Seconds after it was made that a resolution still stands in for one the resolver fails to
give (RFC 8767 §5 suggests one to three days)."""

STALE_AFTER_S: Final = 1.8
"""Seconds a join waits for the resolver before it takes a stale resolution (RFC 8767 §5's
client response timer)."""

RECHECK_S: Final = 30.0
"""Seconds a stale resolution is used as it is after the resolver failed, before the resolver
is asked again (RFC 8767 §5's failure recheck timer)."""


def is_host_name(host: str) -> bool:
    """Whether `host` is a name to resolve, not an IPv4 or IPv6 literal (brackets allowed)."""
    try:
        ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return True
    return False


def connect_address(sockaddr: tuple[Any, ...]) -> str:
    """The host to connect to for one `getaddrinfo` socket address: its IP address, with the
    IPv6 scope (`%<scope id>`) when it has one, which `getaddrinfo` gives apart from the address
    (https://docs.python.org/3/library/socket.html#socket-families)."""
    address = str(sockaddr[0])
    if len(sockaddr) == 4 and sockaddr[3] and "%" not in address:
        return f"{address}%{sockaddr[3]}"
    return address


class Resolution:
    """The addresses one host name resolved to, in the order to try them, with the time (the
    caller's monotonic clock) they were resolved at."""

    def __init__(
        self, ttl_s: float = TTL_S, max_stale_s: float = MAX_STALE_S, recheck_s: float = RECHECK_S
    ) -> None:
        self._ttl_s = ttl_s
        self._max_stale_s = max_stale_s
        self._recheck_s = recheck_s
        self._addresses: tuple[str, ...] = ()
        self._at = 0.0
        self._recheck_at = 0.0

    def fresh(self, now: float) -> tuple[str, ...] | None:
        """The addresses to use without asking the resolver: resolved less than `ttl_s` ago,
        or stale while the resolver is not to be asked again yet (`failed`); else None."""
        if now < self._recheck_at:
            return self.stale(now)
        return self._younger_than(self._ttl_s, now)

    def stale(self, now: float) -> tuple[str, ...] | None:
        """The addresses if resolved less than `max_stale_s` ago (for when the resolver fails),
        else None."""
        return self._younger_than(self._max_stale_s, now)

    def _younger_than(self, age_s: float, now: float) -> tuple[str, ...] | None:
        if not self._addresses or now - self._at >= age_s:
            return None
        return self._addresses

    def remember(self, addresses: tuple[str, ...], now: float) -> None:
        """Take `addresses` (none: forget) as resolved at `now`."""
        self._addresses, self._at, self._recheck_at = addresses, now, 0.0

    def failed(self, now: float) -> None:
        """The resolver failed (or did not answer in time) at `now`: the stale addresses stand
        in, and the resolver is not asked again for `recheck_s`."""
        self._recheck_at = now + self._recheck_s

    def prefer(self, address: str) -> None:
        """Put `address`, which answered, first: those tried before it did not."""
        if address in self._addresses and self._addresses[0] != address:
            self._addresses = (address, *(a for a in self._addresses if a != address))

    def forget(self) -> None:
        """Drop the addresses: none of them answered."""
        self._addresses, self._recheck_at = (), 0.0
