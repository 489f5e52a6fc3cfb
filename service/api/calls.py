"""The call API: start (WHIP-style), inspect, control, follow and end calls."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import replace
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from service.api.bodies import FormLimits, read_form, read_limited
from service.api.disconnect import answer_unsent, client_gone
from service.api.guards import (
    CALLER_TOKEN,
    OPS_TOKEN,
    authenticate,
    caller_if_allowed,
    check_rate,
    require_api_token,
    require_ops,
)
from service.api.models import (
    CallRecord,
    CallsPage,
    CallSummary,
    CallToken,
    MessageIn,
    MessageSent,
    ReferIn,
    SessionChange,
    SessionOverrides,
    StartOverrides,
    TransferRequested,
)
from service.api.openapi import EXAMPLE_OFFER, SDP_SCHEMA, answer, answers, headers, secured_by
from service.api.preconditions import MalformedEntityTags, if_match_holds
from service.api.problems import CLIENT_CLOSED_REQUEST, Problem
from service.api.sse import EventStreamResponse, StreamSeats
from service.auth import Principal, mint_call_token
from service.calls.control import (
    Command,
    DeleteCall,
    GetCall,
    HangUp,
    InjectText,
    Refer,
    UpdateSession,
)
from service.calls.manager import CallManager
from service.calls.stream import UnissuedEventId, check_resumable, follow
from service.ice_servers import IceServers
from service.media_types import JSON_TYPE, charset, media_type
from service.metrics import CALL_STARTS, PROVIDER_ERRORS, provider_error_label
from service.settings import Settings
from signaling.ids import CallId, is_valid_call_id
from signaling.provider import (
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderRefusedOffer,
    ProviderTimeout,
    ProviderUnavailable,
)
from signaling.realtime import EndReason, SessionConfig
from signaling.sdp import OfferError, OfferErrorKind, check_offer

Caller = Annotated[Principal, Depends(authenticate)]
# What the routes `authenticate` guards declare: the token they ask for (an API or call token).
_CALLER = secured_by(CALLER_TOKEN)
log = logging.getLogger("callbridge.api")

router = APIRouter(prefix="/v1/calls", tags=["calls"])

DEFAULT_CALLS_PAGE = 100
MAX_CALLS_PAGE = 1000
"""Live calls `GET /v1/calls` answers at most at once."""
tokens_router = APIRouter(prefix="/v1/call-tokens", tags=["calls"])

TRICKLE_TYPE = "application/trickle-ice-sdpfrag"
# Routes that exist only to refuse their method in RFC 9725's order; never advertised in Allow.
REFUSED_METHODS = {"/v1/calls/{call_id}": frozenset({"PATCH"})}
ACCEPT_POST = "application/sdp, multipart/form-data"

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
    """`body` as JSON; 400 when it is not, nests too deep, or holds an integer too long to
    convert (Python's int/str conversion limit, 4300 digits)."""
    try:
        return json.loads(body)
    except RecursionError:
        raise Problem(400, f"{what} nests too deeply", kind="bad-json") from None
    except ValueError as exc:
        # JSONDecodeError and UnicodeDecodeError are ValueErrors, as is the integer limit.
        raise Problem(400, f"{what} is not valid JSON: {str(exc)[:200]}", kind="bad-json") from None


def _media_type(request: Request) -> str:
    """The request's `type/subtype` (see `media_type`); 400 for a malformed `Content-Type`, or
    one longer or with more `;` than a multipart part header may have."""
    value = request.headers.get("content-type")
    settings = request.app.state.settings
    if value is not None and (
        len(value) > settings.max_form_header_bytes
        or value.count(";") > settings.max_form_header_params
    ):
        raise Problem(
            400, "Content-Type is too long or has too many parameters", kind="bad-content-type"
        )
    try:
        return media_type(value)
    except ValueError as exc:
        raise Problem(400, str(exc), kind="bad-content-type") from None


async def _read_offer(request: Request) -> tuple[bytes, StartOverrides]:
    settings = request.app.state.settings
    offered = _media_type(request)
    if offered == "application/sdp":
        # SDP text is UTF-8 (RFC 8866 §5); an offer declared in another charset is not taken.
        if charset(request.headers.get("content-type", "")) not in (None, "utf-8"):
            raise Problem(
                415,
                "an application/sdp offer must be UTF-8",
                kind="unsupported-media-type",
                headers={"Accept-Post": ACCEPT_POST},
            )
        return await read_limited(request, settings.max_sdp_bytes), StartOverrides()
    if offered == "multipart/form-data":
        parts = await read_form(request, _form_limits(settings))
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
        "Content-Type must be application/sdp or multipart/form-data"
        + (f", not {offered}" if offered else "; the request has none"),
        kind="unsupported-media-type",
        headers={"Accept-Post": ACCEPT_POST},
    )


