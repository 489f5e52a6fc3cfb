"""RFC 9457 problem details: every error we answer is `application/problem+json`."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.calls.errors import (
    CallAlreadyEnded,
    CallError,
    CallGone,
    CapacityExceeded,
    Draining,
    InvalidCommand,
    NotAPhoneCall,
    OwnerUnreachable,
    TransferRefused,
    UnknownCall,
)

PROBLEM_JSON = "application/problem+json"
# nginx's status for a request whose client left before the answer; only logs ever see it.
CLIENT_CLOSED_REQUEST = 499

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    410: "Gone",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Content Too Large",
    414: "URI Too Long",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    428: "Precondition Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}


class Problem(Exception):
    """Raise to answer with a problem+json body."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.headers = headers or {}
        self.extra = extra


def call_problem(exc: CallError) -> Problem:
    """The problem a call-layer refusal answers."""
    match exc:
        case UnknownCall():
            return Problem(404, "no such call", kind="unknown-call")
        case CallAlreadyEnded():
            return Problem(409, "the call has ended", kind="call-ended")
        case CallGone():
            return Problem(410, "the call was deleted", kind="call-gone")
        case InvalidCommand():
            return Problem(422, str(exc), kind="invalid-request")
        case CapacityExceeded():
            return Problem(503, str(exc), kind="at-capacity", headers={"Retry-After": "5"})
        case Draining():
            return Problem(503, str(exc), kind="draining", headers={"Retry-After": "10"})
        case OwnerUnreachable():
            return Problem(503, str(exc), kind="owner-unreachable", headers={"Retry-After": "1"})
        case NotAPhoneCall():
            return Problem(409, str(exc), kind="not-a-phone-call")
        case TransferRefused(provider_status=status):
            return Problem(502, str(exc), kind="provider-error", provider_status=status)
    return Problem(503, str(exc), kind="call-error", headers={"Retry-After": "1"})


# What a path segment may hold unescaped besides unreserved characters (RFC 3986 §3.3), and "/".
_PATH_CHARACTERS: Final = "/!$&'()*+,;=:@"


def problem_response(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": f"https://callbridge.dev/problems/{kind}" if kind else "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        # A URI reference (RFC 9457 §3.1.5): the decoded path may hold a space or U+FFFD.
        body["instance"] = quote(instance, safe=_PATH_CHARACTERS)
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error, ours or the framework's, a problem+json answer."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(
            exc.status,
            exc.detail,
            kind=exc.kind,
            headers=exc.headers,
            instance=request.url.path,
            **exc.extra,
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(
            exc.status_code,
            str(exc.detail),
            headers=dict(exc.headers or {}),
            instance=request.url.path,
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        return problem_response(
            422,
            "the request does not have the expected shape",
            kind="invalid-request",
            instance=request.url.path,
            errors=errors,
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(500, "internal error", instance=request.url.path)

    async def on_call_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, CallError)
        return await on_problem(request, call_problem(exc))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(CallError, on_call_error)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unexpected)
