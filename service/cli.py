"""The `callbridge` command: `serve`, `worker`, `provider`, `dial`, `ring`."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import math
import os
import signal
import socket
import ssl
import sys
import urllib.parse
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from service.logs import configure_logging
from service.settings import (
    ConfigurationError,
    Port,
    Settings,
    describe_invalid,
    resolving,
    unknown_variables,
)
from signaling.redaction import redact

log = logging.getLogger("callbridge")

DEFAULT_PROVIDER_URL = "http://127.0.0.1:8090"


def _check_queue(settings: Settings) -> None:
    """Raise `ConfigurationError` when the Redis the queue names says it cannot serve us."""
    if settings.queue == "memory":
        return
    from service.redis_client import refusal

    problem = refusal(settings.queue)
    if problem is not None:
        raise ConfigurationError(problem)


def _check_instance_id(settings: Settings) -> bool:
    """Take the hold of `CALLBRIDGE_INSTANCE_ID` for this process (`hold_instance_id`) when it is
    given and instances share a Redis, returning whether it did; raise `ConfigurationError`
    when another running process has it. Waits out what is left of a hold nobody renews (the
    process that ran as this instance before, and died): at most one lease period."""
    instance_id = settings.instance_id
    if not instance_id or settings.queue == "memory":
        return False
    from service.calls.directory import hold_instance_id

    held = asyncio.run(hold_instance_id(settings.queue, instance_id, lease_s=settings.call_lease_s))
    if not held:
        raise ConfigurationError(
            f"another running instance has CALLBRIDGE_INSTANCE_ID={instance_id} on this "
            "CALLBRIDGE_QUEUE: give each instance its own id"
        )
    return True


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from service.server import serve

    _check_queue(settings)
    held = _check_instance_id(settings)
    try:
        return serve(
            settings, args.host or settings.host, settings.port if args.port is None else args.port
        )
    finally:
        if held:
            # Let go already when it served and left; not when it never started serving.
            from service.calls.directory import let_go_instance_id

            asyncio.run(
                let_go_instance_id(
                    settings.queue, settings.instance_id or "", lease_s=settings.call_lease_s
                )
            )


def default_worker_name() -> str:
    """A worker's consumer name unless `--name` gives one: its host's name and its pid, as
    the pid alone is the same (often 1) in every container of a replicated worker, and two
    workers sharing a consumer would read each other's pending handoffs as their own."""
    return f"worker-{socket.gethostname()}-{os.getpid()}"


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from service.handoffs import Worker, load_handler, open_queue

    if settings.queue == "memory":
        log.error("a separate worker needs a shared queue: set CALLBRIDGE_QUEUE=redis://...")
        return 2

    _check_queue(settings)
    with resolving("HANDLER"):
        handler = load_handler(settings.handler, max_text_bytes=settings.handoff_max_text_bytes)

    async def run() -> None:
        queue = open_queue(
            settings.queue,
            handler_timeout_s=settings.handler_timeout_s,
            claim_idle=settings.queue_claim_idle_s,
        )
        worker = Worker(
            queue,
            handler,
            name=args.name or default_worker_name(),
            concurrency=settings.worker_concurrency,
            timeout_s=settings.handler_timeout_s,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker.start()
        log.info("worker %s consuming from %s", worker.name, queue.name)
        await stop.wait()
        log.info("worker stopping: finishing or releasing in-flight handoffs")
        await worker.stop(grace_s=args.grace)
        await queue.aclose()

    _run_on_fastest_loop(run())
    return 0


def _run_on_fastest_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop where it is installed (uvicorn's standard extras bring it, except on
    Windows), as `serve` does through uvicorn; else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


_NEEDS_LOCAL = "`callbridge %s` needs the local extra: pip install 'callbridge[local]' (%s)"


def _provider(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from media.local_provider import run_provider
    except ImportError as exc:
        log.error(_NEEDS_LOCAL, "provider", exc)
        return 2
    from service.app import local_provider_config

    if (args.tls_cert is None) != (args.tls_key is None):
        log.error("provider: --tls-cert and --tls-key go together")
        return 2
    tls = (args.tls_cert, args.tls_key) if args.tls_cert is not None else None
    if tls is not None:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(*tls)
        except (OSError, ssl.SSLError) as exc:
            log.error("provider: cannot serve TLS with %s and %s: %s", *tls, exc)
            return 2
    run_provider(local_provider_config(settings), args.host, args.port, tls)
    return 0


def _port(value: str) -> int:
    """`--port`: the same range as `CALLBRIDGE_PORT`, else a one-line usage error (uvicorn
    would wrap 70000 round to 4464, and asyncio refuse -1 with a traceback)."""
    try:
        return TypeAdapter(Port).validate_strings(value)
    except ValidationError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port (0 to 65535)") from None


def _seconds(value: str) -> float:
    """A duration in seconds: a finite number, not negative, else a one-line usage error
    (`nan` or `inf` would fail later with a traceback, or wait forever)."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds")
    return seconds


def _token(value: str) -> str:
    """`--token`: a bearer token is visible ASCII (RFC 6750 §2.1), else a usage error
    instead of an encoding traceback when the request is made."""
    if not value or not all("\x21" <= char <= "\x7e" for char in value):
        raise argparse.ArgumentTypeError("a bearer token is visible ASCII characters")
    return value


def _wav_file(value: str) -> Path:
    """`--play`'s file: a readable RIFF WAVE file (its first 12 bytes say so), else a one-line
    usage error instead of a decoder's traceback mid-call."""
    path = Path(value)
    try:
        with path.open("rb") as file:
            head = file.read(12)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {value}: {exc.strerror}") from None
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise argparse.ArgumentTypeError(f"{value} is not a WAV file")
    return path


def _dial(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from media.peer import DialError, dial, format_report
    except ImportError as exc:
        log.error(_NEEDS_LOCAL, "dial", exc)
        return 2

    try:
        report = asyncio.run(
            dial(
                args.url,
                play=args.play,
                seconds=args.seconds,
                token=args.token,
                on_answered=lambda location: print(f"call: {location}", flush=True),
            )
        )
    except DialError as exc:
        print(f"dial failed: {exc}", file=sys.stderr)
        try:
            path = urllib.parse.urlsplit(args.url).path
        except ValueError:  # no URL at all (`http://[::1`): DialError said so
            path = None
        if path in ("", "/"):
            print(
                f"a callbridge call-start URL ends in /v1/calls: {args.url.rstrip('/')}/v1/calls",
                file=sys.stderr,
            )
        return 1
    print(format_report(report))
    return 0


def _ring(args: argparse.Namespace, settings: Settings) -> int:
    from media.phone import RingError, format_phone_report, ring
    from service.providers import provider_credentials

    audio = args.play.read_bytes() if args.play else None

    async def run() -> str:
        credentials = provider_credentials(settings)
        headers = {}
        if credentials is not None:
            headers = await credentials.headers()
            await credentials.aclose()
        report = await ring(
            args.provider or settings.provider_url or DEFAULT_PROVIDER_URL,
            args.url,
            headers=headers,
            say=args.say,
            play=audio,
            seconds=args.seconds,
        )
        return format_phone_report(report)

    try:
        print(asyncio.run(run()))
    except RingError as exc:
        print(f"ring failed: {exc}", file=sys.stderr)
        return 1
    return 0


def _version() -> str:
    try:
        return importlib.metadata.version("callbridge")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="callbridge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the service (configured by CALLBRIDGE_* variables)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=_port, default=None)
    serve.set_defaults(func=_serve)

    worker = sub.add_parser("worker", help="run a handoff worker on the shared queue")
    worker.add_argument(
        "--name", default=None, help="consumer name (default: worker-<host name>-<pid>)"
    )
    worker.add_argument("--grace", type=_seconds, default=10.0, help="seconds to finish on SIGTERM")
    worker.set_defaults(func=_worker)

    provider = sub.add_parser("provider", help="run the local stand-in provider alone")
    provider.add_argument("--host", default="127.0.0.1")
    provider.add_argument("--port", type=_port, default=int(DEFAULT_PROVIDER_URL.rsplit(":", 1)[1]))
    provider.add_argument(
        "--tls-cert", type=Path, default=None, help="PEM certificate chain: serve https and wss"
    )
    provider.add_argument("--tls-key", type=Path, default=None, help="the certificate's PEM key")
    provider.set_defaults(func=_provider)

    dial = sub.add_parser("dial", help="make a WebRTC call to a call-start URL")
    dial.add_argument("url")
    dial.add_argument(
        "--play", type=_wav_file, default=None, help="WAV file to send as the microphone"
    )
    dial.add_argument("--seconds", type=_seconds, default=5.0)
    dial.add_argument("--token", type=_token, default=None, help="bearer token for the service")
    dial.set_defaults(func=_dial)

    ring = sub.add_parser(
        "ring", help="place a simulated phone call (via the local provider) to a webhook URL"
    )
    ring.add_argument("url", help="the service's webhook, e.g. http://HOST/v1/provider/webhooks")
    ring.add_argument(
        "--provider", default=None, help=f"local provider URL (default {DEFAULT_PROVIDER_URL})"
    )
    ring.add_argument("--say", action="append", default=[], help="a caller's turn, as text")
    ring.add_argument("--play", type=_wav_file, default=None, help="WAV file the caller speaks")
    ring.add_argument("--seconds", type=_seconds, default=10.0, help="wait per step")
    ring.set_defaults(func=_ring)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `callbridge` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"callbridge: invalid configuration: {describe_invalid(exc)}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format, settings.secrets())
    for warning in unknown_variables(os.environ):
        log.warning(warning)
    try:
        code: int = args.func(args, settings)
    except ConfigurationError as exc:
        # Not a log line, so not filtered: a library's message could quote a secret.
        problem = redact(str(exc), settings.secrets())
        print(f"callbridge: invalid configuration: {problem}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