def _form_limits(settings: Settings) -> FormLimits:
    # Room for the two fields plus the boundaries and part headers around them.
    overhead = (
        settings.max_form_parts
        * settings.max_form_part_headers
        * (settings.max_form_header_bytes + 2)
    )
    return FormLimits(
        max_bytes=settings.max_sdp_bytes + settings.max_json_bytes + overhead,
        max_parts=settings.max_form_parts,
        max_part_headers=settings.max_form_part_headers,
        max_header_bytes=settings.max_form_header_bytes,
        max_header_params=settings.max_form_header_params,
    )


def _apply(config: SessionConfig, overrides: SessionOverrides) -> SessionConfig:
    changes = overrides.model_dump(exclude_none=True)
    return replace(config, **changes)


_ERROR_KIND: dict[type[ProviderError], str] = {
    ProviderTimeout: "timeout",
    ProviderUnavailable: "unreachable",
    ProviderBadResponse: "bad_answer",
}
# Retry-After (seconds) for a 503 when the provider's 429 named no usable delay.
_RETRY_AFTER_S = 5


def _provider_problem(exc: ProviderError) -> Problem:
    kind = _ERROR_KIND.get(type(exc))
    PROVIDER_ERRORS.labels(status=kind or provider_error_label(exc.status)).inc()
    # The client is told what failed; why (a certificate, a name that does not resolve) can
    # name the provider's host, so it goes to the operator alone.
    log.warning(
        "call start failed at the provider: %s%s",
        exc.message,
        f": {exc.detail}" if exc.detail else "",
        extra={"provider_status": exc.status},
    )
    if isinstance(exc, ProviderTimeout):
        return Problem(504, "the provider did not answer in time", kind="provider-timeout")
    if isinstance(exc, ProviderUnavailable):
        return Problem(502, f"the provider is unreachable: {exc.message}", kind="provider-down")
    if isinstance(exc, ProviderRefusedOffer):
        # RFC 9725 §4.2: an offer that cannot be used is the client's error (422).
        return Problem(
            422,
            f"the provider refused the offer: {exc.message}",
            kind="offer-refused",
            provider_status=exc.status,
            provider_code=exc.code,
        )
    if isinstance(exc, ProviderRateLimited):
        retry_after = exc.retry_after_s if exc.retry_after_s is not None else _RETRY_AFTER_S
        return Problem(
            503,
            f"the provider is rate limiting calls: {exc.message}",
            kind="provider-rate-limited",
            headers={"Retry-After": str(retry_after)},
        )
    if isinstance(exc, ProviderBadResponse):
        return Problem(502, f"the provider's answer is unusable: {exc.message}", kind="bad-answer")
    return Problem(
        502,
        f"the provider refused the call: {exc.message}",
        kind="provider-error",
        provider_status=exc.status,
        provider_code=exc.code,
    )


