"""Prometheus metrics, one registry for the process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

ACTIVE_CALLS = Gauge("callbridge_active_calls", "Calls not yet ended.", registry=REGISTRY)
CALL_STARTS = Counter(
    "callbridge_call_starts_total",
    "Call-start requests by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
CALL_SETUP_SECONDS = Histogram(
    "callbridge_call_setup_seconds",
    "Time from offer received to each setup stage.",
    ["stage"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
CALLS_ENDED = Counter(
    "callbridge_calls_ended_total", "Ended calls by reason.", ["reason"], registry=REGISTRY
)
SIDEBAND_RECONNECTS = Counter(
    "callbridge_sideband_reconnects_total", "Sideband rejoins after a drop.", registry=REGISTRY
)
EVENTS = Counter(
    "callbridge_provider_events_total", "Provider events by type.", ["type"], registry=REGISTRY
)
HANDOFFS = Counter(
    "callbridge_handoffs_total", "Handoffs by outcome.", ["outcome"], registry=REGISTRY
)
HANDOFF_SECONDS = Histogram(
    "callbridge_handoff_seconds",
    "Time from the tool call to its output being sent.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
HANDOFF_HANDLER_SECONDS = Histogram(
    "callbridge_handoff_handler_seconds",
    "Time a handler took to answer.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge("callbridge_queue_depth", "Handoffs waiting or in flight.", registry=REGISTRY)
QUEUE_BUFFERED = Gauge(
    "callbridge_queue_buffered",
    "Handoffs held locally while the broker is down.",
    registry=REGISTRY,
)
PROVIDER_ERRORS = Counter(
    "callbridge_provider_errors_total",
    "Provider errors by HTTP status (or kind).",
    ["status"],
    registry=REGISTRY,
)
PROVIDER_UP = Gauge(
    "callbridge_provider_up", "1 when the last provider probe answered.", registry=REGISTRY
)
WEBHOOKS = Counter(
    "callbridge_webhooks_total",
    "Provider webhooks by outcome (handled, ignored, bad_signature, replayed, malformed).",
    ["outcome"],
    registry=REGISTRY,
)
SIP_CALLS = Counter(
    "callbridge_sip_calls_total",
    "Incoming phone calls by routing outcome.",
    ["outcome"],
    registry=REGISTRY,
)
