"""The provider's `Location` header, reduced to the call id it names.

The rule follows the reference client (codex `decode_call_id_from_location`) but is stricter: the
fragment is dropped as well as the query, and the segment that looks like a call id must be a
valid `CallId`, so nothing we later put into a URL can carry `%`, `.` or `/`.
"""

from __future__ import annotations

import re

from signaling.ids import CallId, as_call_id, is_valid_call_id

_RTC_PREFIX = "rtc_"
_UUID_LENGTH = 36
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
# Long enough to recognise the header in a log line, short enough that a hostile header cannot
# flood one.
_SHOWN_CHARS = 120


class LocationError(ValueError):
    """The provider's `Location` header does not name a usable call id."""


class MissingLocationError(LocationError):
    """The response carried no `Location` header, or an empty one."""

    def __init__(self) -> None:
        super().__init__("realtime call response is missing the Location header")


class NonAsciiLocationError(LocationError):
    """The header holds something other than visible ASCII (0x21..0x7E)."""

    def __init__(self, location: str | bytes) -> None:
        super().__init__(
            f"realtime call Location is not visible ASCII: {_shown(location)}",
        )


class NoCallIdError(LocationError):
    """No path segment of the header looks like a call id."""

    def __init__(self, location: str) -> None:
        super().__init__(f"realtime call Location does not contain a call id: {_shown(location)}")


class InvalidCallIdError(LocationError):
    """The segment that looks like a call id has characters or a length a call id may not have."""

    def __init__(self, segment: str, location: str) -> None:
        super().__init__(
            f"realtime call Location names an invalid call id {_shown(segment)}"
            f" (allowed: rtc_ + 1..128 of [A-Za-z0-9_-], or a UUID): {_shown(location)}"
        )


def parse_call_id(location: str | bytes | None) -> CallId:
    """Return the call id named by the provider's `Location` header.

    The header may be relative or absolute. Its query and fragment are ignored, and the path is
    scanned from its last segment backwards for the first one that starts with `rtc_` (and has
    more after it) or is a UUID; that segment must be a valid call id.

    Raises a `LocationError` subclass: `MissingLocationError` for no or an empty header,
    `NonAsciiLocationError` for anything outside visible ASCII, `NoCallIdError` when no segment
    looks like a call id, and `InvalidCallIdError` when the one that does is not valid.
    """
    if not location:
        raise MissingLocationError()
    text = _visible_ascii(location)
    path = re.split(r"[?#]", text, maxsplit=1)[0]
    for segment in reversed(path.split("/")):
        if not _looks_like_call_id(segment):
            continue
        if not is_valid_call_id(segment):
            raise InvalidCallIdError(segment, text)
        return as_call_id(segment)
    raise NoCallIdError(text)


def _visible_ascii(location: str | bytes) -> str:
    if isinstance(location, bytes):
        try:
            text = location.decode("ascii")
        except UnicodeDecodeError:
            raise NonAsciiLocationError(location) from None
    else:
        text = location
    if _VISIBLE_ASCII.fullmatch(text) is None:
        raise NonAsciiLocationError(location)
    return text


def _looks_like_call_id(segment: str) -> bool:
    if segment.startswith(_RTC_PREFIX):
        return len(segment) > len(_RTC_PREFIX)
    # Without the `rtc_` prefix, the only valid call id of this length is a UUID.
    return len(segment) == _UUID_LENGTH and is_valid_call_id(segment)


def _shown(value: str | bytes) -> str:
    if len(value) <= _SHOWN_CHARS:
        return repr(value)
    return f"{value[:_SHOWN_CHARS]!r}... (truncated from {len(value)})"
