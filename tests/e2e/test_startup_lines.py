"""What an operator reads when `callbridge serve` starts and stops, as `make run` starts it (the
embedded stand-in provider, no API token): each line once, saying what really happens.

One real process for the module: started, asked once for readiness (which probes the embedded
provider), then stopped with SIGINT as Ctrl-C would.
"""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.server import STARTUP_FAILED, bind_host
from service.settings import Settings
from tests.e2e.processes import Process, free_port
from tests.e2e.redis_server import RedisServer

Lines = list[dict[str, Any]]


def _serve_once(workdir: Path, **settings: str) -> Lines:
    """Every line `callbridge serve` with the stand-in embedded and `settings` (`CALLBRIDGE_` +
    each name) logged from its start to its exit, as JSON objects."""
    port = free_port()
    process = Process(
        ["serve", "--port", str(port)],
        {
            "CALLBRIDGE_PROVIDER": "local",
            "CALLBRIDGE_LOG_FORMAT": "json",
            "CALLBRIDGE_LOG_LEVEL": "INFO",
            **{f"CALLBRIDGE_{name.upper()}": value for name, value in settings.items()},
        },
        workdir / "serve.log",
    ).start()
    assert process.proc is not None
    try:
        url = f"http://127.0.0.1:{port}"
        process.wait_http(f"{url}/healthz")
        assert httpx.get(f"{url}/readyz").status_code == 200
        process.proc.send_signal(signal.SIGINT)
        assert process.proc.wait(timeout=30) == 0
    finally:
        process.stop()
    return [json.loads(line) for line in process.output().splitlines()]


@pytest.fixture(scope="module")
def first_screen(tmp_path_factory: pytest.TempPathFactory) -> Lines:
    """Every line `callbridge serve` logged from its start to its exit, as `make run` starts it."""
    return _serve_once(tmp_path_factory.mktemp("serve"))


def _stand_in_warnings(lines: Lines) -> list[str]:
    return [e["msg"] for e in lines if e["level"] == "warning" and "stand-in" in e["msg"]]


@pytest.mark.parametrize(
    "line",
    [
        "Started server process",
        "Waiting for application startup.",
        "Application startup complete.",
        "Uvicorn running on http://127.0.0.1:",
        "Shutting down",
        "Waiting for application shutdown.",
        "Application shutdown complete.",
        "Finished server process",
    ],
)
def test_each_of_uvicorns_start_and_stop_lines_is_said_once(first_screen: Lines, line: str) -> None:
    assert sum(entry["msg"].startswith(line) for entry in first_screen) == 1


def test_the_embedded_providers_requests_are_not_in_the_access_log(first_screen: Lines) -> None:
    paths = [e["msg"].split('"')[1] for e in first_screen if e["logger"] == "uvicorn.access"]
    assert paths == ["GET /healthz HTTP/1.1", "GET /readyz HTTP/1.1"]


def test_the_documented_first_start_warns_of_nothing(first_screen: Lines) -> None:
    assert [e["msg"] for e in first_screen if e["level"] != "info"] == []


def test_the_start_line_does_not_claim_the_port_asked_for(first_screen: Lines) -> None:
    starting = [e["msg"] for e in first_screen if e["msg"].startswith("starting")]
    assert starting == ["starting (provider: local, queue: memory)"]


def test_the_stop_line_names_the_signal_and_what_is_drained(first_screen: Lines) -> None:
    assert "SIGINT: no live call to drain, stopping" in [e["msg"] for e in first_screen]


@pytest.mark.parametrize(
    ("requested", "bound", "level"),
    [("127.0.0.1", "127.0.0.1", "INFO"), ("0.0.0.0", "127.0.0.1", "WARNING")],
)
def test_an_open_api_is_a_warning_only_when_the_address_asked_for_is_refused(
    requested: str, bound: str, level: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="callbridge")
    assert bind_host(Settings(api_tokens=None), requested) == bound
    assert [(r.levelname, "no API token configured" in r.getMessage()) for r in caplog.records] == [
        (level, True)
    ]


def test_an_embedded_stand_in_beside_a_redis_queue_is_warned_about_once(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    warnings = _stand_in_warnings(_serve_once(tmp_path, queue=redis_server.url))
    assert len(warnings) == 1
    assert "CALLBRIDGE_PROVIDER_URL" in warnings[0]


def test_an_embedded_stand_in_beside_the_memory_queue_is_not_warned_about(
    first_screen: Lines,
) -> None:
    assert _stand_in_warnings(first_screen) == []


def test_serve_on_a_port_already_taken_exits_with_the_startup_failure_status(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = Process(["serve", "--port", str(port)], {}, tmp_path / "serve.log").start()
        assert process.proc is not None
        try:
            status = process.proc.wait(timeout=60)
        finally:
            process.stop()
    assert status == STARTUP_FAILED
    assert "address already in use" in process.output()
