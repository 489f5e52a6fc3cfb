"""Whether a request's client has gone, asked without waiting.

Starlette's `Request.is_disconnected()` asks the server for its next message inside an anyio
cancel scope cancelled at once; cancelling that scope formats the current task's repr for its
reason, which costs more than the rest of a call start's answer. Here the server's `receive()`
is stepped once by hand instead: a message it has ready is read, and one it would wait for is
abandoned by closing the coroutine, as the cancellation would.
"""

from __future__ import annotations

from starlette.requests import Request


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
