"""Request guards: authentication, ops access and call-start rate limiting.

Each kind of token a guard takes is named as the OpenAPI document's security scheme for it
(`CALLER_TOKEN`, `OPS_TOKEN`); `enforced_schemes` says which of them the guards enforce with
given settings, so the document declares exactly those.
"""

from __future__ import annotations

import time
from typing import Final

from fastapi import Request

from service.api.problems import Problem
from service.auth import ANONYMOUS, API, Principal, bearer, matches_any, verify_call_token
from service.settings import Settings

CALLER_TOKEN: Final = "callerToken"
"""The bearer token `authenticate` takes: an API token or a call token."""
OPS_TOKEN: Final = "opsToken"
"""The bearer token `require_ops` takes: the ops token."""

BEARER_CHALLENGE: Final = 'Bearer realm="callbridge"'
"""The `WWW-Authenticate` of a 401 for a request without a bearer token (RFC 6750 §3: no error
code); one whose token is not valid adds `INVALID_TOKEN` (§3.1)."""
INVALID_TOKEN: Final = 'error="invalid_token"'
_CHALLENGE = {"WWW-Authenticate": BEARER_CHALLENGE}
_INVALID_TOKEN = {"WWW-Authenticate": f"{BEARER_CHALLENGE}, {INVALID_TOKEN}"}


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, kind="unauthorized", headers=_CHALLENGE)


def _invalid_token(detail: str) -> Problem:
    return Problem(401, detail, kind="unauthorized", headers=_INVALID_TOKEN)


def callers_need_token(settings: Settings) -> bool:
    """Whether `authenticate` asks for a token: API tokens or a call-token secret are set."""
    return bool(settings.api_token_list()) or settings.call_token_secret is not None


def ops_need_token(settings: Settings) -> bool:
    """Whether `require_ops` asks for a token: the ops token is set."""
    return settings.ops_token is not None


def enforced_schemes(settings: Settings) -> frozenset[str]:
    """The tokens (`CALLER_TOKEN`, `OPS_TOKEN`) the guards ask for with `settings`."""
    needed = {CALLER_TOKEN: callers_need_token(settings), OPS_TOKEN: ops_need_token(settings)}
    return frozenset(name for name, need in needed.items() if need)


async def authenticate(request: Request) -> Principal:
    """The caller of a call endpoint; 401 when auth is configured and the token is wrong."""
    # The guards are coroutines only so that FastAPI runs them on the event loop: a plain
    # function dependency is sent to a worker thread, which costs more than the check itself.
    settings: Settings = request.app.state.settings
    if not callers_need_token(settings):
        return ANONYMOUS
    token = bearer(request.headers.get("authorization"))
    if token is None:
        raise _unauthorized("a bearer token is required")
    if matches_any(token, settings.api_token_list()):
        return API
    secret = settings.call_token_secret
    if secret is not None:
        principal = verify_call_token(secret.get_secret_value().encode(), token, time.time())
        if principal is not None:
            return principal
    raise _invalid_token("the bearer token is not valid")


async def caller_if_allowed(request: Request) -> Principal | None:
    """The caller `authenticate` would let through (one who may start calls), or None instead
    of refusing one it would not: for answers that give such callers more."""
    try:
        return await authenticate(request)
    except Problem:
        return None


async def require_api_token(request: Request) -> None:
    """Only a long-lived API token will do (minting call tokens)."""
    if (await authenticate(request)).kind == "call":
        raise Problem(403, "a call token cannot mint call tokens", kind="forbidden")


async def require_ops(request: Request) -> None:
    """The ops token, when one is configured."""
    settings: Settings = request.app.state.settings
    if settings.ops_token is None:
        return
    token = bearer(request.headers.get("authorization"))
    if token is None:
        raise _unauthorized("the ops token is required")
    if not matches_any(token, [settings.ops_token.get_secret_value()]):
        raise _invalid_token("the bearer token is not the ops token")


async def check_rate(request: Request) -> None:
    """429 with Retry-After when this client starts calls too fast (across the cluster)."""
    limiter = request.app.state.rate_limiter
    client = request.client.host if request.client else "unknown"
    wait = await limiter.take(client)
    if wait > 0:
        raise Problem(
            429,
            "too many call starts from this client",
            kind="rate-limited",
            headers={"Retry-After": str(max(1, round(wait + 0.5)))},
        )
