"""The call API: start (WHIP-style), inspect, control, follow and end calls."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from service.api.bodies import parse_form, read_limited
from service.api.models import MessageIn, SessionOverrides, StartOverrides
from service.api.problems import Problem
from service.calls.manager import CallManager, CapacityExceeded, Draining
from service.calls.session import CallSession
from service.metrics import CALL_STARTS, PROVIDER_ERRORS
from signaling.ids import CallId, is_valid_call_id
from signaling.provider import (
    ProviderBadResponse,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from signaling.realtime import SessionConfig
from signaling.sdp import OfferError, OfferErrorKind, check_offer

router = APIRouter(prefix="/v1/calls", tags=["calls"])

_OFFER_STATUS = {
    OfferErrorKind.NOT_TEXT: 400,
    OfferErrorKind.MALFORMED: 400,
    OfferErrorKind.TOO_LARGE: 413,
    OfferErrorKind.UNACCEPTABLE: 422,
}


def _manager(request: Request) -> CallManager:
    manager: CallManager = request.app.state.manager
    return manager


def _validation_problem(exc: ValidationError, what: str) -> Problem:
    errors = [
        {"loc": [str(p) for p in e["loc"]], "msg": e["msg"]} for e in exc.errors(include_url=False)
    ]
    return Problem(422, f"invalid {what}", kind="invalid-request", errors=errors)


def _parse_json(body: bytes, what: str) -> object:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Problem(400, f"{what} is not valid JSON: {exc}", kind="bad-json") from None


async def _read_offer(request: Request) -> tuple[bytes, StartOverrides]:
    settings = request.app.state.settings
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == "application/sdp":
        return await read_limited(request, settings.max_sdp_bytes), StartOverrides()
    if media_type == "multipart/form-data":
        body = await read_limited(request, settings.max_sdp_bytes + settings.max_json_bytes + 4096)
        parts = parse_form(content_type, body)
        if "sdp" not in parts:
            raise Problem(400, "multipart body has no 'sdp' part", kind="bad-multipart")
        unknown = sorted(set(parts) - {"sdp", "session"})
        if unknown:
            raise Problem(400, f"unexpected multipart parts: {unknown}", kind="bad-multipart")
        overrides = StartOverrides()
        if "session" in parts:
            if len(parts["session"]) > settings.max_json_bytes:
                raise Problem(413, "session part is too large", kind="too-large")
            try:
                overrides = StartOverrides.model_validate(_parse_json(parts["session"], "session"))
            except ValidationError as exc:
                raise _validation_problem(exc, "session overrides") from None
        if len(parts["sdp"]) > settings.max_sdp_bytes:
            raise Problem(413, "SDP offer is too large", kind="too-large")
        return parts["sdp"], overrides
    raise Problem(
        415,
        f"Content-Type must be application/sdp or multipart/form-data, not {media_type or 'none'}",
        kind="unsupported-media-type",
        headers={"Accept-Post": "application/sdp, multipart/form-data"},
    )


def _apply(config: SessionConfig, overrides: SessionOverrides) -> SessionConfig:
    changes = overrides.model_dump(exclude_none=True)
    return replace(config, **changes)


def _provider_problem(exc: ProviderError) -> Problem:
    PROVIDER_ERRORS.labels(status=str(exc.status or type(exc).__name__)).inc()
    if isinstance(exc, ProviderTimeout):
        return Problem(504, "the provider did not answer in time", kind="provider-timeout")
    if isinstance(exc, ProviderUnavailable):
        return Problem(502, f"the provider is unreachable: {exc.message}", kind="provider-down")
    if isinstance(exc, ProviderBadResponse):
        return Problem(502, f"the provider's answer is unusable: {exc.message}", kind="bad-answer")
    return Problem(
        502,
        f"the provider refused the call: {exc.message}",
        kind="provider-error",
        provider_status=exc.status,
        provider_code=exc.code,
    )


@router.post("", status_code=201, response_class=Response)
async def start_call(request: Request) -> Response:
    """Start a call: the body is an SDP offer; the answer is the provider's SDP answer."""
    manager = _manager(request)
    raw, overrides = await _read_offer(request)
    try:
        offer = check_offer(raw)
    except OfferError as exc:
        CALL_STARTS.labels(outcome="bad_offer").inc()
        raise Problem(_OFFER_STATUS[exc.kind], exc.reason, kind="bad-offer") from None
    config = _apply(manager.default_config(), overrides)
    try:
        call, answer = await manager.start(offer, config)
    except CapacityExceeded as exc:
        raise Problem(503, str(exc), kind="at-capacity", headers={"Retry-After": "5"}) from None
    except Draining as exc:
        raise Problem(503, str(exc), kind="draining", headers={"Retry-After": "10"}) from None
    except ProviderError as exc:
        raise _provider_problem(exc) from None
    return Response(
        answer,
        status_code=201,
        media_type="application/sdp",
        headers={"Location": f"/v1/calls/{call.call_id}", "ETag": f'"{call.call_id}"'},
    )


