"""What the OpenAPI document says each operation answers: statuses, content types, headers and
the JSON schemas of the bodies (`service.api.models`, made into the document's components only
when it is first asked for).

Routes declare their answers with `answers(...)` and the token they take with `secured_by(...)`;
`install_openapi` removes what the framework would add that we never answer (its 422
`HTTPValidationError`, since every error here is `application/problem+json`, RFC 9457), adds the
`HEAD` the method routing answers beside every `GET` (RFC 9110 §9.3.2), keeps a route's
security requirement (with its 401) only when the settings make the guards enforce it (without
tokens configured, the document declares no security scheme, as none is asked for), and, with
CORS configured, adds to every `OPTIONS` the 400 of a CORS preflight refused.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from service.api.guards import BEARER_CHALLENGE, CALLER_TOKEN, INVALID_TOKEN, OPS_TOKEN
from service.api.models import ANSWER_MODELS, ProblemDetails
from service.api.problems import PROBLEM_JSON, TITLES
from service.media_types import JSON_TYPE

# A call-start offer the service accepts (audio plus the events data channel), for the document's
# examples and for clients that generate requests from it.
EXAMPLE_OFFER = "\r\n".join(
    (
        "v=0",
        "o=- 4004613311 4004613311 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 0.0.0.0",
        "a=mid:0",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:abcdefghijklmnopqrstuv",
        "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
        "a=setup:actpass",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=mid:1",
        "a=sctp-port:5000",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:abcdefghijklmnopqrstuv",
        "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
        "a=setup:actpass",
        "",
    )
)

SDP_SCHEMA: dict[str, Any] = {
    "type": "string",
    "format": "sdp",
    "description": "An SDP offer (RFC 8866) with a live audio section and the transport "
    "attributes JSEP requires (RFC 9429).",
    "minLength": 1,
    "maxLength": 65536,
    "example": EXAMPLE_OFFER,
}

_STRING = {"type": "string"}
HEADERS: dict[str, dict[str, Any]] = {
    "Allow": {
        "description": "Methods this resource answers (RFC 9110 §10.2.1).",
        "schema": _STRING,
    },
    "Accept-Post": {"description": "Media types a POST here takes (RFC 9725).", "schema": _STRING},
    "Retry-After": {
        "description": "Seconds to wait before retrying (RFC 9110 §10.2.3).",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "WWW-Authenticate": {
        "description": f"The bearer challenge (RFC 6750 §3): `{BEARER_CHALLENGE}`, with "
        f"`{INVALID_TOKEN}` when the request carried a token that is not valid (§3.1).",
        "required": True,
        "schema": _STRING,
    },
    "Location": {"description": "The call's resource (RFC 9725 §4.2).", "schema": _STRING},
    "ETag": {"description": "The WHIP session's entity tag (RFC 9725 §4.3).", "schema": _STRING},
    "Link": {
        "description": 'ICE servers, `rel="ice-server"` (RFC 9725 §4.6); TURN links carry '
        "`username`, `credential` and `credential-type` for a caller allowed to start calls.",
        "schema": _STRING,
    },
    "Cache-Control": {
        "description": "`no-store` on an answer holding a credential (RFC 9111 §5.2.2.5).",
        "schema": _STRING,
    },
    "Vary": {
        "description": "What else than the URL the answer depends on (RFC 9110 §12.5.5).",
        "schema": _STRING,
    },
}
# Headers a problem with this status may carry. (A 401 for a missing or invalid bearer token
# carries `WWW-Authenticate`; `install_openapi` declares it where a token is asked for.)
_PROBLEM_HEADERS = {
    405: ("Allow",),
    415: ("Accept-Post",),
    429: ("Retry-After",),
    503: ("Retry-After",),
}
_COMPONENTS = "#/components/schemas/"


def _component(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"{_COMPONENTS}{model.__name__}"}


_PROBLEM_SCHEMA = _component(ProblemDetails)


def headers(*names: str) -> dict[str, Any]:
    """Response header objects for `names` (none is promised on every answer)."""
    return {name: HEADERS[name] for name in names}


def answer(
    description: str,
    model: type[BaseModel],
    *,
    media_type: str = JSON_TYPE,
    carrying: Sequence[str] = (),
) -> dict[str, Any]:
    """One successful JSON answer for `answers(ok=...)`: its `description`, its body as
    `media_type` described by `model` (one of `ANSWER_MODELS`, referred to by name), and the
    headers it is `carrying`."""
    return {
        "description": description,
        "content": {media_type: {"schema": _component(model)}},
        "headers": headers(*carrying),
    }


def answers(
    *problems: int, ok: dict[int, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: its successful answers `ok` plus problem+json for `problems`
    (`ProblemDetails`, RFC 9457)."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status, ok_answer in (ok or {}).items():
        documented[status] = ok_answer
    for status in problems:
        documented[status] = {
            "description": TITLES[status],
            "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}},
            "headers": headers(*_PROBLEM_HEADERS.get(status, ())),
        }
    return documented


_BEARER = "`Authorization: Bearer <token>` (RFC 6750 §2.1)"
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    CALLER_TOKEN: {
        "type": "http",
        "scheme": "bearer",
        "description": f"{_BEARER} with an API token (`CALLBRIDGE_API_TOKENS`), which starts and "
        "controls every call, or a call token minted by `POST /v1/call-tokens`, which starts "
        "calls and controls only those it started (another call is 404) and cannot mint call "
        "tokens (403). Without a token, or with one that is not valid: 401 with a "
        "`WWW-Authenticate` challenge (RFC 6750 §3).",
    },
    OPS_TOKEN: {
        "type": "http",
        "scheme": "bearer",
        "description": f"{_BEARER} with the operator token (`CALLBRIDGE_OPS_TOKEN`); API and "
        "call tokens are not taken. Without it: 401 with a `WWW-Authenticate` challenge "
        "(RFC 6750 §3).",
    },
}
"""The document's security schemes by name, each declared only while it is enforced."""

