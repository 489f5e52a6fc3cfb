"""A Redis that starts refusing `callbridge serve`'s credentials while it runs.

Not an outage: the operator is told once, in one ERROR line naming the setting (never the URL
or the password), readiness says why it fails, and the service carries on once Redis accepts
it again. Each test runs the real command against a private redis-server whose password it
changes under the running service.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from service.redis_client import CREDENTIALS_REFUSED
from tests.e2e.processes import Process, free_port
from tests.e2e.redis_server import RedisServer
from tests.e2e.waiting import until

PASSWORD = "first-password-8d1c5e"
ROTATED = "rotated-password-42ab7f"


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[Redis]:
    """One connection to the test's Redis, authenticated before the password is set, so that
    it keeps its rights whatever the password becomes."""
    client = Redis(port=redis_server.port, single_connection_client=True, decode_responses=True)
    client.config_set("requirepass", PASSWORD)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def serve(redis_server: RedisServer, admin: Redis, tmp_path: Path) -> Iterator[tuple[str, Process]]:
    """`callbridge serve` (with the embedded stand-in provider and worker) on the test's
    Redis, logging JSON at DEBUG; its URL and process."""
    port = free_port()
    process = Process(
        ["serve", "--port", str(port)],
        {
            "CALLBRIDGE_QUEUE": f"redis://:{PASSWORD}@127.0.0.1:{redis_server.port}/0",
            "CALLBRIDGE_LOG_FORMAT": "json",
            "CALLBRIDGE_LOG_LEVEL": "DEBUG",
        },
        tmp_path / "serve.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_http(f"{url}/healthz")
        yield url, process
    finally:
        process.stop()


def _change_password(admin: Redis, password: str) -> None:
    """Set Redis' password and drop every other connection: those made before keep their
    authentication, as they would not across a restart of Redis with its new configuration."""
    admin.config_set("requirepass", password)
    admin.client_kill_filter(_type="normal", skipme=True)


async def _queue_check(url: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{url}/readyz")
    check: dict[str, Any] = answer.json()["checks"]["queue:reachable"][0]
    return answer.status_code, check


def _lines(process: Process) -> list[dict[str, Any]]:
    return [json.loads(line) for line in process.output().splitlines() if line.startswith("{")]


async def test_readiness_says_redis_refuses_the_credentials_until_they_work_again(
    serve: tuple[str, Process], admin: Redis
) -> None:
    url, _ = serve
    await until(lambda: _is_ready(url))
    _change_password(admin, ROTATED)

    async def refused() -> bool:
        status, check = await _queue_check(url)
        return status == 503 and check.get("output") == CREDENTIALS_REFUSED

    await until(refused)
    admin.config_set("requirepass", PASSWORD)
    await until(lambda: _is_ready(url))


async def test_a_refused_password_is_one_error_line_naming_the_setting_not_an_outage(
    serve: tuple[str, Process], admin: Redis
) -> None:
    url, process = serve
    await until(lambda: _is_ready(url))
    _change_password(admin, ROTATED)

    def consumer_retries() -> int:
        return sum(
            line["logger"] == "callbridge.queue" and "consumer" in line["msg"]
            for line in _lines(process)
        )

    # The handoff consumer has met the refusal again and again.
    await until(lambda: consumer_retries() >= 5)
    lines = _lines(process)
    errors = [n for n, line in enumerate(lines) if line["level"] == "error"]
    assert [lines[n]["logger"] for n in errors] == ["callbridge.redis"]
    assert lines[errors[0]]["msg"].startswith(CREDENTIALS_REFUSED)
    # Before it, only the dropped connections' own warnings ("closed by server").
    assert not [
        line
        for line in lines[errors[0] :]
        if line["level"] == "warning" and "redis" in line["msg"].lower()
    ]
    assert PASSWORD not in process.output()
    assert ROTATED not in process.output()


async def _is_ready(url: str) -> bool:
    status, _ = await _queue_check(url)
    return status == 200
