"""The control plane runs without the `local` extra (aiortc, av, numpy, pocketsphinx), and a
service loads the client library of an optional part only when that part is configured."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import Process, free_port
from tests.unit.sdp_samples import AIORTC_OFFER

API_KEY = "sk-control-plane"
MEDIA_STACK = ("aiortc", "av", "numpy", "pocketsphinx")
REMOTE_PROVIDER = {"CALLBRIDGE_PROVIDER": "openai", "CALLBRIDGE_API_KEY": API_KEY}
# Redis (queue, directory, rate limits), handlers and SIP routers given by URL.
OPTIONAL_CLIENTS = ("redis", "limits", "httpx")
# Builds the service as `serve` does, runs its start-up and shut-down, and names every module
# loaded by then.
LOADED_BY_A_SERVICE = """
import asyncio, sys
import service.server
from service.app import create_app
from service.settings import Settings
app = create_app(Settings())
async def run():
    async with app.router.lifespan_context(app):
        pass
asyncio.run(run())
print(" ".join(sys.modules))
"""


def cli_without(modules: tuple[str, ...]) -> str:
    """A `python -c` program that runs the `callbridge` command as if `modules` were not
    installed: a `None` entry in sys.modules makes every import of it raise ImportError."""
    return (
        "import sys\n"
        f"for name in {modules!r}:\n"
        "    sys.modules[name] = None\n"
        "from service.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )


@pytest.fixture
def provider_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    provider = Process(
        ["provider", "--port", str(port)],
        {"CALLBRIDGE_API_KEY": API_KEY, "CALLBRIDGE_LOCAL_MEDIA": "false"},
        tmp_path / "provider.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        provider.wait_http(f"{url}/healthz")
        yield url
    finally:
        provider.stop()


def without(
    modules: tuple[str, ...], args: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", cli_without(modules), *args],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def without_media(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return without(MEDIA_STACK, args, env, log)


def start_and_end_a_call(serve: subprocess.Popen[bytes], port: int, log: Path) -> None:
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(200):
                assert serve.poll() is None, log.read_text()
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            started = client.post(
                "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
            )
            assert started.status_code == 201, started.text
            ended = client.delete(started.headers["location"])
            assert ended.status_code == 200
    finally:
        serve.terminate()
        serve.wait(timeout=15)
    assert "Traceback" not in log.read_text()


def test_serve_starts_calls_without_the_media_stack(provider_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**REMOTE_PROVIDER, "CALLBRIDGE_PROVIDER_URL": provider_url}
    log = tmp_path / "serve.log"
    serve = without_media(["serve", "--port", str(port)], env, log)
    start_and_end_a_call(serve, port, log)


def test_an_in_memory_service_starts_calls_without_redis(provider_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**REMOTE_PROVIDER, "CALLBRIDGE_PROVIDER_URL": provider_url, "CALLBRIDGE_QUEUE": "memory"}
    log = tmp_path / "serve.log"
    serve = without(("redis", "hiredis"), ["serve", "--port", str(port)], env, log)
    start_and_end_a_call(serve, port, log)


@pytest.fixture(scope="module")
def loaded_by_an_in_memory_service() -> set[str]:
    env = {**os.environ, **REMOTE_PROVIDER, "CALLBRIDGE_PROVIDER_URL": "http://127.0.0.1:9"}
    for name in ("CALLBRIDGE_QUEUE", "CALLBRIDGE_HANDLER", "CALLBRIDGE_SIP_ROUTER"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", LOADED_BY_A_SERVICE],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


@pytest.mark.parametrize("library", OPTIONAL_CLIENTS)
def test_a_service_without_redis_or_url_handlers_never_loads_their_client(
    loaded_by_an_in_memory_service: set[str], library: str
) -> None:
    assert library not in loaded_by_an_in_memory_service


def test_provider_command_without_the_media_stack_says_what_to_install(tmp_path: Path) -> None:
    log = tmp_path / "provider.log"
    provider = without_media(["provider", "--port", str(free_port())], {}, log)
    assert provider.wait(timeout=30) == 2
    assert "callbridge[local]" in log.read_text()
