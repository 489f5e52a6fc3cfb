"""Prometheus metrics, one registry for the process.

Every label takes its values from a fixed set defined here, never from what a client or the
provider sent: `label(value, allowed)` maps anything else to `other`, so no input can grow the
number of series.
"""

from __future__ import annotations

import functools
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from signaling.realtime.end_reasons import EndReason

REGISTRY = CollectorRegistry(auto_describe=True)

OTHER = "other"
CALL_START_OUTCOMES = frozenset({"started", "bad_offer", "capacity", "draining", "provider_error"})
SETUP_STAGES = frozenset({"provider_answered", "sideband_joined", "session_updated"})
END_REASONS = frozenset({reason.value for reason in EndReason} | {OTHER})
HANDOFF_OUTCOMES = frozenset({"completed", "failed", "duplicate", "expired", "late"})
HANGUP_OUTCOMES = frozenset({"confirmed", "not_found", "retried", "abandoned"})
WEBHOOK_OUTCOMES = frozenset({"handled", "ignored", "bad_signature", "replayed", "malformed"})
SIP_CALL_OUTCOMES = frozenset(
    {"accepted", "rejected", "referred", "busy", "provider_error", "internal_error"}
)
# Provider errors: the HTTP statuses a provider documents, a class for the rest, and the
# failures that have no status.
PROVIDER_ERROR_STATUSES = frozenset(
    {"400", "401", "403", "404", "409", "422", "429", "500", "502", "503", "504"}
    | {"4xx", "5xx", "timeout", "unreachable", "bad_answer", OTHER}
)


def label(value: str, allowed: frozenset[str]) -> str:
    """`value` when it is one of `allowed`, else `other`."""
    return value if value in allowed else OTHER


def provider_error_label(status: int | None) -> str:
    """The `status` label of a provider error answered with HTTP `status`."""
    exact = str(status)
    if exact in PROVIDER_ERROR_STATUSES:
        return exact
    if status is not None and 400 <= status < 600:
        return f"{status // 100}xx"
    return OTHER


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
HANGUPS = Counter(
    "callbridge_provider_hangups_total",
    "Hang-ups at the provider by outcome: confirmed, not_found (already ended), retried (an "
    "attempt failed; retried in the background), abandoned (still failing after "
    "CALLBRIDGE_HANGUP_RETRY_S: the call may be live at the provider).",
    ["outcome"],
    registry=REGISTRY,
)
SIDEBAND_RECONNECTS = Counter(
    "callbridge_sideband_reconnects_total", "Sideband rejoins after a drop.", registry=REGISTRY
)
EVENTS = Counter(
    "callbridge_provider_events_total", "Provider events by type.", ["type"], registry=REGISTRY
)


@functools.cache
def provider_events(label: str) -> Counter:
    """`EVENTS`' counter for one type label, looked up once (a label comes from the fixed set
    `signaling.realtime.metric_label` returns, so the cache stays small)."""
    return EVENTS.labels(type=label)


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
    "Provider webhooks by outcome (WEBHOOK_OUTCOMES).",
    ["outcome"],
    registry=REGISTRY,
)
SIP_CALLS = Counter(
    "callbridge_sip_calls_total",
    "Incoming phone calls by routing outcome (SIP_CALL_OUTCOMES).",
    ["outcome"],
    registry=REGISTRY,
)

# Every series exists from the start, at zero: the set is fixed, and dashboards see it whole.
_FIXED_LABELS: Final = (
    (CALL_STARTS, "outcome", CALL_START_OUTCOMES),
    (CALL_SETUP_SECONDS, "stage", SETUP_STAGES),
    (CALLS_ENDED, "reason", END_REASONS),
    (HANDOFFS, "outcome", HANDOFF_OUTCOMES),
    (HANGUPS, "outcome", HANGUP_OUTCOMES),
    (PROVIDER_ERRORS, "status", PROVIDER_ERROR_STATUSES),
    (WEBHOOKS, "outcome", WEBHOOK_OUTCOMES),
    (SIP_CALLS, "outcome", SIP_CALL_OUTCOMES),
)
for _metric, _name, _values in _FIXED_LABELS:
    for _value in _values:
        _metric.labels(**{_name: _value})
