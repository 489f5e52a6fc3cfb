"""Call tokens: what a verified token tells about its caller."""

from __future__ import annotations

from service.auth import mint_call_token, verify_call_token

SECRET = b"call-token-secret-of-the-unit-tests"
NOW = 1_700_000_000.5


def test_a_verified_call_token_carries_the_expiry_it_was_minted_with() -> None:
    token, expiry = mint_call_token(SECRET, 300, NOW)
    principal = verify_call_token(SECRET, token, NOW + 1)
    assert principal is not None
    assert principal.expires_at == expiry == 1_700_000_300