_UNAUTHORIZED = {
    "description": "No bearer token, or one that is not valid here (RFC 6750 §3.1).",
    "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}},
    "headers": headers("WWW-Authenticate"),
}


def secured_by(scheme: str, *, optional: bool = False) -> dict[str, Any]:
    """A route's `openapi_extra=` for the bearer token `scheme` (`CALLER_TOKEN` or
    `OPS_TOKEN`) it asks for; `optional` when it also answers without one, refusing none (the
    empty requirement `{}`, OpenAPI 3.1 §4.8.10, an Operation's `security`)."""
    requirement: dict[str, list[str]] = {scheme: []}
    return {"security": [{}, requirement] if optional else [requirement]}


def _declare_security(operation: dict[str, Any], enforced: Collection[str]) -> None:
    """Keep `operation`'s security requirements whose schemes are all `enforced`; with one
    that is required, the 401 a missing or invalid token gets. None left: no declaration."""
    requirements = operation.pop("security", None)
    if requirements is None:
        return
    kept = [req for req in requirements if all(name in enforced for name in req)]
    if not any(kept):
        return
    operation["security"] = kept
    if {} not in kept:
        responses = {**operation["responses"], "401": _UNAUTHORIZED}
        operation["responses"] = dict(sorted(responses.items()))


def _head_of(get: dict[str, Any]) -> dict[str, Any]:
    """The `HEAD` operation beside a `GET`: the same parameters and answers, without content."""
    head = {key: value for key, value in get.items() if key not in ("operationId", "responses")}
    operation_id = get.get("operationId")
    if operation_id is not None:
        # FastAPI names an operation `<name>_<path>_get` unless the route names it.
        head["operationId"] = (
            f"{operation_id.removesuffix('_get')}_head"
            if operation_id.endswith("_get")
            else f"{operation_id}Head"
        )
    head["summary"] = f"{get.get('summary', 'GET')} (headers only)"
    head["description"] = "The header section `GET` answers, without content (RFC 9110 §9.3.2)."
    head["responses"] = {
        status: {key: value for key, value in answer.items() if key not in ("content", "links")}
        for status, answer in get["responses"].items()
    }
    return head


_PREFLIGHT_REFUSED = {
    **answers(400)[400],
    "description": "A CORS preflight refused: its origin (`CALLBRIDGE_CORS_ORIGINS`), the method "
    "or a header it asks for is not allowed; the detail says which.",
}


def install_openapi(app: FastAPI, enforced: Collection[str], *, cors: bool) -> None:
    """Serve the document as the routes declare it, without the framework's own 422, with the
    security schemes (names of `SECURITY_SCHEMES`) that are `enforced` and only those, and
    with the refused preflight's 400 on every `OPTIONS` when `cors` preflights are answered."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    responses = operation.get("responses", {})
                    if responses.get("422", {}).get("description") == "Validation Error":
                        del responses["422"]
                    _declare_security(operation, enforced)
                if "get" in operations and "head" not in operations:
                    operations["head"] = _head_of(operations["get"])
                if cors and "options" in operations:
                    responses = {**operations["options"]["responses"], "400": _PREFLIGHT_REFUSED}
                    operations["options"]["responses"] = dict(sorted(responses.items()))
            components = schema.setdefault("components", {})
            if enforced:
                components["securitySchemes"] = {
                    name: SECURITY_SCHEMES[name] for name in sorted(enforced)
                }
            schemas = components.setdefault("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            _, answered = models_json_schema(
                [(model, "serialization") for model in ANSWER_MODELS],
                ref_template=_COMPONENTS + "{model}",
            )
            schemas.update(answered["$defs"])
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
