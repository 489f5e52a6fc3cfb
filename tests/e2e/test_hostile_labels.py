"""Metric labels come from fixed sets, whatever statuses and reasons the provider chooses."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.metrics import (
    CALL_START_OUTCOMES,
    END_REASONS,
    HANDOFF_OUTCOMES,
    PROVIDER_ERROR_STATUSES,
    SETUP_STAGES,
)
from tests.e2e.conftest import Serve, StartService
from tests.e2e.hostile import healthy
from tests.unit.sdp_samples import AIORTC_OFFER

ODD_STATUSES = [202, 299, 418, 420, 451, 499, 507, 555, 599]
ALLOWED = {
    ("callbridge_call_starts", "outcome"): CALL_START_OUTCOMES,
    ("callbridge_call_setup_seconds", "stage"): SETUP_STAGES,
    ("callbridge_calls_ended", "reason"): END_REASONS,
    ("callbridge_handoffs", "outcome"): HANDOFF_OUTCOMES,
    ("callbridge_provider_errors", "status"): PROVIDER_ERROR_STATUSES,
}


async def test_provider_chosen_statuses_never_become_new_label_values(
    start_service: StartService, serve: Serve
) -> None:
    statuses = iter(ODD_STATUSES)

    async def create(request: Request) -> Response:
        await request.body()
        status = next(statuses)
        return Response(f"status {status}", status_code=status)

    provider = Starlette(routes=[Route("/v1/realtime/calls", create, methods=["POST"])])
    service = await start_service(provider="openai", provider_url=await serve(provider))
    async with httpx.AsyncClient(base_url=service.url) as client:
        for _ in ODD_STATUSES:
            response = await client.post(
                "/v1/calls", content=AIORTC_OFFER, headers={"content-type": "application/sdp"}
            )
            assert response.status_code in (502, 503, 422), response.text
        exposition = (await client.get("/metrics")).text
    assert await healthy(service.url)
    seen: dict[tuple[str, str], set[str]] = {key: set() for key in ALLOWED}
    counted: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            for (name, label_name), values in seen.items():
                if family.name == name and label_name in sample.labels:
                    values.add(sample.labels[label_name])
                    if sample.name.endswith("_total"):
                        value = sample.labels[label_name]
                        counted[value] = counted.get(value, 0) + sample.value
    for key, values in seen.items():
        assert values <= ALLOWED[key], key
    assert counted["4xx"] >= 4
    assert counted["5xx"] >= 3
    assert counted["other"] >= 2
