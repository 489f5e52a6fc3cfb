"""Whether a request's client has gone, asked without waiting, and whether its answer was lost.

Starlette's `Request.is_disconnected()` asks the server for its next message inside an anyio
cancel scope cancelled at once; cancelling that scope formats the current task's repr for its
reason, which costs more than the rest of a call start's answer. Here the server's `receive()`
is stepped once by hand instead: a message it has ready is read, and one it would wait for is
abandoned by closing the coroutine, as the cancellation would.
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.types import Scope

ANSWER_UNSENT: Final = "callbridge.answer_unsent"
"""Scope extension a server may offer: `{"unsent": f}`, where `f()` tells, once the app has
sent its response, whether the connection was lost while writing was paused, before the
response was written (uvicorn then drops it without a word). A response already in asyncio's
write buffer when the connection is lost is not seen. `callbridge serve` offers it
(`service.api.http_protocol`)."""


def client_gone(request: Request) -> bool:
    """True when the server reports `http.disconnect` for `request` without waiting.

    Only for a request whose body has been read: a body message ready instead is consumed and
    dropped (as with `Request.is_disconnected()`).
    """
    step = request.receive().__await__()
    try:
        step.send(None)
    except StopIteration as done:
        message = done.value
    else:
        step.close()
        return False
    return bool(message.get("type") == "http.disconnect")


def answer_unsent(scope: Scope) -> bool:
    """True when the server offers `ANSWER_UNSENT` and says the response just sent for `scope`
    was never written; False when it was, or when the server cannot tell."""
    unsent = scope.get("extensions", {}).get(ANSWER_UNSENT, {}).get("unsent")
    return unsent is not None and bool(unsent())
