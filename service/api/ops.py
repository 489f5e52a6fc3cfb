"""Operator endpoints: liveness, readiness, metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

from async_lru import alru_cache
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.guards import OPS_TOKEN, require_ops
from service.api.models import Health, Readiness
from service.api.openapi import answer, answers, secured_by
from service.calls.manager import CallManager
from service.handoffs import QueueUnavailable
from service.metrics import PROVIDER_UP, QUEUE_BUFFERED, QUEUE_DEPTH, REGISTRY

router = APIRouter(tags=["ops"])
HEALTH_JSON = "application/health+json"


class HealthResponse(JSONResponse):
    """`application/health+json` (draft-inadarei-api-health-check)."""

    media_type = HEALTH_JSON


@router.get(
    "/healthz",
    response_class=HealthResponse,
    responses=answers(ok={200: answer("The process answers", Health, media_type=HEALTH_JSON)}),
)
async def healthz() -> HealthResponse:
    """Liveness: the process answers. Checks nothing external on purpose."""
    return HealthResponse({"status": "pass"})


PROVIDER_PROBE_TTL_S: Final = 5.0
"""How long /readyz reuses the provider probe's answer."""


def provider_probe(
    probe: Callable[[], Coroutine[Any, Any, bool]],
) -> Callable[[], Awaitable[bool]]:
    """`probe`, run at most once at a time, its answer kept `PROVIDER_PROBE_TTL_S` seconds:
    anyone may ask /readyz, and each probe is a request to the provider with our key, on the
    connections call starts use."""
    return alru_cache(maxsize=1, ttl=PROVIDER_PROBE_TTL_S)(probe)


@router.get(
    "/readyz",
    response_class=HealthResponse,
    responses=answers(
        ok={
            200: answer("Ready", Readiness, media_type=HEALTH_JSON),
            503: answer("Not ready", Readiness, media_type=HEALTH_JSON),
        },
    ),
)
async def readyz(request: Request) -> HealthResponse:
    """Readiness, health+json style: queue reachable, capacity left, not draining. A failing
    queue check says why in its `output` (Redis unreachable, or refusing our credentials).

    The provider's reachability is reported but does not make the instance unready: a
    provider outage must not pull every instance out of the load balancer at once.
    """
    manager: CallManager = request.app.state.manager
    queue_problem = await manager.queue.unavailable()
    queue_ok = queue_problem is None
    provider_ok = await request.app.state.provider_reachable()
    PROVIDER_UP.set(1 if provider_ok else 0)
    queue_check: dict[str, Any] = {
        "status": "pass" if queue_ok else "fail",
        "componentType": manager.queue.name,
    }
    if queue_problem is not None:
        queue_check["output"] = queue_problem
    checks: dict[str, list[dict[str, Any]]] = {
        "queue:reachable": [queue_check],
        "calls:capacity": [
            {
                "status": "pass" if manager.capacity_left > 0 else "fail",
                "observedValue": manager.capacity_left,
                "observedUnit": "calls",
            }
        ],
        "instance:draining": [{"status": "fail" if manager.draining else "pass"}],
        "provider:reachable": [
            {"status": "pass" if provider_ok else "warn", "affectsReadiness": False}
        ],
    }
    ready = queue_ok and manager.capacity_left > 0 and not manager.draining
    return HealthResponse(
        {"status": "pass" if ready else "fail", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get(
    "/metrics",
    dependencies=[Depends(require_ops)],
    response_class=PlainTextResponse,
    openapi_extra=secured_by(OPS_TOKEN),
)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition."""
    manager: CallManager = request.app.state.manager
    try:
        QUEUE_DEPTH.set(await manager.queue.depth())
    except QueueUnavailable:
        QUEUE_DEPTH.set(float("nan"))
    QUEUE_BUFFERED.set(getattr(manager.queue, "buffered", 0))
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