def _ice_links(request: Request, caller: Principal | None) -> dict[str, str]:
    """The `rel="ice-server"` links (RFC 9725 §4.6), with TURN credentials for `caller`, one
    who may start calls (None: without credentials), as they let their holder relay through
    the TURN server; a derived credential lasts no longer than the calls its token may start
    (`IceServers.credential`)."""
    servers: IceServers = request.app.state.ice_servers
    if not servers.urls:
        return {}
    # A random id per answer: callers never share a TURN username, which TURN servers count
    # allocations by (coturn's `user-quota`).
    credential = (
        servers.credential(time.time(), secrets.token_urlsafe(9), caller.expires_at)
        if caller is not None
        else None
    )
    links = {"Link": servers.link(credential)}
    # An answer holding a credential is kept by no cache (as RFC 6749 §5.1 asks of tokens).
    return links if credential is None else {**links, "Cache-Control": "no-store"}


_OFFER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/sdp": {"schema": SDP_SCHEMA, "example": EXAMPLE_OFFER},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["sdp"],
                    "additionalProperties": False,
                    "properties": {
                        "sdp": SDP_SCHEMA,
                        "session": StartOverrides.model_json_schema(),
                    },
                },
                "encoding": {
                    "sdp": {"contentType": "application/sdp"},
                    "session": {"contentType": JSON_TYPE},
                },
            },
        },
    },
}
_CALL_ID = "$response.header.Location#regex:/v1/calls/(.+)"
_STARTED = {
    201: {
        "description": "The provider's SDP answer; the call lives at `Location`.",
        "content": {"application/sdp": {"schema": {"type": "string"}}},
        "headers": headers("Location", "ETag", "Link", "Cache-Control"),
        "links": {
            name: {"operationId": operation, "parameters": {"call_id": _CALL_ID}}
            for name, operation in (
                ("GetCall", "getCall"),
                ("GetCallHeaders", "getCallHead"),
                ("PostMessage", "postMessage"),
                ("UpdateSession", "updateSession"),
                ("FollowEvents", "followEvents"),
                ("FollowEventsHeaders", "followEventsHead"),
                ("ReferCall", "referCall"),
                ("HangUpCall", "hangUpCall"),
                ("DeleteCall", "deleteCall"),
            )
        },
    }
}
# One Server-Sent Event as Schemathesis and OpenAPI 3.2 (`itemSchema`) read a stream: its fields.
_SSE_EVENT = {
    "type": "object",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {"type": "string"},
        "event": {"type": "string"},
        "data": {"type": "string"},
    },
}
_HUNG_UP = {200: answer("The call record, without transcript", CallSummary)}
_SENT = {202: answer("Sent to the call", MessageSent)}
_REFERRED = {202: answer("Transfer requested", TransferRequested)}
_Body = TypeVar("_Body", MessageIn, SessionOverrides, ReferIn)


def _json_body(model: type[SessionOverrides] | type[MessageIn] | type[ReferIn]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {JSON_TYPE: {"schema": model.model_json_schema()}},
        }
    }


@router.post(
    "",
    status_code=201,
    response_class=Response,
    operation_id="startCall",
    openapi_extra={**_OFFER_BODY, **_CALLER},
    responses=answers(400, 413, 415, 422, 429, 502, 503, 504, ok=_STARTED),
)
async def start_call(request: Request) -> Response:
    """Start a call: the body is an SDP offer; the answer is the provider's SDP answer."""
    # Called here rather than as a `Caller` dependency: on the busiest route, FastAPI's
    # dependency resolution costs more than the check itself.
    principal = await authenticate(request)
    await check_rate(request)
    manager = _manager(request)
    raw, overrides = await _read_offer(request)
    try:
        offer = check_offer(raw)
    except OfferError as exc:
        CALL_STARTS.labels(outcome="bad_offer").inc()
        raise Problem(_OFFER_STATUS[exc.kind], exc.reason, kind="bad-offer") from None
    config = _apply(manager.default_config(), overrides)
    try:
        call, answer = await manager.start(offer, config, started_by=principal.token_id)
    except ProviderError as exc:
        raise _provider_problem(exc) from None
    # No await between this check and the answer's first write: a client that leaves later
    # than this has been sent the call's Location (or the connection broke under it).
    if client_gone(request):
        await manager.hangup(call.call_id, reason=EndReason.CLIENT_GONE)
        log.info("call start abandoned by its client", extra={"call_id": call.call_id})
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    headers = {"Location": f"/v1/calls/{call.call_id}", "ETag": _etag(call.call_id)}
    links = _ice_links(request, principal)
    return _CallAnswer(answer, {**headers, **links}, manager, call.call_id)


