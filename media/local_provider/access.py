"""Who may use the provider: the provider key, and ephemeral client secrets for browsers."""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from typing import Any, Literal

from starlette.datastructures import Headers

from media.local_provider.client_secrets import SECRET_PREFIX, ClientSecrets
from media.local_provider.errors import invalid_api_key


def bearer_token(headers: Headers) -> str:
    """The token of an `Authorization: Bearer <token>` header, or ""."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class Access:
    """Checks credentials: `api_key` (None: anything goes) and the `ek_` secrets minted here.

    `flavor` `azure` takes the key from the `api-key` header, as Azure OpenAI does
    (https://learn.microsoft.com/azure/ai-foundry/openai/reference#authentication), and refuses
    the bearer header.
    """

    def __init__(
        self,
        api_key: str | None,
        client_secrets: ClientSecrets,
        *,
        flavor: Literal["openai", "azure"] = "openai",
    ) -> None:
        self._api_key = api_key
        self._flavor = flavor
        self.client_secrets = client_secrets

    def authorized(self, headers: Headers) -> bool:
        """Whether `headers` carry the provider key."""
        if self._api_key is None:
            return True
        if self._flavor == "azure":
            offered = headers.get("api-key", "").strip()
        else:
            offered = bearer_token(headers)
        return hmac.compare_digest(offered.encode(), self._api_key.encode())

    def require_key(self, headers: Headers) -> None:
        """Raises ProviderError (401) unless `headers` carry the provider key."""
        if not self.authorized(headers):
            raise invalid_api_key()

    def require_key_or_secret(self, headers: Headers) -> Mapping[str, Any] | None:
        """The session a valid `ek_` secret grants, or None when the provider key was used.

        Raises ProviderError (401) for an unknown or expired secret, or a wrong key.
        """
        token = bearer_token(headers)
        if not token.startswith(SECRET_PREFIX):
            self.require_key(headers)
            return None
        secret = self.client_secrets.valid(token, now=time.time())
        if secret is None:
            raise invalid_api_key()
        return secret.session
