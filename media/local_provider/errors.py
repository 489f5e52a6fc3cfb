"""The OpenAI error object, shared by HTTP error bodies and `error` server events, and the
provider's one HTTP error type."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


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


class ProviderError(Exception):
    """An HTTP error the provider answers with an OpenAI error body (and `status`)."""

    def __init__(
        self, status: int, message: str, *, code: str | None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(message, code=code, param=param)

    def response(self) -> JSONResponse:
        """The error as an HTTP response."""
        return JSONResponse(self.body, status_code=self.status)


def invalid_api_key() -> ProviderError:
    """401 `invalid_api_key`: no key, or not one this provider accepts here."""
    return ProviderError(401, "Incorrect or missing API key provided.", code="invalid_api_key")


def call_id_not_found(call_id: str) -> ProviderError:
    """404 `call_id_not_found`: the call is unknown or has ended."""
    return ProviderError(
        404,
        # The real API's wording (reported in https://github.com/openai/codex/issues/35094).
        f"No session found for the provided call_id ({call_id!r}: unknown or ended).",
        code="call_id_not_found",
        param="call_id",
    )
