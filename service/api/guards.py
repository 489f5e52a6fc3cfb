"""Request guards: authentication, ops access and call-start rate limiting."""

from __future__ import annotations

import time

from fastapi import Request

from service.api.problems import Problem
from service.auth import ANONYMOUS, API, Principal, bearer, matches_any, verify_call_token
from service.settings import Settings

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="callbridge"'}


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, kind="unauthorized", headers=_CHALLENGE)


async def authenticate(request: Request) -> Principal:
    """The caller of a call endpoint; 401 when auth is configured and the token is wrong."""
    # The guards are coroutines only so that FastAPI runs them on the event loop: a plain
    # function dependency is sent to a worker thread, which costs more than the check itself.
    settings: Settings = request.app.state.settings
    tokens = settings.api_token_list()
    secret = settings.call_token_secret
    if not tokens and secret is None:
        return ANONYMOUS
    token = bearer(request.headers.get("authorization"))
    if token is None:
        raise _unauthorized("a bearer token is required")
    if matches_any(token, tokens):
        return API
    if secret is not None:
        principal = verify_call_token(secret.get_secret_value().encode(), token, time.time())
        if principal is not None:
            return principal
    raise _unauthorized("the bearer token is not valid")


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
    if token is None or not matches_any(token, [settings.ops_token.get_secret_value()]):
        raise _unauthorized("the ops token is required")


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
