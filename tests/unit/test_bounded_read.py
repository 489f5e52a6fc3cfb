"""Reading a handler's output in bounded lines, whatever their length."""

from __future__ import annotations

import asyncio

from service.handoffs.bounded_read import CHUNK_BYTES, bounded_lines, tail


async def _lines(data: bytes, max_line_bytes: int) -> list[bytes]:
    stream = asyncio.StreamReader()
    stream.feed_data(data)
    stream.feed_eof()
    return [line async for line in bounded_lines(stream, max_line_bytes)]


async def test_lines_are_split_on_newlines_and_a_last_line_without_one_counts() -> None:
    assert await _lines(b"one\n\ntwo\nthree", 10) == [b"one", b"", b"two", b"three"]


async def test_a_line_longer_than_the_cap_is_cut_and_the_next_line_is_whole() -> None:
    long_line = b"x" * (3 * CHUNK_BYTES)
    assert await _lines(long_line + b"\nnext\n", 5) == [b"xxxxx", b"next"]


async def test_a_line_of_exactly_the_cap_is_given_once() -> None:
    assert await _lines(b"abcde\nf\n", 5) == [b"abcde", b"f"]


async def test_the_tail_keeps_only_the_end() -> None:
    stream = asyncio.StreamReader()
    stream.feed_data(b"a" * 100_000 + b"the end")
    stream.feed_eof()
    assert await tail(stream, 7) == b"the end"
