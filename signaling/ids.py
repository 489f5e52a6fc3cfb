"""The provider's call id, validated so that it is safe to put in a URL we build."""

from __future__ import annotations

import re
from typing import NewType

CallId = NewType("CallId", str)

_RTC_ID = re.compile(r"rtc_[A-Za-z0-9_-]{1,128}")
_UUID_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def is_valid_call_id(value: str) -> bool:
    """Whether `value` is an `rtc_` id in the safe alphabet or a 36-character UUID."""
    return _RTC_ID.fullmatch(value) is not None or _UUID_ID.fullmatch(value) is not None


def as_call_id(value: str) -> CallId:
    """Validate `value` as a call id; raise `ValueError` when it is not one."""
    if not is_valid_call_id(value):
        raise ValueError(f"not a valid call id: {value[:64]!r}")
    return CallId(value)
