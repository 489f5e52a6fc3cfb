"""Reading whole data messages out of received WebSocket bytes (RFC 6455 §5.2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signaling.realtime.ws_frames import frame_end, take_messages, takes_once_whole


def _frame(payload: bytes, *, head: int = 0x81, mask: bytes | None = None) -> bytes:
    size = len(payload)
    masked = 0x80 if mask is not None else 0
    if size < 126:
        header = bytes((head, masked | size))
    elif size < 1 << 16:
        header = bytes((head, masked | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((head, masked | 127)) + size.to_bytes(8, "big")
    if mask is None:
        return header + payload
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _take(buffer: bytes, start: int = 0, max_size: int = 1 << 20) -> tuple[list[str | bytes], int]:
    out: list[str | bytes] = []
    return out, take_messages(buffer, start, max_size, out)


def test_whole_text_and_binary_frames_are_taken_in_order() -> None:
    buffer = _frame(b'{"type":"a"}') + _frame(b"\x00\x01", head=0x82) + _frame("é".encode())
    assert _take(buffer) == (['{"type":"a"}', b"\x00\x01", "é"], len(buffer))


def test_a_frame_with_a_16_bit_length_is_taken() -> None:
    text = "y" * 60_000
    buffer = _frame(text.encode())
    assert _take(buffer) == ([text], len(buffer))


def test_taking_starts_at_the_offset_given() -> None:
    first, second = _frame(b"one"), _frame(b"two")
    assert _take(first + second, len(first)) == (["two"], len(first + second))


def test_an_empty_text_frame_is_an_empty_message() -> None:
    assert _take(_frame(b"")) == ([""], 2)


@pytest.mark.parametrize(
    "other",
    [
        _frame(b"ping", head=0x89),
        _frame(b"", head=0x8A),
        _frame(b"\x03\xe8", head=0x88),
        _frame(b"first half", head=0x01),
        _frame(b"continued", head=0x80),
        _frame(b"compressed", head=0xC1),
        _frame(b"masked", mask=b"\x01\x02\x03\x04"),
        _frame(b"z" * 70_000),
        _frame(b"\xff\xfe not UTF-8"),
        _frame(b"\x03", head=0x83),
    ],
    ids=[
        "ping",
        "pong",
        "close",
        "fragment",
        "continuation",
        "reserved bit",
        "masked",
        "64-bit length",
        "not UTF-8",
        "reserved opcode",
    ],
)
def test_taking_stops_at_a_frame_of_another_kind(other: bytes) -> None:
    before = _frame(b"before")
    assert _take(before + other + _frame(b"after")) == (["before"], len(before))


def test_taking_stops_at_a_frame_over_the_size_cap() -> None:
    small, big = _frame(b"12345"), _frame(b"123456")
    assert _take(small + big, max_size=5) == (["12345"], len(small))


@pytest.mark.parametrize("cut", [1, 2, 3, 5])
def test_taking_stops_at_a_frame_not_yet_complete(cut: int) -> None:
    whole, partial = _frame(b"whole"), _frame(b"y" * 200)[:cut]
    assert _take(whole + partial) == (["whole"], len(whole))


@given(st.lists(st.binary(max_size=300), max_size=20), st.integers(min_value=0, max_value=40))
def test_bytes_cut_anywhere_yield_the_messages_before_the_cut(
    payloads: list[bytes], cut_back: int
) -> None:
    frames = [_frame(p, head=0x82) for p in payloads]
    buffer = b"".join(frames)
    cut = max(len(buffer) - cut_back, 0)
    out, stop = _take(buffer[:cut])
    ends = [sum(map(len, frames[: i + 1])) for i in range(len(frames))]
    complete = [e for e in ends if e <= cut]
    assert out == payloads[: len(complete)]
    assert stop == (complete[-1] if complete else 0)


@pytest.mark.parametrize(
    ("frame", "end"),
    [
        (_frame(b"abc"), 5),
        (_frame(b"a" * 300), 304),
        (_frame(b"a" * 70_000), 70_010),
        (_frame(b"abc", mask=b"\x00\x00\x00\x00"), 9),
        (_frame(b"a" * 300, head=0x01, mask=b"\x00\x00\x00\x00"), 308),
    ],
    ids=["7-bit", "16-bit", "64-bit", "masked", "masked 16-bit fragment"],
)
def test_frame_end_is_past_the_header_mask_and_payload(frame: bytes, end: int) -> None:
    assert frame_end(b"xx" + frame, 2) == end + 2


def test_frame_end_may_lie_beyond_the_bytes_received() -> None:
    assert frame_end(_frame(b"a" * 300)[:10], 0) == 304


@pytest.mark.parametrize("received", [b"", b"\x81", b"\x81\x7e\x01", b"\x81\x7f" + bytes(7)])
def test_frame_end_is_unknown_until_the_header_is_complete(received: bytes) -> None:
    assert frame_end(received, 0) is None


@pytest.mark.parametrize(
    "received",
    [b"\x81", b"\x82\x05ab", b"\x81\x7e", b"\x81\x7e\x01", b"\x81\x7e\x01\x00abc"],
    ids=["first byte", "7-bit", "16-bit length to come", "16-bit length half", "16-bit"],
)
def test_a_text_or_binary_frame_under_the_cap_is_kept_for_taking(received: bytes) -> None:
    assert takes_once_whole(received, 0, 1000)


@pytest.mark.parametrize(
    ("received", "max_size"),
    [
        (b"\x89\x05ab", 1000),
        (b"\x01\x05ab", 1000),
        (b"\xc1\x05ab", 1000),
        (b"\x83\x05ab", 1000),
        (b"\x81\x85\x00\x00", 1000),
        (b"\x82\x7f\x00\x00", 1000),
        (b"\x81\x7e\x01\x00abc", 255),
    ],
    ids=["ping", "fragment", "reserved bit", "reserved opcode", "masked", "64-bit", "over cap"],
)
def test_any_other_frame_is_not_kept_for_taking(received: bytes, max_size: int) -> None:
    assert not takes_once_whole(received, 0, max_size)
