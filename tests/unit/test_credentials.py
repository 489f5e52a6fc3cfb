"""Provider credentials: which headers each kind sends, and when an Entra ID token is refreshed.

The refresh rule is pure (time passed in); `EntraIdToken` is driven with a fake clock and a
token source standing in for azure-identity.
"""

from __future__ import annotations

import asyncio

import pytest

from signaling.credentials import (
    AzureIdentityTokens,
    AzureKey,
    BearerKey,
    CredentialsError,
    EntraIdToken,
    IssuedToken,
    RefreshPolicy,
)


def test_openai_key_is_a_bearer_header() -> None:
    assert asyncio.run(BearerKey("sk-1").headers()) == {"Authorization": "Bearer sk-1"}


def test_azure_key_is_an_api_key_header() -> None:
    assert asyncio.run(AzureKey("az-1").headers()) == {"api-key": "az-1"}


def test_no_token_needs_a_refresh() -> None:
    assert RefreshPolicy(margin_s=300).needs_refresh(None, now=0.0)


def test_a_token_well_before_expiry_is_kept() -> None:
    held = IssuedToken("t", expires_on=10_000.0)
    assert not RefreshPolicy(margin_s=300).needs_refresh(held, now=9_699.0)


def test_a_token_within_the_margin_of_expiry_is_refreshed() -> None:
    held = IssuedToken("t", expires_on=10_000.0)
    assert RefreshPolicy(margin_s=300).needs_refresh(held, now=9_700.0)


def test_an_expired_token_is_refreshed() -> None:
    held = IssuedToken("t", expires_on=10_000.0)
    assert RefreshPolicy(margin_s=300).needs_refresh(held, now=20_000.0)


class _Tokens:
    """Issues `token-1`, `token-2`, … each valid for an hour from the fake clock's time."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.issued = 0

    async def fetch(self) -> IssuedToken:
        self.issued += 1
        return IssuedToken(f"token-{self.issued}", self.clock[0] + 3600.0)

    async def aclose(self) -> None:
        pass


def test_entra_token_is_reused_until_it_nears_expiry_then_replaced() -> None:
    now = [1_000.0]
    tokens = _Tokens(now)
    credentials = EntraIdToken(tokens, lambda: now[0], RefreshPolicy(margin_s=300))

    async def run() -> list[dict[str, str]]:
        seen = [await credentials.headers()]
        now[0] += 3000.0  # 600 s left: still good
        seen.append(await credentials.headers())
        now[0] += 301.0  # 299 s left: inside the margin
        seen.append(await credentials.headers())
        return seen

    seen = asyncio.run(run())
    assert [h["Authorization"] for h in seen] == [
        "Bearer token-1",
        "Bearer token-1",
        "Bearer token-2",
    ]


def test_concurrent_requests_share_one_token_refresh() -> None:
    now = [0.0]
    tokens = _Tokens(now)
    credentials = EntraIdToken(tokens, lambda: now[0])

    async def run() -> None:
        await asyncio.gather(*(credentials.headers() for _ in range(5)))

    asyncio.run(run())
    assert tokens.issued == 1


def test_a_failing_token_source_raises_credentials_error_and_is_retried() -> None:
    class Flaky:
        attempts = 0

        async def fetch(self) -> IssuedToken:
            self.attempts += 1
            if self.attempts == 1:
                raise OSError("identity endpoint down")
            return IssuedToken("ok", 10_000.0)

        async def aclose(self) -> None:
            pass

    credentials = EntraIdToken(Flaky(), lambda: 0.0)
    with pytest.raises(CredentialsError):
        asyncio.run(credentials.headers())
    assert asyncio.run(credentials.headers()) == {"Authorization": "Bearer ok"}


def test_entra_id_without_azure_identity_installed_says_how_to_install_it() -> None:
    try:
        import azure.identity.aio  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("azure-identity is installed")
    with pytest.raises(CredentialsError, match=r"callbridge\[azure\]"):
        AzureIdentityTokens()


def test_closing_entra_credentials_closes_the_token_source() -> None:
    class Source:
        closed = False

        async def fetch(self) -> IssuedToken:
            return IssuedToken("t", 10_000.0)

        async def aclose(self) -> None:
            self.closed = True

    source = Source()
    asyncio.run(EntraIdToken(source, lambda: 0.0).aclose())
    assert source.closed
