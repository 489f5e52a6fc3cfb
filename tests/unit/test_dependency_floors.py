"""The declared lower bounds of dependencies are versions that have what our code calls."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _floor(name: str) -> tuple[int, ...]:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    for requirement in dependencies:
        match = re.fullmatch(rf"{re.escape(name)}(?:\[[^\]]*\])?>=([0-9.]+),.*", requirement)
        if match:
            return tuple(int(part) for part in match[1].split("."))
    raise AssertionError(f"{name} has no '>=' floor in pyproject.toml")


def test_websockets_floor_has_proxy_lookup_and_sends_bytes_as_text() -> None:
    # signaling/realtime/sideband.py imports `websockets.uri.get_proxy` (15.0) and sends its
    # JSON bytes with `send(..., text=True)` (14.0); under 15, the sideband cannot be imported.
    assert _floor("websockets") >= (15,)


def test_fastapi_floor_has_native_telemetry_configured_only_when_asked() -> None:
    # service/telemetry.py imports `fastapi.telemetry` (0.142) and keeps telemetry on only when
    # OpenTelemetry is configured or `FASTAPI_OTEL_AUTO_CONFIGURE` asks FastAPI to configure it,
    # which is FastAPI's own default from 0.143 (0.142 configured it unasked).
    assert _floor("fastapi") >= (0, 143)


def test_opentelemetry_api_is_declared_for_the_telemetry_decision() -> None:
    assert _floor("opentelemetry-api") >= (1, 44)


def test_redis_floor_runs_transactions_on_a_cluster() -> None:
    # service/calls/store.py saves a call in a transaction (one hash slot); on a Redis Cluster
    # that is `redis.asyncio.RedisCluster.pipeline(transaction=True)`, which 6.2 added.
    assert _floor("redis") >= (6, 2)
