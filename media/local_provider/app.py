"""The local provider's HTTP and WebSocket surface, shaped like the OpenAI Realtime API."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.websockets import WebSocketDisconnect

from media.local_provider.answerer import InvalidOffer, answer_offer
from media.local_provider.calls import CallRegistry, LocalCall
from media.local_provider.client_secrets import (
    DEFAULT_TTL_S,
    MAX_TTL_S,
    MIN_TTL_S,
    SECRET_PREFIX,
    ClientSecrets,
)
from media.local_provider.config import LocalProviderConfig
from media.local_provider.errors import error_body
from media.local_provider.sdp import fake_answer, offer_problem
from media.local_provider.server_events import JsonObject, random_id
from media.local_provider.session import (
    default_session,
    find_session_problem,
    session_view,
    updated_session,
)

CALLS_PATH = "/v1/realtime/calls"
CLIENT_SECRETS_PATH = "/v1/realtime/client_secrets"
MAX_JSON_BYTES = 64 * 1024
CALL_ENDED_REASON = "call_ended"


class _ProviderError(Exception):
    """An HTTP error answered with an OpenAI error body."""

    def __init__(self, status: int, message: str, *, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(message, code=code, param=param)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status)


def _invalid_api_key() -> _ProviderError:
    return _ProviderError(
        401, "Incorrect or missing API key provided.", code="invalid_api_key", param=None
    )


def _call_not_found(call_id: str) -> _ProviderError:
    return _ProviderError(
        404,
        f"Call with id {call_id!r} not found or already ended.",
        code="call_id_not_found",
        param="call_id",
    )


class WebSocketSink:
    """Sends a call's server events over one sideband WebSocket."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket

    async def send_event(self, event: JsonObject) -> bool:
        """Send `event` as a text frame; False once the socket is gone."""
        try:
            await self._websocket.send_text(json.dumps(event))
        except (WebSocketDisconnect, RuntimeError):
            return False
        return True

    async def close(self) -> None:
        """Close the socket normally, saying why."""
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await self._websocket.close(code=1000, reason=CALL_ENDED_REASON)


