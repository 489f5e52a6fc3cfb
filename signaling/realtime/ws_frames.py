"""Reading whole data messages straight out of received WebSocket bytes (RFC 6455 §5.2), pure.

A provider's sideband is mostly small, unfragmented, unmasked text frames. `take_messages`
reads those in one tight loop and stops at anything else: control frames, fragments, reserved
bits, masks, frames past the size cap, text that is not UTF-8, or a frame not yet complete.
What it stops at is for a full WebSocket implementation to handle; `frame_end` says where that
frame ends, so that it can be handed over whole.
"""

from __future__ import annotations

from typing import Final

_TEXT: Final = 0x81
"""FIN set, no reserved bits, opcode 1 (text): a whole text message in one frame."""
_BINARY: Final = 0x82
"""FIN set, no reserved bits, opcode 2 (binary)."""
_MASKED: Final = 0x80
_LENGTH_16: Final = 126
_LENGTH_64: Final = 127
_MASK_BYTES: Final = 4


def take_messages(buffer: bytes, start: int, max_size: int, out: list[str | bytes]) -> int:
    """Append to `out` the payloads of the whole frames at `buffer[start:]` that are
    unfragmented, unmasked text (decoded from UTF-8) or binary messages with at most
    `max_size` payload bytes and a 7- or 16-bit length (RFC 6455 §5.2), in order.

    Return the offset of the first frame not taken: `len(buffer)` when every byte was, else
    the start of a frame that is another kind, too large, not UTF-8 text, or incomplete.
    """
    end = len(buffer)
    pos = start
    append = out.append
    while end - pos >= 2:
        head = buffer[pos]
        size = buffer[pos + 1]
        if size < _LENGTH_16:
            first = pos + 2
        elif size == _LENGTH_16 and end - pos >= 4:
            size = (buffer[pos + 2] << 8) | buffer[pos + 3]
            first = pos + 4
        else:
            # Masked, a 64-bit length, or a length not yet received.
            break
        last = first + size
        if last > end or size > max_size:
            break
        if head == _TEXT:
            try:
                append(buffer[first:last].decode())
            except UnicodeDecodeError:
                break
        elif head == _BINARY:
            append(buffer[first:last])
        else:
            break
        pos = last
    return pos


def takes_once_whole(buffer: bytes, start: int, max_size: int | None) -> bool:
    """Whether the frame that starts at `buffer[start]`, of which at least one byte but not
    all has been received, is one `take_messages` takes once whole (or refuses only for text
    that is not UTF-8), as far as the header received so far tells (RFC 6455 §5.2)."""
    end = len(buffer)
    if buffer[start] not in (_TEXT, _BINARY):
        return False
    if end - start < 2:
        return True
    size = buffer[start + 1]
    if size == _LENGTH_16:
        if end - start < 4:
            return True
        size = (buffer[start + 2] << 8) | buffer[start + 3]
    elif size > _LENGTH_16:
        # Masked, or a 64-bit length.
        return False
    return max_size is None or size <= max_size


def frame_end(buffer: bytes, start: int) -> int | None:
    """The offset just past the frame that starts at `buffer[start]` (any kind, masked or
    not, RFC 6455 §5.2), which may lie beyond `len(buffer)`; None while its header is not
    all there."""
    end = len(buffer)
    if end - start < 2:
        return None
    second = buffer[start + 1]
    size = second & ~_MASKED
    header = 2
    if size == _LENGTH_16:
        header = 4
    elif size == _LENGTH_64:
        header = 10
    if end - start < header:
        return None
    if header > 2:
        size = int.from_bytes(buffer[start + 2 : start + header], "big")
    if second & _MASKED:
        header += _MASK_BYTES
    return start + header + size
