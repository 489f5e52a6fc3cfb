"""The text a handoff brings back to its call (result, failure, progress): redacted, then capped.

A handler may quote a secret (an error naming the key it was given, an answer echoing its
environment), whichever worker ran it. Both are applied once, where worker events enter the
owning instance (`CallManager.dispatch`), so the record, the event stream and the model all
see the same redacted, bounded text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Final

from service.handoffs.queue import HandoffEvent
from signaling.redaction import redact

LIMIT_KIND: Final = "handoff_text_bytes"
"""The key of this cap in a call's `limits_reached`."""

CUT_MARKER: Final = "\n[cut: the handler's text was longer than {limit} bytes]"
"""Ends a text that was cut to the cap, so the model and the record show it is incomplete."""


def utf8_size(text: str) -> int:
    """`text`'s size in UTF-8 bytes (a lone surrogate counts as its three bytes)."""
    return len(text.encode("utf-8", "surrogatepass"))


def cut(text: str, max_bytes: int, limit: int) -> str:
    """`text` itself when it fits in `max_bytes` UTF-8 bytes; otherwise its start and
    `CUT_MARKER` (naming `limit`), together at most `max_bytes` bytes (just the marker when
    even that does not fit)."""
    if len(text) * 4 <= max_bytes or utf8_size(text) <= max_bytes:
        return text
    marker = CUT_MARKER.format(limit=limit)
    keep = max(max_bytes - utf8_size(marker), 0)
    # A character split by the cut is dropped whole.
    head = text.encode("utf-8", "surrogatepass")[:keep].decode("utf-8", "ignore")
    return head + marker


def capped(
    event: HandoffEvent, progress_spent: int, max_bytes: int
) -> tuple[HandoffEvent | None, bool]:
    """`event` with its text cut to `max_bytes`, and whether the cap was reached.

    A result or failure is cut to `max_bytes`. Progress shares one budget of `max_bytes` per
    handoff, of which its earlier progress spent `progress_spent` bytes: it is cut to what is
    left, and dropped (None) once that cannot hold the marker.
    """
    if event.kind == "started":
        return event, False
    room = max_bytes
    if event.kind == "progress":
        room = max_bytes - progress_spent
        if room < utf8_size(event.text) and room < utf8_size(CUT_MARKER.format(limit=max_bytes)):
            return None, True
    text = cut(event.text, room, max_bytes)
    if text is event.text:
        return event, False
    return dataclasses.replace(event, text=text), True


def admit(
    event: HandoffEvent, progress_spent: int, max_bytes: int, secrets: Iterable[str]
) -> tuple[HandoffEvent | None, bool]:
    """`event` with `secrets` (and anything key-shaped) redacted from its text, then `capped`.

    Redacted first: cut first, a secret crossing the cut would be left all but its last
    characters, which no longer match it.
    """
    text = redact(event.text, secrets)
    if text != event.text:
        event = dataclasses.replace(event, text=text)
    return capped(event, progress_spent, max_bytes)
