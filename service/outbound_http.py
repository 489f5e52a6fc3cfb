"""The HTTP client of an endpoint we call for each call or handoff (an HTTP handoff handler, a
SIP router's URL)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import httpx


@runtime_checkable
class HoldsConnections(Protocol):
    """A handler or router given as a URL: its owner closes it when it stops."""

    async def aclose(self) -> None:
        """Close the connections kept open."""


class EndpointClient:
    """An `httpx.AsyncClient` made at first use and kept for every later one in the same event
    loop: a client per request would load a CA bundle (tens of ms of CPU) and open a new
    connection every time. No cap on connections, as with a client each: how many requests
    run at once is bounded by whoever makes them."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> httpx.AsyncClient:
        """The client for the running event loop (a new one if the loop has changed)."""
        # Imported only where such an endpoint is configured: the service never needs httpx.
        import httpx

        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
            self._client = httpx.AsyncClient(timeout=None, limits=limits)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the client's connections (one made in another, ended loop is only dropped)."""
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.aclose()


def refusal(status_code: int) -> str | None:
    """Why an endpoint's answer with `status_code` is no answer, or None for a 2xx: only success
    carries one (RFC 9110 §15.3, https://www.rfc-editor.org/rfc/rfc9110#section-15.3). A
    redirect is not followed, as the endpoint is the one configured; it fails like an error."""
    if 200 <= status_code < 300:
        return None
    if 300 <= status_code < 400:
        return f"answered {status_code} (redirects are not followed)"
    return f"answered {status_code}"


def endpoint_url(spec: str) -> str | None:
    """`spec` when it is an endpoint's URL (`http://` or `https://` with a host), None when it
    is not a URL at all (a `module:function` or a command).

    Raises ValueError for any other URL: another scheme, or no host (`http://`), which would
    otherwise be taken for a module name or fail only at the first request.
    """
    scheme, separator, _ = spec.partition("://")
    if not separator:
        return None
    if scheme.lower() not in ("http", "https"):
        raise ValueError(f"an endpoint URL must be http or https, not {scheme!r}")
    try:
        parts = urlsplit(spec)
        host, _ = parts.hostname, parts.port
    except ValueError:
        raise ValueError("an endpoint URL must name a host and a port from 0 to 65535") from None
    if not host:
        raise ValueError("an endpoint URL must name a host")
    return spec
