"""The trust anchors every TLS connection to the provider is verified against.

One `ssl.SSLContext` serves every connection: creating one loads a whole CA bundle, which cost
40 ms of CPU and 860 KiB of memory per context on our 2-core test machine, and a connection
keeps its context for as long as it is open. Asked for `ssl=True`, asyncio and uvloop create a
new default context for every connection
(https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.loop.create_connection),
as websockets does through them for a `wss://` URI
(https://websockets.readthedocs.io/en/stable/reference/asyncio/client.html).
"""

from __future__ import annotations

import functools
import os
import ssl

import certifi


def trust_anchors() -> ssl.SSLContext:
    """The client context verifying against `SSL_CERT_FILE` or `SSL_CERT_DIR` when set, else
    certifi's CA bundle (what httpx trusts by default); the same object for as long as those
    variables keep their values. Raises `OSError` or `ssl.SSLError` if the named file or
    directory cannot be loaded."""
    return _context(os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None)


@functools.lru_cache(maxsize=4)
def _context(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    if capath:
        return ssl.create_default_context(capath=capath)
    return ssl.create_default_context(cafile=certifi.where())
