"""The local provider's HTTP and WebSocket surface, shaped like the OpenAI Realtime API."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers, UploadFile
from starlette.websockets import WebSocketDisconnect

from media.local_provider.answerer import InvalidOffer, answer_offer
from media.local_provider.azure_paths import AzurePaths
from media.local_provider.calls import CallRegistry, LocalCall
from media.local_provider.config import LocalProviderConfig
from media.local_provider.errors import error_body
from media.local_provider.sdp import fake_answer, offer_problem
from media.local_provider.server_events import JsonObject
from media.local_provider.session import find_session_problem
from media.local_provider.sip import PhoneExchange, register_phone_routes

CALLS_PATH = "/v1/realtime/calls"
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
        404, f"Call {call_id!r} not found or already ended.", code="call_not_found", param="call_id"
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
    """
    registry = calls if calls is not None else CallRegistry(config)
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

    @app.exception_handler(_ProviderError)
    async def provider_error(request: Request, exc: _ProviderError) -> JSONResponse:
        return exc.response()

    def authorized(headers: Headers) -> bool:
        if config.api_key is None:
            return True
        if config.flavor == "azure":
            return hmac.compare_digest(
                headers.get("api-key", "").strip().encode(), config.api_key.encode()
            )
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), config.api_key.encode()
        )

    def require_key(request: Request) -> None:
        if not authorized(request.headers):
            raise _invalid_api_key()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(CALLS_PATH)
    async def create_call(request: Request) -> Response:
        require_key(request)
        offer, session = await _read_offer(request)
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

    @app.websocket("/v1/realtime")
    async def sideband(websocket: WebSocket) -> None:
        if not authorized(websocket.headers):
            await _deny(websocket, _invalid_api_key())
            return
        call_id = websocket.query_params.get("call_id")
        if not call_id:
            missing = _ProviderError(
                400, "Missing required parameter: 'call_id'.", code="missing_required_parameter"
            )
            await _deny(websocket, missing)
            return
        call = registry.active(call_id)
        if call is None:
            await _deny(websocket, _call_not_found(call_id))
            return
        await websocket.accept()
        await _relay(websocket, call)

    register_phone_routes(app, PhoneExchange(config, registry), authorized)
    if config.flavor == "azure":
        app.add_middleware(AzurePaths)
    return app


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
