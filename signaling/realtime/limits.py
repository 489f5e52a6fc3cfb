"""The limits one call runs under, passed in from the service settings, and the one helper
that cuts provider text to them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from signaling.realtime.link import ReconnectPolicy

MAX_ID_CHARS: Final = 256
"""Longest provider id the core keeps (item, call, response, event and session ids), in
characters; the provider's own are under 40. The parser reads a longer optional id as absent
and an event whose required id is longer as malformed; a tool call whose call id is longer
is reported (its id cut) and not run, as answering it would echo the whole id."""

CUT_MARKER: Final = "…[cut: {size} bytes]"
"""Ends provider text cut to a cap; `size` is the text's whole UTF-8 size."""

TOOL_NAME_CAP: Final = "tool_name_bytes"
TOOL_CALL_ID_CAP: Final = "tool_call_id_chars"
REQUEST_CAP: Final = "handoff_request_bytes"
ERROR_CAP: Final = "error_bytes"
ERROR_CODE_CAP: Final = "error_code_bytes"
"""The keys of the text caps in a call's `limits_reached` (`LimitReached.kind`)."""


@dataclass(frozen=True, slots=True)
class CallLimits:
    """Per-call limits: durations in seconds (same clock as the `now` given to `CallState`),
    sizes in items, UTF-8 bytes and error entries.

    `handoff_deadline_s` is how long a handoff may go without a result or failure before the
    core answers it with a failure itself.

    The provider's text is bounded where it enters the call: `max_request_bytes` is the
    largest `background_agent` prompt handed off (a longer one is refused as a malformed tool
    call, and the model is asked to call again with a shorter one); `max_name_bytes` the
    largest tool name or error code kept, shown or logged; `max_error_bytes` the largest error
    message (and end detail). Longer names, codes and messages are cut after redaction, ending
    with `CUT_MARKER`. Each cut is counted once in `limits_reached`.
    """

    max_duration_s: float = 3600.0
    idle_timeout_s: float = 300.0
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    max_transcript_items: int = 10_000
    max_transcript_bytes: int = 1_000_000
    max_errors: int = 100
    handoff_deadline_s: float = 330.0
    max_request_bytes: int = 32_768
    max_name_bytes: int = 256
    max_error_bytes: int = 2_048


def utf8_size(text: str) -> int:
    """`text`'s size in UTF-8 bytes (a lone surrogate counts as its three bytes)."""
    return len(text.encode("utf-8", "surrogatepass"))


def clip(text: str, max_bytes: int) -> str:
    """`text` itself when it fits in `max_bytes` UTF-8 bytes; otherwise its start and
    `CUT_MARKER` (giving `text`'s whole size), together at most `max_bytes` bytes (just the
    marker when even that does not fit). A character split by the cut is dropped whole."""
    if len(text) * 4 <= max_bytes:
        return text
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= max_bytes:
        return text
    marker = CUT_MARKER.format(size=len(encoded))
    keep = max(max_bytes - utf8_size(marker), 0)
    return encoded[:keep].decode("utf-8", "ignore") + marker
