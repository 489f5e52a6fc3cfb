"""Who may call the API: long-lived API tokens, an ops token, and short-lived signed call tokens.

Call tokens let a backend hand a browser a credential that expires: `cbt1.<expiry>.<nonce>.<mac>`,
an HMAC-SHA256 over the first three parts with a server secret. The nonce ties the calls a
browser starts to that token, so it can control its own calls and nobody else's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

CALL_TOKEN_PREFIX = "cbt1"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: `api` (full access), `call` (its own calls), or `anonymous`.

    `token_id` is a call token's nonce; `expires_at` when its token stops being accepted, in
    Unix seconds (the `expires_at` that `POST /v1/call-tokens` answered), None for callers whose
    authority does not expire (API tokens, anonymous callers).
    """

    kind: str
    token_id: str | None = None
    expires_at: int | None = None


ANONYMOUS = Principal("anonymous")
API = Principal("api")


def _mac(secret: bytes, message: str) -> str:
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint_call_token(secret: bytes, ttl_s: int, now: float) -> tuple[str, int]:
    """A new call token and its expiry (Unix seconds)."""
    expiry = int(now) + ttl_s
    nonce = secrets.token_urlsafe(12)
    body = f"{CALL_TOKEN_PREFIX}.{expiry}.{nonce}"
    return f"{body}.{_mac(secret, body)}", expiry


def verify_call_token(secret: bytes, token: str, now: float) -> Principal | None:
    """The call principal a valid, unexpired token stands for (with the token's expiry);
    None otherwise."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != CALL_TOKEN_PREFIX or not parts[1].isdigit():
        return None
    body = ".".join(parts[:3])
    # Compared as bytes: compare_digest refuses str with non-ASCII characters.
    if not hmac.compare_digest(_mac(secret, body).encode(), parts[3].encode()):
        return None
    expiry = int(parts[1])
    if expiry <= now:
        return None
    return Principal("call", parts[2], expiry)


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def matches_any(token: str, candidates: Sequence[str]) -> bool:
    """Constant-time comparison against every candidate (no early exit on a match)."""
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(token.encode(), candidate.encode())
    return found


def may_control(principal: Principal, started_by: str | None) -> bool:
    """API tokens control every call; a call token only the calls it started."""
    return principal.kind != "call" or principal.token_id == started_by
