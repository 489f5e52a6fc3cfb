"""Verifying the provider's webhooks: Standard Webhooks signatures, and refusing replays.

The signature and timestamp checks are the `standardwebhooks` library's
(https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):
HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}` with the `whsec_` secret, and a
timestamp at most 5 minutes from now either way. OpenAI signs its webhooks this way
(https://platform.openai.com/docs/guides/webhooks).

A captured delivery stays validly signed for those 5 minutes; a replay guard remembers every
verified `webhook-id` for twice that (a timestamp may be up to 5 minutes in the future), so a
second delivery of an id is refused for as long as its signature would pass. With Redis the
guard is shared by every instance (`RedisReplayGuard`), so a delivery replayed to another
instance behind the same load balancer is refused too; alone, it is this process's memory
(`LocalReplayGuard`).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from standardwebhooks import Webhook, WebhookVerificationError
from standardwebhooks.webhooks import EmptyWebhookSecretError

from service.redis_client import redis_failures
from service.redis_reports import redis_trouble

if TYPE_CHECKING:
    from service.redis_client import RedisClient
    from service.redis_keys import RedisKeys

# The library's fixed tolerance (standardwebhooks.webhooks.Webhook.__verify_timestamp).
TIMESTAMP_TOLERANCE_S = 300.0
MAX_WEBHOOK_ID_CHARS = 256
"""Longest `webhook-id` taken (OpenAI's are `wh_` and a few dozen characters)."""


class WebhookRefused(Exception):
    """A delivery we do not act on."""


class WebhookUnverified(WebhookRefused):
    """Missing or bad signature headers, a wrong signature, or a timestamp too old or new."""


class WebhookReplayed(WebhookRefused):
    """A verified delivery whose `webhook-id` was already seen."""


class WebhookMalformed(WebhookRefused):
    """A verified delivery whose body is not a JSON object."""


class ReplayGuardUnavailable(Exception):
    """The shared replay guard (Redis) cannot be asked now; the delivery should be retried."""


@dataclass(frozen=True, slots=True)
class VerifiedDelivery:
    """A delivery shown genuine: its `webhook-id` and its JSON object."""

    webhook_id: str
    event: dict[str, Any]


class ReplayGuard(Protocol):
    """Remembers verified webhook ids for `2 * TIMESTAMP_TOLERANCE_S`."""

    async def first_sighting(self, webhook_id: str) -> bool:
        """Remember `webhook_id`; True if it was not remembered already. Raises
        `ReplayGuardUnavailable` when the guard cannot be asked."""
        ...


class ReplayCache:
    """The webhook ids seen in the last `ttl_s` seconds, at most `capacity` of them.

    Pure: callers pass the (monotonic) time. When full, the oldest id is forgotten first.
    """

    def __init__(self, capacity: int, ttl_s: float = 2 * TIMESTAMP_TOLERANCE_S) -> None:
        self._capacity = capacity
        self._ttl_s = ttl_s
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def first_sighting(self, webhook_id: str, now: float) -> bool:
        """Remember `webhook_id`; True if it was not remembered already."""
        while self._expiry:
            oldest, expires = next(iter(self._expiry.items()))
            if expires > now:
                break
            del self._expiry[oldest]
        if webhook_id in self._expiry:
            return False
        self._expiry[webhook_id] = now + self._ttl_s
        while len(self._expiry) > self._capacity:
            self._expiry.popitem(last=False)
        return True


class LocalReplayGuard:
    """A `ReplayGuard` in this process's memory, for an instance without Redis."""

    def __init__(self, capacity: int) -> None:
        self._cache = ReplayCache(capacity)

    async def first_sighting(self, webhook_id: str) -> bool:
        """See `ReplayGuard.first_sighting`; never raises."""
        return self._cache.first_sighting(webhook_id, time.monotonic())


class RedisReplayGuard:
    """A `ReplayGuard` shared by every instance: one `SET NX` key per id, which Redis expires."""

    def __init__(self, redis: RedisClient, *, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_ms = round(2 * TIMESTAMP_TOLERANCE_S * 1000)

    async def first_sighting(self, webhook_id: str) -> bool:
        """See `ReplayGuard.first_sighting`; `ReplayGuardUnavailable` when Redis is not."""
        key = self._keys.webhook(webhook_id)
        try:
            return bool(await self._redis.set(key, "1", nx=True, px=self._ttl_ms))
        except redis_failures() as exc:
            raise ReplayGuardUnavailable(redis_trouble(exc)) from None


class WebhookVerifier:
    """Checks one delivery: signature and timestamp first, then that its id is new."""

    def __init__(self, secret: str) -> None:
        """`secret`: the `whsec_<base64>` signing secret. Raises ValueError when it is not one."""
        try:
            self._webhook = Webhook(secret)
        except (ValueError, RuntimeError, EmptyWebhookSecretError) as exc:
            raise ValueError(f"the webhook secret is not a whsec_<base64> secret: {exc}") from None

    async def verify(
        self, body: bytes, headers: Mapping[str, str], seen: ReplayGuard
    ) -> VerifiedDelivery:
        """The delivery, once it is shown genuine and new (its id is then remembered by `seen`).

        Raises `WebhookMalformed` for a `webhook-id` over `MAX_WEBHOOK_ID_CHARS`, then
        `WebhookUnverified`, then `WebhookReplayed`, then `WebhookMalformed`, or
        `ReplayGuardUnavailable`: an unverified delivery is never remembered, so a forged one
        cannot block the real one.
        """
        wanted = ("webhook-id", "webhook-timestamp", "webhook-signature")
        signed = {name: headers[name] for name in wanted if name in headers}
        if len(signed.get("webhook-id", "")) > MAX_WEBHOOK_ID_CHARS:
            # Each id is remembered for the replay window: its size is ours to bound.
            raise WebhookMalformed(f"webhook-id is longer than {MAX_WEBHOOK_ID_CHARS} characters")
        try:
            self._webhook.verify(body, signed, json_parse=False)
        except WebhookVerificationError as exc:
            raise WebhookUnverified(str(exc)) from None
        except (ValueError, UnicodeDecodeError):
            # A signature that is not `v1,<base64>` or a body that is not UTF-8.
            raise WebhookUnverified("malformed signature header or body") from None
        webhook_id = signed["webhook-id"]
        if not await seen.first_sighting(webhook_id):
            raise WebhookReplayed(f"webhook {webhook_id[:64]!r} was already delivered")
        try:
            event = json.loads(body)
        except RecursionError:
            raise WebhookMalformed("the webhook body nests too deeply") from None
        except ValueError:
            raise WebhookMalformed("the webhook body is not JSON") from None
        if not isinstance(event, dict):
            raise WebhookMalformed("the webhook body is not a JSON object")
        return VerifiedDelivery(webhook_id, event)
