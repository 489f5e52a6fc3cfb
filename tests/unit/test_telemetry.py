"""FastAPI's native telemetry: kept as FastAPI runs it when OpenTelemetry is configured, off
(no per-request provider look-ups) when it is not."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from service.telemetry import OFF, fastapi_telemetry

_OPENTELEMETRY_VARIABLES = (
    "FASTAPI_OTEL_AUTO_CONFIGURE",
    "OTEL_PYTHON_TRACER_PROVIDER",
    "OTEL_PYTHON_METER_PROVIDER",
    "OTEL_PYTHON_LOGGER_PROVIDER",
)


@pytest.fixture(autouse=True)
def _unconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the environment running the tests says about OpenTelemetry is not asked."""
    for name in _OPENTELEMETRY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_telemetry_is_off_while_opentelemetry_is_not_configured(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")
    assert fastapi_telemetry() == OFF
    assert "OpenTelemetry is not configured" in caplog.text


def test_telemetry_keeps_fastapis_defaults_when_fastapi_is_asked_to_configure_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    assert fastapi_telemetry() is None


def test_telemetry_keeps_fastapis_defaults_when_a_provider_is_set_before_the_app() -> None:
    # A global provider can be set once per process: this one is set in a process of its own.
    code = (
        "from opentelemetry import trace\n"
        "trace.set_tracer_provider(trace.NoOpTracerProvider())\n"
        "from service.telemetry import fastapi_telemetry\n"
        "print(fastapi_telemetry())\n"
    )
    environment = {k: v for k, v in os.environ.items() if k not in _OPENTELEMETRY_VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment
    )
    assert done.stdout.strip() == "None"


def test_a_provider_named_by_the_environment_that_cannot_load_turns_telemetry_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_TRACER_PROVIDER", "no-such-provider")
    assert fastapi_telemetry() == OFF
    assert "cannot be loaded" in caplog.text