@router.get("")
async def list_calls(request: Request) -> JSONResponse:
    """Live calls on this instance."""
    calls = _manager(request).active()
    return JSONResponse({"calls": [c.to_json(full=False) for c in calls]})


def _known_call_id(call_id: str) -> CallId:
    if not is_valid_call_id(call_id):
        raise Problem(404, "no such call", kind="unknown-call")
    return CallId(call_id)


def _live_session(request: Request, call_id: str) -> CallSession:
    manager = _manager(request)
    cid = _known_call_id(call_id)
    session = manager.session(cid)
    if session is None:
        if manager.get(cid) is not None:
            raise Problem(409, "the call has ended", kind="call-ended")
        raise Problem(404, "no such call", kind="unknown-call")
    return session


@router.get("/{call_id}")
async def get_call(call_id: str, request: Request) -> JSONResponse:
    """One call's record, with transcript and handoffs."""
    call = _manager(request).get(_known_call_id(call_id))
    if call is None:
        raise Problem(404, "no such call", kind="unknown-call")
    return JSONResponse(call.to_json(), headers={"ETag": f'"{call.call_id}"'})


@router.delete("/{call_id}")
async def end_call(call_id: str, request: Request) -> JSONResponse:
    """Hang up: ends the call at the provider."""
    call = await _manager(request).hangup(_known_call_id(call_id))
    if call is None:
        raise Problem(404, "no such call", kind="unknown-call")
    return JSONResponse(call.to_json(full=False))


@router.post("/{call_id}/messages", status_code=202)
async def post_message(call_id: str, request: Request) -> JSONResponse:
    """Inject user text into the live call."""
    settings = request.app.state.settings
    session = _live_session(request, call_id)
    body = await read_limited(request, settings.max_json_bytes)
    try:
        message = MessageIn.model_validate(_parse_json(body, "body"))
    except ValidationError as exc:
        raise _validation_problem(exc, "message") from None
    if len(message.text) > settings.max_message_chars:
        raise Problem(
            413, f"text exceeds {settings.max_message_chars} characters", kind="too-large"
        )
    await session.inject_text(message.text)
    return JSONResponse({"status": "sent"}, status_code=202)


@router.post("/{call_id}/session")
async def post_session(call_id: str, request: Request) -> JSONResponse:
    """Change instructions, voice or output modality on the live call."""
    settings = request.app.state.settings
    session = _live_session(request, call_id)
    body = await read_limited(request, settings.max_json_bytes)
    try:
        overrides = SessionOverrides.model_validate(_parse_json(body, "body"))
    except ValidationError as exc:
        raise _validation_problem(exc, "session update") from None
    await session.update_session(_apply(session.call.config, overrides))
    return JSONResponse(session.call.to_json(full=False)["session"])


@router.get("/{call_id}/events")
async def call_events(call_id: str, request: Request) -> StreamingResponse:
    """Server-Sent Events: transcript, handoffs and call state, with replay of recent history."""
    manager = _manager(request)
    session = manager.session(_known_call_id(call_id))
    if session is None:
        raise Problem(404, "no such live call", kind="unknown-call")
    last = request.headers.get("last-event-id", "0")
    after = int(last) if last.isdigit() else 0
    stream = session.stream

    async def frames() -> AsyncIterator[bytes]:
        yield b": stream open\n\n"
        async for event in stream.subscribe(after, keepalive_s=15.0):
            if event is None:
                yield b": keepalive\n\n"
                continue
            data = json.dumps(event.data, separators=(",", ":"))
            yield f"id: {event.seq}\nevent: {event.name}\ndata: {data}\n\n".encode()

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
