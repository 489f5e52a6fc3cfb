"""The control plane runs without the `local` extra (aiortc, av, numpy, pocketsphinx)."""

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
# A `None` entry in sys.modules makes every import of that module raise ImportError, as if the
# package were not installed.
WITHOUT_MEDIA = (
    "import sys\n"
    f"for name in {MEDIA_STACK!r}:\n"
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


def without_media(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", WITHOUT_MEDIA, *args],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_serve_starts_calls_without_the_media_stack(provider_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        "CALLBRIDGE_PROVIDER": "openai",
        "CALLBRIDGE_PROVIDER_URL": provider_url,
        "CALLBRIDGE_API_KEY": API_KEY,
    }
    log = tmp_path / "serve.log"
    serve = without_media(["serve", "--port", str(port)], env, log)
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


def test_provider_command_without_the_media_stack_says_what_to_install(tmp_path: Path) -> None:
    log = tmp_path / "provider.log"
    provider = without_media(["provider", "--port", str(free_port())], {}, log)
    assert provider.wait(timeout=30) == 2
    assert "callbridge[local]" in log.read_text()
