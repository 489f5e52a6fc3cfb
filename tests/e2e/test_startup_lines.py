"""What an operator reads when `callbridge serve` starts and stops, as `make run` starts it (the
embedded stand-in provider, no API token): each line once, saying what really happens.

One real process for the module: started, asked once for readiness (which probes the embedded
provider), then stopped with SIGINT as Ctrl-C would.
"""

from __future__ import annotations

import json
import signal
from typing import Any

import httpx
import pytest

from service.server import bind_host
from service.settings import Settings
from tests.e2e.processes import Process, free_port

Lines = list[dict[str, Any]]


@pytest.fixture(scope="module")
def first_screen(tmp_path_factory: pytest.TempPathFactory) -> Lines:
    """Every line `callbridge serve` logged from its start to its exit, as JSON objects."""
    port = free_port()
    process = Process(
        ["serve", "--port", str(port)],
        {
            "CALLBRIDGE_PROVIDER": "local",
            "CALLBRIDGE_LOG_FORMAT": "json",
            "CALLBRIDGE_LOG_LEVEL": "INFO",
        },
        tmp_path_factory.mktemp("serve") / "serve.log",
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
