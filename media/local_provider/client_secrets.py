"""Ephemeral client secrets (`ek_…`): minted with a session, accepted until they expire.

Pure: the caller passes the time. A browser holding one may create calls on
`/v1/realtime/calls` without the provider key; see
https://platform.openai.com/docs/api-reference/realtime-sessions/create-realtime-client-secret
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SECRET_PREFIX = "ek_"
DEFAULT_TTL_S = 600
MIN_TTL_S = 10
MAX_TTL_S = 7200


@dataclass(frozen=True)
class ClientSecret:
    """One secret: its value, its expiry (seconds since the epoch) and the session it starts."""

    value: str
    expires_at: int
    session: Mapping[str, Any]


class ClientSecrets:
    """The secrets minted and not yet expired, at most `limit` of them (oldest dropped first)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._secrets: OrderedDict[str, ClientSecret] = OrderedDict()

    def issue(self, session: Mapping[str, Any], *, ttl_s: int, now: float) -> ClientSecret:
        """A fresh secret for `session`, valid for `ttl_s` seconds from `now`."""
        self._forget_expired(now)
        while len(self._secrets) >= self._limit:
            self._secrets.popitem(last=False)
        secret = ClientSecret(
            SECRET_PREFIX + secrets.token_urlsafe(24), int(now) + ttl_s, dict(session)
        )
        self._secrets[secret.value] = secret
        return secret

    def valid(self, value: str, *, now: float) -> ClientSecret | None:
        """The secret named `value` if it exists and has not expired."""
        secret = self._secrets.get(value)
        if secret is None or secret.expires_at <= now:
            return None
        return secret

    def _forget_expired(self, now: float) -> None:
        for value in [v for v, s in self._secrets.items() if s.expires_at <= now]:
            del self._secrets[value]
