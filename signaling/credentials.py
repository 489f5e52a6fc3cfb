"""How requests to the provider authenticate: OpenAI's bearer key, Azure's `api-key` header, or
a Microsoft Entra ID token that is refreshed before it expires.

The HTTP client and the sideband both ask a `Credentials` object for headers right before each
request or join, so a refreshed token is picked up without rebuilding either.

Sources: OpenAI authenticates with `Authorization: Bearer <key>`
(https://platform.openai.com/docs/api-reference/authentication); Azure OpenAI takes `api-key:
<key>` or `Authorization: Bearer <Entra ID token>` for the scope
`https://cognitiveservices.azure.com/.default`
(https://learn.microsoft.com/azure/ai-foundry/openai/reference#authentication).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"


class CredentialsError(Exception):
    """No credentials could be obtained (for example the Entra ID token request failed)."""


class Credentials(Protocol):
    """Something that yields the provider's authentication headers."""

    async def headers(self) -> dict[str, str]:
        """The headers to send with the next request; raises `CredentialsError`."""
        ...

    async def aclose(self) -> None:
        """Release what obtaining the headers holds (an identity client's connections)."""
        ...


@dataclass(frozen=True, slots=True)
class BearerKey:
    """OpenAI: `Authorization: Bearer <key>`."""

    key: str

    async def headers(self) -> dict[str, str]:
        """The bearer header."""
        return {"Authorization": f"Bearer {self.key}"}

    async def aclose(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True, slots=True)
class AzureKey:
    """Azure OpenAI: `api-key: <key>`."""

    key: str

    async def headers(self) -> dict[str, str]:
        """The `api-key` header."""
        return {"api-key": self.key}

    async def aclose(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An access token and when it expires (seconds since the epoch, as Azure reports it)."""

    token: str
    expires_on: float


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """When a held token must be replaced: `margin_s` before it expires.

    Pure: the caller passes the time, so the rule is tested without a clock.
    """

    margin_s: float = 300.0

    def needs_refresh(self, held: IssuedToken | None, now: float) -> bool:
        """Whether `held` is missing or expires within the margin at `now` (epoch seconds)."""
        return held is None or now >= held.expires_on - self.margin_s


class TokenSource(Protocol):
    """Where access tokens come from."""

    async def fetch(self) -> IssuedToken:
        """A fresh token."""
        ...

    async def aclose(self) -> None:
        """Release the source's connections."""
        ...


Clock = Callable[[], float]


class EntraIdToken:
    """`Authorization: Bearer <token>` with a token from `source`, refreshed per `policy`.

    Concurrent callers share one refresh. A failed refresh raises `CredentialsError`, and the
    next call tries again.
    """

    def __init__(
        self, source: TokenSource, clock: Clock, policy: RefreshPolicy = RefreshPolicy()
    ) -> None:
        self._source = source
        self._clock = clock
        self._policy = policy
        self._held: IssuedToken | None = None
        self._lock = asyncio.Lock()

    async def headers(self) -> dict[str, str]:
        """The bearer header with a token that is not about to expire."""
        async with self._lock:
            if self._policy.needs_refresh(self._held, self._clock()):
                try:
                    self._held = await self._source.fetch()
                except CredentialsError:
                    raise
                except Exception as exc:
                    raise CredentialsError(
                        f"could not get a Microsoft Entra ID token: {type(exc).__name__}"
                    ) from None
            assert self._held is not None
            return {"Authorization": f"Bearer {self._held.token}"}

    async def aclose(self) -> None:
        """Close the token source."""
        await self._source.aclose()


class AzureIdentityTokens:
    """Tokens from `azure.identity.aio.DefaultAzureCredential` (the `callbridge[azure]` extra).

    Imported lazily so that the dependency is needed only when Entra ID auth is configured.
    Raises `CredentialsError` when `azure-identity` is not installed.
    See https://learn.microsoft.com/python/api/azure-identity/azure.identity.aio.defaultazurecredential
    """

    def __init__(self, scope: str = ENTRA_SCOPE) -> None:
        try:
            identity: Any = importlib.import_module("azure.identity.aio")
        except ImportError:
            raise CredentialsError(
                "Entra ID auth needs azure-identity: pip install 'callbridge[azure]'"
            ) from None
        self._scope = scope
        self._credential: Any = identity.DefaultAzureCredential()

    async def fetch(self) -> IssuedToken:
        """A token for the scope (azure-identity's `AccessToken`: `token`, `expires_on`)."""
        access = await self._credential.get_token(self._scope)
        return IssuedToken(str(access.token), float(access.expires_on))

    async def aclose(self) -> None:
        """Close the credential's HTTP sessions."""
        await self._credential.close()
