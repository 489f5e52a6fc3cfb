"""The OpenAI error object, shared by HTTP error bodies and `error` server events."""

from __future__ import annotations

from typing import Any


def error_object(
    message: str,
    *,
    code: str | None,
    param: str | None = None,
    type: str = "invalid_request_error",
) -> dict[str, Any]:
    """`{"message", "type", "code", "param"}` as the OpenAI API shapes it."""
    return {"message": message, "type": type, "code": code, "param": param}


def error_body(
    message: str,
    *,
    code: str | None,
    param: str | None = None,
    type: str = "invalid_request_error",
) -> dict[str, Any]:
    """An HTTP error response body: `{"error": {...}}`."""
    return {"error": error_object(message, code=code, param=param, type=type)}
