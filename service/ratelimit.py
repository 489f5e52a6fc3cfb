"""Per-client token buckets for call starts (pure: the caller passes the time)."""

from __future__ import annotations

import math
from collections import OrderedDict


class RateLimiter:
    """`rate_per_minute` starts per client, with bursts up to `burst`."""

    def __init__(self, rate_per_minute: float, burst: int, *, max_clients: int = 10000) -> None:
        self.rate_per_s = rate_per_minute / 60.0
        self.burst = burst
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_clients = max_clients

    def take(self, client: str, now: float) -> float:
        """Take one token: 0.0 when allowed, else the seconds until one is available."""
        tokens, last = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate_per_s)
        if tokens >= 1.0:
            self._remember(client, (tokens - 1.0, now))
            return 0.0
        self._remember(client, (tokens, now))
        return math.ceil((1.0 - tokens) / self.rate_per_s * 1000) / 1000

    def _remember(self, client: str, bucket: tuple[float, float]) -> None:
        # Least recently seen clients are forgotten first: memory stays bounded.
        self._buckets[client] = bucket
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
