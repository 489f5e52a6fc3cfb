"""The local provider's HTTP and WebSocket surface, shaped like the OpenAI Realtime API.

Routes come in groups, each added by one function taking the app and the `ProviderContext`:
calls and client secrets here, the realtime WebSocket in `sockets.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from media.local_provider.access import Access
from media.local_provider.answerer import InvalidOffer, answer_offer
from media.local_provider.azure_paths import AzurePaths
from media.local_provider.bodies import client_secret_request, read_json, read_offer
from media.local_provider.calls import CallRegistry
from media.local_provider.client_secrets import ClientSecrets
from media.local_provider.config import LocalProviderConfig
from media.local_provider.context import ProviderContext
from media.local_provider.errors import ProviderError, call_id_not_found, error_body
from media.local_provider.sdp import fake_answer, offer_problem
from media.local_provider.server_events import JsonObject, random_id
from media.local_provider.session import default_session, session_view, updated_session
from media.local_provider.sip import PhoneExchange, register_phone_routes
from media.local_provider.sockets import add_realtime_socket, add_unknown_socket_refusal

CALLS_PATH = "/v1/realtime/calls"
CLIENT_SECRETS_PATH = "/v1/realtime/client_secrets"


def create_provider_app(config: LocalProviderConfig, calls: CallRegistry | None = None) -> FastAPI:
    """The stand-in provider as an ASGI app.

    Pass `calls` to keep a handle on the registry (tests use it to make the user "speak").
    Every non-2xx answer, unknown routes included, is the OpenAI error object
    `{"error": {"message", "type", "code", "param"}}`
    (https://platform.openai.com/docs/guides/error-codes).
    """
    registry = calls if calls is not None else CallRegistry(config)
    context = ProviderContext(
        config, registry, Access(config.api_key, ClientSecrets(), flavor=config.flavor)
    )
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

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    _add_call_routes(app, context)
    _add_client_secret_routes(app, context)
    add_realtime_socket(app, context)
    add_unknown_socket_refusal(app)
    register_phone_routes(app, PhoneExchange(config, registry), context.access.authorized)
    if config.flavor == "azure":
        app.add_middleware(AzurePaths)
    return app


def _add_call_routes(app: FastAPI, context: ProviderContext) -> None:
    """`/v1/realtime/calls`: create (WebRTC offer in, SDP answer out), hang up, debug record."""
    registry, access = context.calls, context.access

    @app.post(CALLS_PATH)
    async def create_call(request: Request) -> Response:
        granted = access.require_key_or_secret(request.headers)
        offer, session = await read_offer(request)
        if granted is not None:
            session = updated_session(granted, session or {})
        problem = offer_problem(offer)
        if problem is not None:
            raise ProviderError(400, problem, code="invalid_offer", param="sdp")
        call = registry.create(session)
        if context.config.media:
            try:
                answer = await answer_offer(call, offer)
            except InvalidOffer as exc:
                registry.forget(call)
                raise ProviderError(
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
        access.require_key(request.headers)
        call = registry.active(call_id)
        if call is None:
            raise call_id_not_found(call_id)
        await call.end()
        return Response(status_code=200)

    @app.get(CALLS_PATH + "/{call_id}")
    async def call_record(call_id: str, request: Request) -> JsonObject:
        access.require_key(request.headers)
        call = registry.get(call_id)
        if call is None:
            raise call_id_not_found(call_id)
        return call.debug_record()


def _add_client_secret_routes(app: FastAPI, context: ProviderContext) -> None:
    """`POST /v1/realtime/client_secrets`: an `ek_` key and the session it starts."""
    access = context.access

    @app.post(CLIENT_SECRETS_PATH)
    async def create_client_secret(request: Request) -> JsonObject:
        access.require_key(request.headers)
        session, ttl_s = client_secret_request(await read_json(request))
        secret = access.client_secrets.issue(session, ttl_s=ttl_s, now=time.time())
        view = session_view(updated_session(default_session(random_id("sess")), session))
        return {"value": secret.value, "expires_at": secret.expires_at, "session": view}


def _add_error_handlers(app: FastAPI) -> None:
    """Answer every error, the framework's included, with the OpenAI error object."""

    @app.exception_handler(ProviderError)
    async def provider_error(request: Request, exc: ProviderError) -> JSONResponse:
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


async def _sweep_forever(registry: CallRegistry, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        await registry.sweep()
