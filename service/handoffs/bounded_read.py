"""Reading a handler's output without holding more of it than we keep.

`asyncio.StreamReader.readline` fails on a line longer than the reader's limit ("Separator is
not found, and chunk exceed the limit"); these read fixed-size chunks instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Final

CHUNK_BYTES: Final = 65536
"""Bytes asked of the stream per read."""


async def bounded_lines(stream: asyncio.StreamReader, max_line_bytes: int) -> AsyncIterator[bytes]:
    """The lines of `stream` until its end, without their `\\n`; a line reaching
    `max_line_bytes` is given at once, cut there, and the rest of it is read and dropped (the
    caller may stop reading instead). A last line without `\\n` counts."""
    line = bytearray()
    dropping = False
    while chunk := await stream.read(CHUNK_BYTES):
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            stop = len(chunk) if end == -1 else end
            if not dropping:
                line += chunk[start : min(stop, start + max_line_bytes - len(line))]
                if len(line) >= max_line_bytes:
                    yield bytes(line)
                    line.clear()
                    dropping = True
            if end == -1:
                break
            if not dropping:
                yield bytes(line)
                line.clear()
            dropping = False
            start = end + 1
    if line:
        yield bytes(line)


async def tail(stream: asyncio.StreamReader, keep_bytes: int) -> bytes:
    """The last `keep_bytes` of `stream`, read to its end."""
    kept = b""
    while chunk := await stream.read(CHUNK_BYTES):
        kept = (kept + chunk)[-keep_bytes:]
    return kept