def create_provider_app(config: LocalProviderConfig, calls: CallRegistry | None = None) -> FastAPI:
    """The stand-in provider as an ASGI app.

    Pass `calls` to keep a handle on the registry (tests use it to make the user "speak").
    Every non-2xx answer, unknown routes included, is the OpenAI error object
    `{"error": {"message", "type", "code", "param"}}`
    (https://platform.openai.com/docs/guides/error-codes).
    """
    registry = calls if calls is not None else CallRegistry(config)
    client_secrets = ClientSecrets()
    sweep_interval_s = max(0.05, min(5.0, config.call_ttl_s / 4))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(_sweep_forever(registry, sweep_interval_s))
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await registry.end_all()
            registry.close()

    app = FastAPI(title="callbridge local provider", lifespan=lifespan)
    # Browsers holding an ephemeral key call `/v1/realtime/calls` from their own origin.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["Location"],
    )
    _add_error_handlers(app)

    def authorized(headers: Headers) -> bool:
        if config.api_key is None:
            return True
        return hmac.compare_digest(_bearer_token(headers).encode(), config.api_key.encode())

    def require_key(request: Request) -> None:
        if not authorized(request.headers):
            raise _invalid_api_key()

    def session_of_client_secret(request: Request) -> Mapping[str, Any] | None:
        """The session an `ek_` bearer token starts; None for any other credential."""
        token = _bearer_token(request.headers)
        if not token.startswith(SECRET_PREFIX):
            require_key(request)
            return None
        secret = client_secrets.valid(token, now=time.time())
        if secret is None:
            raise _invalid_api_key()
        return secret.session

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(CALLS_PATH)
    async def create_call(request: Request) -> Response:
        granted = session_of_client_secret(request)
        offer, session = await _read_offer(request)
        if granted is not None:
            session = updated_session(granted, session or {})
        problem = offer_problem(offer)
        if problem is not None:
            raise _ProviderError(400, problem, code="invalid_offer", param="sdp")
        call = registry.create(session)
        if config.media:
            try:
                answer = await answer_offer(call, offer)
            except InvalidOffer as exc:
                registry.forget(call)
                raise _ProviderError(
                    400, f"Invalid SDP offer: {exc}", code="invalid_offer", param="sdp"
                ) from exc
        else:
            answer = fake_answer(offer)
        return Response(
            answer,
            status_code=201,
            media_type="application/sdp",
            headers={"Location": f"{CALLS_PATH}/{call.call_id}"},
        )

    @app.post(CALLS_PATH + "/{call_id}/hangup")
    async def hangup(call_id: str, request: Request) -> Response:
        require_key(request)
        call = registry.active(call_id)
        if call is None:
            raise _call_not_found(call_id)
        await call.end()
        return Response(status_code=200)

    @app.get(CALLS_PATH + "/{call_id}")
    async def call_record(call_id: str, request: Request) -> JsonObject:
        require_key(request)
        call = registry.get(call_id)
        if call is None:
            raise _call_not_found(call_id)
        return call.debug_record()

    @app.post(CLIENT_SECRETS_PATH)
    async def create_client_secret(request: Request) -> JsonObject:
        require_key(request)
        session, ttl_s = _client_secret_request(await _read_json(request))
        secret = client_secrets.issue(session, ttl_s=ttl_s, now=time.time())
        view = session_view(updated_session(default_session(random_id("sess")), session))
        return {"value": secret.value, "expires_at": secret.expires_at, "session": view}

    @app.websocket("/v1/realtime")
    async def realtime_socket(websocket: WebSocket) -> None:
        if not authorized(websocket.headers):
            await _deny(websocket, _invalid_api_key())
            return
        params = websocket.query_params
        call_id = params.get("call_id")
        if call_id:
            call = registry.active(call_id)
            if call is None:
                await _deny(websocket, _call_not_found(call_id))
                return
            await websocket.accept()
            await _relay(websocket, call)
            return
        model = params.get("model")
        if params.get("intent") == "transcription":
            session: JsonObject = {"type": "transcription"}
        elif model:
            session = {"type": "realtime", "model": model}
        else:
            missing = _ProviderError(
                400,
                "Missing required parameter: 'model' (or 'call_id').",
                code="missing_required_parameter",
                param="model",
            )
            await _deny(websocket, missing)
            return
        # A plain WebSocket session is a call without media that lasts as long as its socket.
        call = registry.create(session, audio=False)
        await websocket.accept()
        try:
            await _relay(websocket, call)
        finally:
            await call.end()

    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Answer every error, the framework's included, with the OpenAI error object."""

    @app.exception_handler(_ProviderError)
    async def provider_error(request: Request, exc: _ProviderError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # What api.openai.com answers for a path or method it does not serve.
        message = f"Invalid URL ({request.method} {request.url.path})"
        if exc.status_code not in (404, 405):
            message = str(exc.detail)
        body = error_body(message, code=None)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        body = error_body("The request is not valid.", code="invalid_request")
        return JSONResponse(body, status_code=400)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        body = error_body("The server had an error.", code=None, type="server_error")
        return JSONResponse(body, status_code=500)


def _bearer_token(headers: Headers) -> str:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _read_json(request: Request) -> JsonObject:
    if len(await request.body()) > MAX_JSON_BYTES:
        raise _ProviderError(413, "The request body is too large.", code="request_too_large")
    try:
        body = await request.json()
    except ValueError as exc:
        raise _ProviderError(
            400, "We could not parse the JSON body of your request.", code="invalid_json"
        ) from exc
    if not isinstance(body, dict):
        raise _ProviderError(400, "The request body must be a JSON object.", code="invalid_type")
    return body


def _client_secret_request(body: JsonObject) -> tuple[JsonObject, int]:
    """The session and lifetime (seconds) a client-secret request asks for."""
    session = body.get("session", {"type": "realtime"})
    problem = find_session_problem(session)
    if problem is not None:
        raise _ProviderError(400, problem.message, code=problem.code, param=problem.param)
    expires_after = body.get("expires_after") or {}
    ttl_s = expires_after.get("seconds", DEFAULT_TTL_S) if isinstance(expires_after, dict) else None
    if (
        not isinstance(ttl_s, int)
        or isinstance(ttl_s, bool)
        or not MIN_TTL_S <= ttl_s <= MAX_TTL_S
        or expires_after.get("anchor", "created_at") != "created_at"
    ):
        raise _ProviderError(
            400,
            f"Invalid 'expires_after': seconds must be {MIN_TTL_S} to {MAX_TTL_S}, "
            "anchor 'created_at'.",
            code="invalid_value",
            param="expires_after",
        )
    return session, ttl_s


async def _relay(websocket: WebSocket, call: LocalCall) -> None:
    """Greet the socket, then feed its messages to the call until either side closes."""
    sink = WebSocketSink(websocket)
    await call.subscribe(sink)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", "replace")
            await call.handle_client_text(text)
    finally:
        call.unsubscribe(sink)


async def _deny(websocket: WebSocket, error: _ProviderError) -> None:
    """Refuse the WebSocket handshake with a plain HTTP error response."""
    await websocket.send_denial_response(error.response())


async def _read_offer(request: Request) -> tuple[str, dict[str, Any] | None]:
    """The SDP offer and the optional session object of a call-creation request."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/sdp":
        return (await request.body()).decode("utf-8", "replace"), None
    if media_type != "multipart/form-data":
        raise _ProviderError(
            415,
            "Use Content-Type application/sdp or multipart/form-data.",
            code="unsupported_content_type",
        )
    async with request.form() as form:
        offer = await _form_text(form.get("sdp"))
        raw_session = await _form_text(form.get("session"))
    if offer is None:
        raise _ProviderError(
            400,
            "Missing required parameter: 'sdp'.",
            code="missing_required_parameter",
            param="sdp",
        )
    if raw_session is None:
        return offer, None
    try:
        session = json.loads(raw_session)
    except ValueError as exc:
        raise _ProviderError(
            400, "The 'session' part is not valid JSON.", code="invalid_json", param="session"
        ) from exc
    problem = find_session_problem(session)
    if problem is not None:
        raise _ProviderError(400, problem.message, code=problem.code, param=problem.param)
    return offer, session


async def _form_text(value: UploadFile | str | None) -> str | None:
    if isinstance(value, UploadFile):
        return (await value.read()).decode("utf-8", "replace")
    return value


async def _sweep_forever(registry: CallRegistry, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        await registry.sweep()
