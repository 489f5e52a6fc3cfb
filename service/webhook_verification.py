"""Verifying the provider's webhooks: Standard Webhooks signatures, and refusing replays.

The signature and timestamp checks are the `standardwebhooks` library's
(https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):
HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}` with the `whsec_` secret, and a
timestamp at most 5 minutes from now either way. OpenAI signs its webhooks this way
(https://platform.openai.com/docs/guides/webhooks).

A captured delivery stays validly signed for those 5 minutes; the replay cache remembers every
verified `webhook-id` for twice that (a timestamp may be up to 5 minutes in the future), so a
second delivery of an id is refused for as long as its signature would pass.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError
from standardwebhooks.webhooks import EmptyWebhookSecretError

# The library's fixed tolerance (standardwebhooks.webhooks.Webhook.__verify_timestamp).
TIMESTAMP_TOLERANCE_S = 300.0


class WebhookRefused(Exception):
    """A delivery we do not act on."""


class WebhookUnverified(WebhookRefused):
    """Missing or bad signature headers, a wrong signature, or a timestamp too old or new."""


class WebhookReplayed(WebhookRefused):
    """A verified delivery whose `webhook-id` was already seen."""


class WebhookMalformed(WebhookRefused):
    """A verified delivery whose body is not a JSON object."""


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


class WebhookVerifier:
    """Checks one delivery: signature and timestamp first, then that its id is new."""

    def __init__(self, secret: str, replay_cache: ReplayCache) -> None:
        """`secret`: the `whsec_<base64>` signing secret. Raises ValueError when it is not one."""
        try:
            self._webhook = Webhook(secret)
        except (ValueError, RuntimeError, EmptyWebhookSecretError) as exc:
            raise ValueError(f"the webhook secret is not a whsec_<base64> secret: {exc}") from None
        self._seen = replay_cache

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> dict[str, Any]:
        """The delivery's JSON object, once it is shown genuine and new.

        Raises `WebhookUnverified`, then `WebhookReplayed`, then `WebhookMalformed`: an
        unverified delivery is never remembered, so a forged one cannot block the real one.
        """
        wanted = ("webhook-id", "webhook-timestamp", "webhook-signature")
        signed = {name: headers[name] for name in wanted if name in headers}
        try:
            self._webhook.verify(body, signed, json_parse=False)
        except WebhookVerificationError as exc:
            raise WebhookUnverified(str(exc)) from None
        except (ValueError, UnicodeDecodeError):
            # A signature that is not `v1,<base64>` or a body that is not UTF-8.
            raise WebhookUnverified("malformed signature header or body") from None
        if not self._seen.first_sighting(signed["webhook-id"], now):
            raise WebhookReplayed(f"webhook {signed['webhook-id'][:64]!r} was already delivered")
        try:
            event = json.loads(body)
        except ValueError:
            raise WebhookMalformed("the webhook body is not JSON") from None
        if not isinstance(event, dict):
            raise WebhookMalformed("the webhook body is not a JSON object")
        return event
