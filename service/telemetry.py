"""Whether FastAPI's native OpenTelemetry runs, decided once when the app is made.

FastAPI asks, on every request, whether a tracer, meter or logger provider has been configured
(three provider look-ups, each reading the environment: about 14 µs of the 1.3 to 1.6 ms a call
start costs on our 2-core test machine), so that a provider set at any time is picked up
(https://fastapi.tiangolo.com/advanced/opentelemetry/). Telemetry is kept exactly as FastAPI
runs it when OpenTelemetry is configured by the time the app is made: a global provider set
(`opentelemetry-instrument` sets them before the program runs), one named by
`OTEL_PYTHON_TRACER_PROVIDER` (or the meter and logger equivalents), or
`FASTAPI_OTEL_AUTO_CONFIGURE=true` (FastAPI sets them up when the app starts). Otherwise it is
off, and the per-request question is not asked: a provider set later, by a program embedding
the app, is not picked up. A provider named by the environment that cannot be loaded turns it
off with a warning (FastAPI would fail every request on it).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Final

from fastapi.telemetry import TelemetryConfig
from opentelemetry import _logs, metrics, trace

# What the OpenTelemetry API returns while nothing is configured (it has no public query for
# it; FastAPI checks the same classes).
_UNSET_PROVIDERS: Final = frozenset(
    {
        ("opentelemetry.trace", "ProxyTracerProvider"),
        ("opentelemetry.metrics._internal", "_ProxyMeterProvider"),
        ("opentelemetry._logs._internal", "ProxyLoggerProvider"),
    }
)

log = logging.getLogger("callbridge")

OFF: Final[TelemetryConfig] = {"tracing": False, "metrics": False, "logs": False}
"""FastAPI's telemetry configuration with every signal off."""


def _configured(provider: Any) -> bool:
    cls = type(provider)
    return (cls.__module__, cls.__name__) not in _UNSET_PROVIDERS


def opentelemetry_configured() -> bool:
    """Whether OpenTelemetry is configured now, or FastAPI is asked to configure it."""
    if os.environ.get("FASTAPI_OTEL_AUTO_CONFIGURE", "").lower() == "true":
        return True
    try:
        providers = (
            trace.get_tracer_provider(),
            metrics.get_meter_provider(),
            _logs.get_logger_provider(),
        )
    except Exception as exc:  # the API raises whatever loading the named provider raised
        log.warning(
            "an OpenTelemetry provider named by the environment cannot be loaded (%s):"
            " telemetry is off",
            type(exc).__name__,
        )
        return False
    return any(_configured(provider) for provider in providers)


def fastapi_telemetry() -> TelemetryConfig | None:
    """The `telemetry` argument for `FastAPI(...)`: None (FastAPI's defaults) when OpenTelemetry
    is configured, `OFF` when it is not."""
    if opentelemetry_configured():
        return None
    log.info("OpenTelemetry is not configured at start-up: FastAPI's telemetry is off")
    return OFF
