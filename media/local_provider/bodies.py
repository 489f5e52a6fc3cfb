"""Request bodies the provider reads: call offers, JSON objects, client-secret requests.

Each reader raises ProviderError (4xx, OpenAI error body) for a body it cannot use.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from media.local_provider.client_secrets import DEFAULT_TTL_S, MAX_TTL_S, MIN_TTL_S
from media.local_provider.errors import ProviderError
from media.local_provider.server_events import JsonObject
from media.local_provider.session import find_session_problem

MAX_JSON_BYTES = 64 * 1024


async def read_offer(request: Request) -> tuple[str, dict[str, Any] | None]:
    """The SDP offer and the optional session object of a call-creation request."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/sdp":
        return (await request.body()).decode("utf-8", "replace"), None
    if media_type != "multipart/form-data":
        raise ProviderError(
            415,
            "Use Content-Type application/sdp or multipart/form-data.",
            code="unsupported_content_type",
        )
    async with request.form() as form:
        offer = await _form_text(form.get("sdp"))
        raw_session = await _form_text(form.get("session"))
    if offer is None:
        raise ProviderError(
            400,
            "Missing required parameter: 'sdp'.",
            code="missing_required_parameter",
            param="sdp",
        )
    if raw_session is None:
        return offer, None
    try:
        session = json.loads(raw_session)
    except (ValueError, RecursionError) as exc:
        raise ProviderError(
            400, "The 'session' part is not valid JSON.", code="invalid_json", param="session"
        ) from exc
    problem = find_session_problem(session)
    if problem is not None:
        raise ProviderError(400, problem.message, code=problem.code, param=problem.param)
    return offer, session


async def read_json(request: Request) -> JsonObject:
    """A JSON object body of at most MAX_JSON_BYTES."""
    declared = request.headers.get("content-length", "")
    if (declared.isdigit() and int(declared) > MAX_JSON_BYTES) or len(
        await request.body()
    ) > MAX_JSON_BYTES:
        raise ProviderError(413, "The request body is too large.", code="request_too_large")
    try:
        body = await request.json()
    except (ValueError, RecursionError) as exc:
        raise ProviderError(
            400, "We could not parse the JSON body of your request.", code="invalid_json"
        ) from exc
    if not isinstance(body, dict):
        raise ProviderError(400, "The request body must be a JSON object.", code="invalid_type")
    return body


def client_secret_request(body: JsonObject) -> tuple[JsonObject, int]:
    """The session and lifetime (seconds) a `POST /v1/realtime/client_secrets` asks for.

    https://platform.openai.com/docs/api-reference/realtime-sessions/create-realtime-client-secret
    """
    session = body.get("session", {"type": "realtime"})
    problem = find_session_problem(session)
    if problem is not None:
        raise ProviderError(400, problem.message, code=problem.code, param=problem.param)
    expires_after = body.get("expires_after") or {}
    ttl_s = expires_after.get("seconds", DEFAULT_TTL_S) if isinstance(expires_after, dict) else None
    if (
        not isinstance(ttl_s, int)
        or isinstance(ttl_s, bool)
        or not MIN_TTL_S <= ttl_s <= MAX_TTL_S
        or expires_after.get("anchor", "created_at") != "created_at"
    ):
        raise ProviderError(
            400,
            f"Invalid 'expires_after': seconds must be {MIN_TTL_S} to {MAX_TTL_S}, "
            "anchor 'created_at'.",
            code="invalid_value",
            param="expires_after",
        )
    return session, ttl_s


async def _form_text(value: UploadFile | str | None) -> str | None:
    if isinstance(value, UploadFile):
        return (await value.read()).decode("utf-8", "replace")
    return value