class _CallAnswer(Response):
    """A new call's SDP answer (201). When the server reports, once it has been given the
    answer, that the connection was lost before the answer was written (`ANSWER_UNSENT`; a
    client that stopped reading, then left), the call is hung up: nobody has its id."""

    def __init__(
        self, answer: str, headers: dict[str, str], manager: CallManager, call_id: CallId
    ) -> None:
        super().__init__(answer, status_code=201, media_type="application/sdp", headers=headers)
        self._manager = manager
        self._call_id = call_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)
        if answer_unsent(scope):
            log.info("call answer dropped: its client left", extra={"call_id": self._call_id})
            try:
                await self._manager.hangup(self._call_id, reason=EndReason.CLIENT_GONE)
            except Exception:
                # The response has started: nothing to answer with. The call's own limits
                # (idle timeout) still end it.
                log.exception("hanging up a call whose answer was dropped failed")


@router.options(
    "",
    status_code=204,
    response_class=Response,
    openapi_extra=secured_by(CALLER_TOKEN, optional=True),
    responses={
        204: {
            "description": "No content",
            "headers": headers("Allow", "Accept-Post", "Link", "Vary", "Cache-Control"),
        }
    },
)
async def call_options(request: Request) -> Response:
    """WHIP endpoint OPTIONS: what may be POSTed, and the ICE servers (`Allow` is added by the
    method routing). Never refused for its token: without one that may start calls (a CORS
    preflight carries none, RFC 9725 §4.7), the TURN links come without credentials."""
    links = _ice_links(request, await caller_if_allowed(request))
    # Whether the links carry credentials depends on the caller's token.
    vary = {"Vary": "Authorization"} if links else {}
    return Response(status_code=204, headers={"Accept-Post": ACCEPT_POST, **links, **vary})


def _etag(call_id: str) -> str:
    return f'"{call_id}"'


@router.get(
    "",
    dependencies=[Depends(require_ops)],
    openapi_extra=secured_by(OPS_TOKEN),
    responses=answers(422, 503, ok={200: answer("A page of live calls", CallsPage)}),
)
async def list_calls(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_CALLS_PAGE)] = DEFAULT_CALLS_PAGE,
    after: Annotated[str | None, Query(max_length=64)] = None,
) -> JSONResponse:
    """Live calls (records without transcript) in call-id order, `limit` at a time, those with
    an id after `after`; with Redis, those of every instance. `next` is the `after` of the
    following page, or null."""
    calls, following = await _manager(request).live_calls(after, limit)
    return JSONResponse({"calls": calls, "next": following})


def _known_call_id(call_id: str) -> CallId:
    if not is_valid_call_id(call_id):
        raise Problem(404, "no such call", kind="unknown-call")
    return CallId(call_id)


async def _run(request: Request, command: Command) -> Any:
    """Carry out a call command (here or at its owner); its refusals become problems through
    the handler `install_problem_handlers` registers for `CallError`."""
    return await _manager(request).execute(command)


def _record(payload: dict[str, Any]) -> JSONResponse:
    # No ETag: the call start's names the WHIP session (RFC 9725 §4.3) for If-Match, while a
    # strong ETag on the record would have to change with every transcript line (RFC 9110
    # §8.8.1); the record is read fresh, not revalidated.
    return JSONResponse(payload)


@router.get(
    "/{call_id}",
    operation_id="getCall",
    openapi_extra=_CALLER,
    responses=answers(404, 410, 503, ok={200: answer("The call record", CallRecord)}),
)
async def get_call(call_id: str, request: Request, principal: Caller) -> JSONResponse:
    """One call's record, with transcript and handoffs."""
    return _record(await _run(request, GetCall(_known_call_id(call_id), principal)))


