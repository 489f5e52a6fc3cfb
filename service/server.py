"""Running the service under uvicorn with a drain on SIGTERM.

uvicorn's own order on SIGTERM is: stop listening, wait for in-flight requests (an open SSE
stream never finishes), then run lifespan shutdown. So the first SIGTERM drains first — readiness
fails, new calls get 503, live calls get `drain_timeout_s` to finish and are then hung up (which
closes their SSE streams) — and only then asks uvicorn to exit. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import signal
from types import FrameType
from typing import Final

import uvicorn
from fastapi import FastAPI

from service.api.http_protocol import limited_protocol
from service.app import create_app
from service.calls.manager import CallManager
from service.redis_urls import queue_kind
from service.settings import Settings

log = logging.getLogger("callbridge")


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM/SIGINT drains calls before shutting down."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_timeout_s: float) -> None:
        super().__init__(config)
        self._app = app
        self._drain_timeout_s = drain_timeout_s
        self._drain_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_task is not None or not self.started:
            super().handle_exit(sig, frame)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            super().handle_exit(sig, frame)
            return
        manager: CallManager = self._app.state.manager
        live = len(manager.sessions)
        if live:
            log.info(
                "%s: draining %d live call%s for up to %.0f s (a second signal stops at once)",
                _signal_name(sig),
                live,
                "" if live == 1 else "s",
                self._drain_timeout_s,
            )
        else:
            log.info("%s: no live call to drain, stopping", _signal_name(sig))
        self._drain_task = loop.create_task(self._drain())

    async def _drain(self) -> None:
        manager: CallManager = self._app.state.manager
        try:
            await manager.drain(self._drain_timeout_s)
        finally:
            # The streams of calls this instance no longer runs (handed over, or owned by
            # another) would otherwise be cut at the shutdown's graceful timeout.
            self._app.state.stream_seats.closing.set()
            self.should_exit = True


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address or `localhost`."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_host(settings: Settings, requested: str) -> str:
    """The address to bind: without API tokens, only loopback is allowed.

    Says so at start-up: at INFO when loopback was asked for (the development mode `make run`
    starts in), at WARNING when another address was asked for and loopback is bound instead.
    """
    if settings.api_token_list():
        return requested
    if not is_loopback(requested):
        log.warning(
            "no API token configured (CALLBRIDGE_API_TOKENS): binding to 127.0.0.1 instead of %s",
            requested,
        )
        return "127.0.0.1"
    log.info(
        "no API token configured (CALLBRIDGE_API_TOKENS): the API is open, so it listens on "
        "loopback only"
    )
    return requested


STARTUP_FAILED: Final = 3
"""`serve`'s exit status when it never started serving (the port is taken, the app failed to
start), as uvicorn's own command exits."""


def serve(settings: Settings, host: str, port: int) -> int:
    """Serve until a signal, then drain; the process's exit status: 0, or `STARTUP_FAILED`."""
    app = create_app(settings)
    host = bind_host(settings, host)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        # uvicorn works out each access line's client and path before it asks the logger;
        # below INFO no line is written, so it is not asked at all.
        access_log=logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO),
        timeout_graceful_shutdown=5,
        http=limited_protocol(settings.max_request_head_bytes, settings.request_read_timeout_s),
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    # Not where it listens: uvicorn says that once it has bound (the port may be 0, or taken).
    log.info("starting (provider: %s, queue: %s)", settings.provider, queue_kind(settings.queue))
    # Everything loaded by now (modules, the app and its schemas) lives as long as the process:
    # out of the collector's sight, each full collection no longer walks it again.
    gc.freeze()
    server = DrainingServer(config, app, settings.drain_timeout_s)
    server.run()
    return 0 if server.started else STARTUP_FAILED
