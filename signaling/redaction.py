"""Redaction of provider text before it is stored, served or logged.

A provider may quote what it was sent, credentials included (an "Incorrect API key provided:
sk-..." error is the common case). Every string that comes from the provider (sideband `error`
events, failed responses, join refusals, HTTP error bodies) goes through `redact` first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

REDACTED: Final = "[REDACTED]"
"""What a secret is replaced with."""

# OpenAI-style keys (sk-..., sk-proj-..., rk-...) and bearer credentials, whichever key they
# quote: the provider may echo a key we never configured here (another service's, a test one).
_KEY_LIKE: Final = re.compile(
    r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{8,}|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{8,}=*"
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with each of `secrets` and anything shaped like an API key replaced by
    `[REDACTED]`. Empty secrets are skipped."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _KEY_LIKE.sub(REDACTED, text)