@router.delete(
    "/{call_id}",
    operation_id="deleteCall",
    openapi_extra=_CALLER,
    responses=answers(404, 410, 503, ok={200: answer("The final call record", CallRecord)}),
)
async def delete_call(call_id: str, request: Request, principal: Caller) -> JSONResponse:
    """End the call at the provider if it is live (the WHIP session DELETE) and delete it:
    answers the final record, transcript included; afterwards the call's URLs answer 410."""
    return _record(await _run(request, DeleteCall(_known_call_id(call_id), principal)))


@router.post(
    "/{call_id}/hangup",
    operation_id="hangUpCall",
    openapi_extra=_CALLER,
    responses=answers(404, 410, 503, ok=_HUNG_UP),
)
async def hang_up_call(call_id: str, request: Request, principal: Caller) -> JSONResponse:
    """End the call at the provider and keep its record readable at the call's URL (for the
    ended-call retention); a call that has already ended is answered as it is."""
    return _record(await _run(request, HangUp(_known_call_id(call_id), principal)))


@router.patch("/{call_id}", include_in_schema=False)
async def patch_call(call_id: str, request: Request, principal: Caller) -> Response:
    """WHIP trickle ICE / ICE restart: the provider takes neither, so it is refused.

    The checks run in RFC 9725 order so a client learns the most specific reason.
    """
    record = await _run(request, GetCall(_known_call_id(call_id), principal))
    if _media_type(request) != TRICKLE_TYPE:
        raise Problem(415, f"PATCH takes {TRICKLE_TYPE}", kind="unsupported-media-type")
    if_match = request.headers.getlist("if-match")
    if not if_match:
        raise Problem(428, "If-Match with the session's ETag is required", kind="no-if-match")
    try:
        holds = if_match_holds(if_match, _etag(str(record["id"])))
    except MalformedEntityTags as exc:
        raise Problem(400, str(exc), kind="bad-if-match") from None
    if not holds:
        raise Problem(412, "the ETag does not match this session", kind="stale-etag")
    raise Problem(
        405,
        "trickle ICE and ICE restarts cannot be forwarded to the provider; gather all "
        "candidates before sending the offer",
        kind="no-trickle",
        # Allow itself is set by the method routing, from the routes.
    )


async def _json_model(request: Request, model: type[_Body], what: str) -> _Body:
    """The request's JSON body as `model`: 415 unless it is `application/json`, 413 past
    `max_json_bytes`, 400 for bad JSON, 422 for the wrong shape (naming `what` was asked for)."""
    declared = charset(request.headers.get("content-type", ""))
    if _media_type(request) != JSON_TYPE or declared not in (None, "utf-8"):
        # JSON is UTF-8 (RFC 8259 §8.1); a body declared in another charset is not taken.
        raise Problem(
            415,
            f"Content-Type must be {JSON_TYPE} (UTF-8)",
            kind="unsupported-media-type",
            headers={"Accept-Post": JSON_TYPE},
        )
    body = await read_limited(request, request.app.state.settings.max_json_bytes)
    try:
        return model.model_validate(_parse_json(body, "body"))
    except ValidationError as exc:
        raise _validation_problem(exc, what) from None


@router.post(
    "/{call_id}/messages",
    status_code=202,
    operation_id="postMessage",
    openapi_extra={**_json_body(MessageIn), **_CALLER},
    responses=answers(400, 404, 409, 410, 413, 415, 422, 503, ok=_SENT),
)
async def post_message(call_id: str, request: Request, principal: Caller) -> JSONResponse:
    """Inject user text into the live call."""
    settings = request.app.state.settings
    _known_call_id(call_id)
    message = await _json_model(request, MessageIn, "message")
    if len(message.text) > settings.max_message_chars:
        raise Problem(
            413, f"text exceeds {settings.max_message_chars} characters", kind="too-large"
        )
    await _run(request, InjectText(_known_call_id(call_id), principal, message.text))
    return JSONResponse({"status": "sent"}, status_code=202)


