"""`create_app(settings)`: the FastAPI application and what it runs beside the routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.routing import Route

from service.api.calls import REFUSED_METHODS, start_call, tokens_router
from service.api.calls import router as calls_router
from service.api.cors import ProblemCORSMiddleware
from service.api.direct import DirectRoutes
from service.api.docs import router as docs_router
from service.api.guards import enforced_schemes
from service.api.methods import MethodRouting, MethodTable, static_paths
from service.api.openapi import install_openapi
from service.api.ops import provider_probe
from service.api.ops import router as ops_router
from service.api.problems import install_problem_handlers
from service.api.sse import StreamSeats
from service.api.static_files import WholeFiles
from service.api.webhooks import router as webhooks_router
from service.api.whip import AcceptPostOnOptions
from service.calls.directory import CallDirectory
from service.calls.incoming import IncomingCalls
from service.calls.manager import CallManager
from service.calls.sip_router import load_router
from service.embedded import EmbeddedServer
from service.handoffs import Worker, load_handler, open_queue
from service.providers import call_creation_query, check_credentials, provider_credentials
from service.ratelimit import RateLimiter
from service.settings import ConfigurationError, Settings, resolving
from service.telemetry import fastapi_telemetry
from service.webhook_verification import (
    LocalReplayGuard,
    RedisReplayGuard,
    ReplayGuard,
    WebhookVerifier,
)
from signaling.provider import ProviderClient

if TYPE_CHECKING:
    from media.local_provider import LocalProviderConfig

log = logging.getLogger("callbridge")

STATIC_DIR = Path(__file__).parent / "static"


def local_provider_config(settings: Settings) -> LocalProviderConfig:
    """The embedded stand-in provider's configuration, derived from ours.

    Needs the `callbridge[local]` extra (aiortc, av, numpy, pocketsphinx): `media` is imported
    here rather than at module level so that the control plane runs without it.
    """
    from media.local_provider import LocalProviderConfig
    from media.local_provider.config import DEFAULT_ASR_PHRASES

    phrases = settings.split(settings.local_phrases)
    return LocalProviderConfig(
        api_key=settings.api_key_value(),
        trigger_phrase=settings.local_trigger_phrase,
        media=settings.local_media,
        asr_phrases=tuple(phrases) if phrases else DEFAULT_ASR_PHRASES,
        asr_processes=settings.local_asr_processes,
        tts_voice=settings.local_tts_voice,
        flavor=settings.local_flavor,
        webhook_secret=(
            settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        ),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; everything it runs starts in the lifespan and stops with it.

    Raises `ConfigurationError` for settings that cannot run it (a real provider without
    credentials, a handler or SIP router that names nothing, a malformed webhook secret, the
    local provider without its extra); warns about secrets too short to be redacted, and about
    a stand-in embedded beside a shared queue.
    """
    settings = settings or Settings()
    check_credentials(settings)
    for name in settings.short_secrets():
        log.warning(
            "%s is too short to be kept out of provider text and logs reliably: it is not "
            "redacted; use a longer secret",
            name,
        )
    # Resolved now, so that a bad spec or secret stops the service before it starts, with one
    # line naming the setting rather than a traceback from the lifespan.
    with resolving("SIP_ROUTER"):
        sip_router = load_router(settings.sip_router)
    with resolving("HANDLER"):
        handler = (
            load_handler(settings.handler, max_text_bytes=settings.handoff_max_text_bytes)
            if settings.embedded_worker
            else None
        )
    with resolving("WEBHOOK_SECRET"):
        webhook_verifier = (
            WebhookVerifier(settings.webhook_secret.get_secret_value())
            if settings.webhook_secret
            else None
        )
    embeds_provider = settings.provider == "local" and not settings.provider_url
    if embeds_provider:
        try:
            from media.local_provider import DenialAwareWebSocketProtocol, create_provider_app
        except ImportError as exc:
            raise ConfigurationError(
                "CALLBRIDGE_PROVIDER=local needs the local extra: pip install "
                f"'callbridge[local]', or set CALLBRIDGE_PROVIDER_URL ({exc})"
            ) from None
        if settings.queue != "memory":
            log.warning(
                "the stand-in provider is embedded beside a shared queue (CALLBRIDGE_QUEUE): "
                "each instance embeds its own, so no other instance can take this one's calls "
                "over, and a handoff answered elsewhere may not reach its call; run "
                "`callbridge provider` as its own process and set CALLBRIDGE_PROVIDER_URL to "
                "it on every instance"
            )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        embedded: EmbeddedServer | None = None
        embedded_url: str | None = None
        if embeds_provider:
            # The stand-in's own protocol: a refused sideband handshake is not an ERROR line.
            embedded = EmbeddedServer(
                create_provider_app(local_provider_config(settings)),
                ws=DenialAwareWebSocketProtocol,
                log_as="callbridge.local_provider",
            )
            await embedded.start()
            embedded_url = embedded.url
            log.info("embedded local provider at %s", embedded_url)
        base_url = settings.provider_base_url(embedded_url)
        credentials = provider_credentials(settings)
        provider = ProviderClient(
            base_url,
            settings.api_key_value(),
            timeout_s=settings.provider_timeout_s,
            connect_timeout_s=settings.provider_connect_timeout_s,
            credentials=credentials,
            create_query=call_creation_query(settings),
            max_response_bytes=settings.provider_max_response_bytes,
        )
        queue = open_queue(
            settings.queue,
            handler_timeout_s=settings.handler_timeout_s,
            claim_idle=settings.queue_claim_idle_s,
            handoff_deadline_s=settings.handoff_deadline(),
        )
        directory_factory = None
        if settings.queue != "memory":
            queue_url = settings.queue

            def directory_factory(instance_id: str) -> CallDirectory:
                return CallDirectory(queue_url, instance_id, ttl_s=settings.call_lease_s)

        manager = CallManager(
            settings,
            provider,
            queue,
            provider_base_url=base_url,
            instance_id=settings.instance_id,
            directory_factory=directory_factory,
            credentials=credentials,
        )
        manager.start_listening()
        incoming_calls = IncomingCalls(
            manager,
            sip_router,
            router_timeout_s=settings.sip_router_timeout_s,
            max_ringing=settings.max_calls,
        )
        app.state.incoming_calls = incoming_calls
        replays: ReplayGuard = (
            RedisReplayGuard(manager.directory.redis, keys=manager.directory.keys)
            if manager.directory is not None
            else LocalReplayGuard(settings.webhook_replay_cache)
        )
        app.state.webhook_replays = replays
        worker: Worker | None = None
        if handler is not None:
            worker = Worker(
                queue,
                handler,
                name=f"{manager.instance_id}-worker",
                concurrency=settings.worker_concurrency,
                timeout_s=settings.handler_timeout_s,
            )
            worker.start()
        app.state.manager = manager
        app.state.provider_reachable = provider_probe(manager.provider.probe)
        try:
            yield
        finally:
            await incoming_calls.aclose()
            await manager.drain(0.0)
            await manager.aclose()
            if worker is not None:
                await worker.stop()
            await queue.aclose()
            await app.state.rate_limiter.aclose()
            await provider.aclose()
            if credentials is not None:
                await credentials.aclose()
            if embedded is not None:
                await embedded.stop()

    app = FastAPI(
        title="callbridge",
        version="0.1.0",
        summary="Realtime voice-AI call orchestration",
        lifespan=lifespan,
        telemetry=fastapi_telemetry(),
        # `/docs` is served by `docs_router` instead, with its assets from this origin; ReDoc
        # is not served (see `service/api/docs.py`).
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.webhook_verifier = webhook_verifier
    app.state.ice_servers = settings.ice_server_config()
    app.state.stream_seats = StreamSeats(settings.max_event_streams_per_call)
    app.state.rate_limiter = RateLimiter(
        settings.rate_limit_per_minute,
        settings.rate_limit_burst,
        redis_url=None if settings.queue == "memory" else settings.queue,
    )
    install_problem_handlers(app)
    origins = settings.split(settings.cors_origins)
    install_openapi(app, enforced_schemes(settings), cors=bool(origins))
    static = static_paths(STATIC_DIR) if STATIC_DIR.is_dir() else frozenset()
    # Innermost of the middlewares: CORS preflights are answered before it.
    routers = (calls_router, tokens_router, ops_router, webhooks_router, docs_router)
    # The app's own route (the OpenAPI document) and every router's, with full paths.
    routes = [r for r in app.router.routes if isinstance(r, Route)]
    routes += [r for router in routers for r in router.routes if isinstance(r, Route)]
    app.add_middleware(
        MethodRouting, table=MethodTable(routes, refused=REFUSED_METHODS, static=static)
    )
    # Outside the method routing: the call-start route takes no method that routing would refuse.
    direct = [r for r in routes if r.endpoint is start_call]
    app.add_middleware(DirectRoutes, routes=direct, handlers=app.exception_handlers)
    if origins:
        app.add_middleware(
            ProblemCORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE", "PATCH", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "Last-Event-ID"],
            expose_headers=["Location", "ETag", "Link", "Accept-Post", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(AcceptPostOnOptions)
    for router in routers:
        app.include_router(router)
    if STATIC_DIR.is_dir():
        app.mount("/", WholeFiles(directory=STATIC_DIR, html=True), name="static")
    return app