_SESSION_ACCEPTED = answer(
    "The change is asked of the provider: `session` holds the settings it has confirmed (still "
    "the old ones), `session_requested` those asked for; the call's record shows the change in "
    "`session` once the provider confirms it.",
    SessionChange,
)


@router.post(
    "/{call_id}/session",
    status_code=202,
    operation_id="updateSession",
    openapi_extra={**_json_body(SessionOverrides), **_CALLER},
    responses=answers(400, 404, 409, 410, 413, 415, 422, 503, ok={202: _SESSION_ACCEPTED}),
)
async def post_session(call_id: str, request: Request, principal: Caller) -> JSONResponse:
    """Ask for new instructions, voice or output modality on the live call: 202 with the
    confirmed `session` and the `session_requested` (the change applies once the provider
    confirms it)."""
    _known_call_id(call_id)
    overrides = await _json_model(request, SessionOverrides, "session update")
    command = UpdateSession(
        _known_call_id(call_id),
        principal,
        instructions=overrides.instructions,
        voice=overrides.voice,
        output_modality=overrides.output_modality,
    )
    return JSONResponse(await _run(request, command), status_code=202)


_STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")
_KEEPALIVE_S = 15.0


@router.post(
    "/{call_id}/refer",
    status_code=202,
    operation_id="referCall",
    openapi_extra={**_json_body(ReferIn), **_CALLER},
    responses=answers(400, 404, 409, 410, 413, 415, 422, 502, 503, ok=_REFERRED),
)
async def refer_call(call_id: str, request: Request, principal: Caller) -> JSONResponse:
    """Transfer a live phone call (SIP REFER); 409 for a WebRTC call, which cannot be."""
    _known_call_id(call_id)
    refer = await _json_model(request, ReferIn, "transfer")
    command = Refer(_known_call_id(call_id), principal, refer.target_uri)
    return JSONResponse(await _run(request, command), status_code=202)


_EVENT_SEQ = re.compile(r"[0-9]{1,18}")
_MAX_ID_PART = 2**64 - 1


def _last_event_id(value: str | None, pattern: re.Pattern[str]) -> str | None:
    """The `Last-Event-ID` a resuming client sent, when it has the shape of this stream's ids
    (`pattern`); 400 for anything else, so a hostile value cannot make us convert a huge or
    non-ASCII number."""
    value = (value or "").strip()
    if value == "":
        return None
    if pattern.fullmatch(value) is None or any(
        int(part) > _MAX_ID_PART for part in value.split("-")
    ):
        # A Redis stream id's parts are unsigned 64-bit: Redis refuses a larger one.
        raise Problem(400, "Last-Event-ID is not one of this stream's ids", kind="bad-event-id")
    return value


@router.get(
    "/{call_id}/events",
    status_code=200,
    operation_id="followEvents",
    response_class=EventStreamResponse,
    openapi_extra=_CALLER,
    responses=answers(
        400,
        404,
        409,
        410,
        429,
        503,
        ok={
            200: {
                "description": "Server-Sent Events. A stream resumed with a `Last-Event-ID` "
                "older than the history kept starts with a `stream.gap` event (data: "
                "`last_event_id`, `resumes_after`); one the stream never sent is a 400.",
                "content": {"text/event-stream": {"schema": _SSE_EVENT}},
            }
        },
    ),
)
async def call_events(call_id: str, request: Request, principal: Caller) -> EventStreamResponse:
    """Server-Sent Events: transcript, handoffs and call state, with replay of recent history.

    With Redis, any instance serves any call's stream and `Last-Event-ID` resumes on any of
    them (the ids are Redis stream ids, `ms-seq`); on one instance, the ids are sequence
    numbers. An ended call's stream is kept for the ended-call retention: it replays what is
    kept (after `Last-Event-ID`) and closes after the event that ended the call; past that,
    409 on one instance. 400 for a `Last-Event-ID` the stream never issued; one older than the
    history kept is answered with a first `stream.gap` event.
    """
    manager = _manager(request)
    cid = _known_call_id(call_id)
    store = manager.store
    send_timeout_s = request.app.state.settings.sse_send_timeout_s
    if store is not None:
        last = _last_event_id(request.headers.get("last-event-id"), _STREAM_ID)
        await manager.visible(cid, principal)
        over = False
        if last is not None:
            try:
                over = await check_resumable(store, cid, last)
            except UnissuedEventId:
                raise _unissued() from None
        resumed = last is not None

        async def logged() -> AsyncGenerator[bytes, None]:
            yield b": stream open\n\n"
            if over:
                return
            async for event in follow(
                store, cid, last or "0", keepalive_s=_KEEPALIVE_S, resumed=resumed
            ):
                if event is None:
                    yield b": keepalive\n\n"
                    continue
                yield _frame(event.event_id, event.name, event.data)

        return _sse(request, logged(), send_timeout_s, _seat(request, cid))
    last = _last_event_id(request.headers.get("last-event-id"), _EVENT_SEQ)
    await manager.visible(cid, principal)
    stream = manager.event_stream(cid)
    if stream is None:
        raise Problem(
            409, "the call has ended and its events are no longer kept", kind="call-ended"
        )
    seq = int(last) if last is not None else 0
    try:
        stream.check_resumable(seq)
    except UnissuedEventId:
        raise _unissued() from None
    resumed = last is not None

    async def frames() -> AsyncGenerator[bytes, None]:
        yield b": stream open\n\n"
        async for event in stream.subscribe(seq, keepalive_s=_KEEPALIVE_S, resumed=resumed):
            if event is None:
                yield b": keepalive\n\n"
                continue
            yield _frame(str(event.seq), event.name, event.data)

    return _sse(request, frames(), send_timeout_s, _seat(request, cid))


def _seat(request: Request, call_id: CallId) -> Callable[[], None]:
    """Take one of the call's event-stream seats; what gives it back. 429 when none is free."""
    seats: StreamSeats = request.app.state.stream_seats
    if not seats.take(call_id):
        raise Problem(
            429,
            f"this call already has {seats.per_call} event streams open here",
            kind="too-many-streams",
        )
    return lambda: seats.give_back(call_id)


def _unissued() -> Problem:
    return Problem(400, "Last-Event-ID was never sent by this stream", kind="bad-event-id")


def _frame(event_id: str, name: str, data: dict[str, Any]) -> bytes:
    body = json.dumps(data, separators=(",", ":"))
    return f"id: {event_id}\nevent: {name}\ndata: {body}\n\n".encode()


def _sse(
    request: Request,
    frames: AsyncGenerator[bytes, None],
    send_timeout_s: float,
    on_close: Callable[[], None],
) -> EventStreamResponse:
    return EventStreamResponse(
        frames,
        send_timeout_s=send_timeout_s,
        closing=request.app.state.stream_seats.closing,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        on_close=on_close,
    )


@tokens_router.post(
    "",
    dependencies=[Depends(require_api_token)],
    status_code=201,
    openapi_extra=_CALLER,
    responses=answers(403, 404, 413, ok={201: answer("A call token", CallToken)}),
)
async def mint_token(request: Request) -> JSONResponse:
    """A short-lived call token for a browser (needs an API token, 403 for a call token, and a
    configured secret, 404 without).

    Takes no request body: 413 when one is sent (none is allowed, so any is too large)."""
    await read_limited(request, 0)
    settings = request.app.state.settings
    if settings.call_token_secret is None:
        raise Problem(404, "call tokens are not enabled", kind="no-call-tokens")
    token, expiry = mint_call_token(
        settings.call_token_secret.get_secret_value().encode(),
        settings.call_token_ttl_s,
        time.time(),
    )
    return JSONResponse({"token": token, "expires_at": expiry}, status_code=201)
